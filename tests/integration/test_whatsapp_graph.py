"""The Graph API client against the local fake of Meta's Graph API: payloads, retries, errors, rate."""

from collections.abc import AsyncIterator

import pytest

from connectors.whatsapp.graph import GraphClient, GraphError, MediaTooLarge, build_messages
from tests.support.fake_graph import ACCESS_TOKEN, PHONE_NUMBER_ID, FakeGraph


def client_for(graph: FakeGraph, **options) -> GraphClient:
    values = {"timeout": 1.0, "rate_per_second": 1000, "attempts": 4, "backoff_initial": 0.01, "backoff_max": 0.05}
    values.update(options)
    return GraphClient(base_url=graph.url, phone_number_id=PHONE_NUMBER_ID, access_token=ACCESS_TOKEN, **values)


@pytest.fixture
async def client(fake_graph: FakeGraph) -> AsyncIterator[GraphClient]:
    graph_client = client_for(fake_graph)
    yield graph_client
    await graph_client.aclose()


async def test_text_buttons_list_and_mark_read_reach_the_graph_api(client: GraphClient, fake_graph: FakeGraph) -> None:
    requests = [
        *build_messages("447700900001", text="hello " * 1000),
        *build_messages("447700900001", text="Yes?", buttons=[{"title": "Yes", "payload": "/affirm"}]),
        *build_messages(
            "447700900001", text="Pick", buttons=[{"title": f"n{i}", "payload": f"/n{i}"} for i in range(5)]
        ),
    ]
    wamids = [await client.send(r) for r in requests]
    await client.mark_read("wamid.INBOUND1")

    assert len(set(wamids)) == len(requests) == 4 and all(w.startswith("wamid.") for w in wamids)
    sent = fake_graph.sends("447700900001")
    assert [s["type"] for s in sent] == ["text", "text", "interactive", "interactive"]
    assert [s["interactive"]["type"] for s in sent[2:]] == ["button", "list"]
    assert all(s["messaging_product"] == "whatsapp" and s["recipient_type"] == "individual" for s in sent)
    assert fake_graph.reads() == ["wamid.INBOUND1"]
    assert {r.authorization for r in fake_graph.message_requests()} == {f"Bearer {ACCESS_TOKEN}"}
    assert all(r.answer == 200 for r in fake_graph.message_requests())  # the fake validated every body


@pytest.mark.parametrize("code", [130429, 131056, 1, 2])
async def test_throughput_limits_and_server_errors_are_retried(
    client: GraphClient, fake_graph: FakeGraph, code: int
) -> None:
    fake_graph.fail_next(code, times=2)
    wamid = await client.send(build_messages("447700900002", text="hi")[0])
    attempts = fake_graph.attempts("447700900002")
    assert [a.error_code for a in attempts] == [code, code, None]
    assert attempts[-1].answer == 200 and wamid.startswith("wamid.")


async def test_a_timeout_is_retried(fake_graph: FakeGraph) -> None:
    client = client_for(fake_graph, timeout=0.3)
    fake_graph.time_out_next(delay=1.0)
    try:
        await client.send(build_messages("447700900003", text="hi")[0])
    finally:
        await client.aclose()
    assert len(fake_graph.attempts("447700900003")) == 2


async def test_retries_stop_after_the_configured_attempts(client: GraphClient, fake_graph: FakeGraph) -> None:
    fake_graph.fail_next(130429, times=10)
    with pytest.raises(GraphError) as caught:
        await client.send(build_messages("447700900004", text="hi")[0])
    assert caught.value.code == 130429 and caught.value.retryable
    assert len(fake_graph.attempts("447700900004")) == 4


@pytest.mark.parametrize("code", [131047, 131026, 131030, 190])
async def test_permanent_errors_are_not_retried(client: GraphClient, fake_graph: FakeGraph, code: int) -> None:
    fake_graph.fail_next(code, times=3)
    with pytest.raises(GraphError) as caught:
        await client.send(build_messages("447700900005", text="hi")[0])
    assert (caught.value.code, caught.value.retryable) == (code, False)
    assert caught.value.reason  # Meta's message, kept as the failure reason
    assert len(fake_graph.attempts("447700900005")) == 1


async def test_a_wrong_token_is_refused_with_190(fake_graph: FakeGraph) -> None:
    client = GraphClient(base_url=fake_graph.url, phone_number_id=PHONE_NUMBER_ID, access_token="expired")
    with pytest.raises(GraphError) as caught:
        await client.send(build_messages("447700900006", text="hi")[0])
    await client.aclose()
    assert (caught.value.code, caught.value.http_status, caught.value.retryable) == (190, 401, False)


async def test_the_rate_limiter_keeps_sends_per_second_at_the_limit(fake_graph: FakeGraph) -> None:
    import asyncio

    rate = 20
    client = client_for(fake_graph, rate_per_second=rate)
    try:
        await asyncio.gather(*(client.send(build_messages("447700900007", text=f"m{i}")[0]) for i in range(45)))
    finally:
        await client.aclose()
    arrivals = sorted(r.at for r in fake_graph.attempts("447700900007"))
    assert len(arrivals) == 45
    # The limiter lets one request go every 1/rate s, so a second holds `rate` departures. They are
    # counted on arrival at the stand-in, where a stall of the loaded machine bunches a few of them
    # (22 in one second once in CI): the window is 0.85 s, in which `rate` evenly spaced requests are
    # 18, so up to 0.15 s of bunching passes and a limiter that let a burst through does not.
    busiest = max(sum(1 for t in arrivals if start <= t < start + 0.85) for start in arrivals)
    assert busiest <= rate + 1, busiest


async def test_media_is_fetched_through_the_media_url(client: GraphClient, fake_graph: FakeGraph) -> None:
    fake_graph.media["1003383421387256"] = (b"\xff\xd8\xff jpeg bytes", "image/jpeg")
    info = await client.media_info("1003383421387256")
    assert (info.mime_type, info.file_size) == ("image/jpeg", 14)
    content, mime = await client.download_media("1003383421387256")
    assert (content, mime) == (b"\xff\xd8\xff jpeg bytes", "image/jpeg")


async def test_the_typing_indicator_rides_on_the_read_receipt(client: GraphClient, fake_graph: FakeGraph) -> None:
    await client.mark_read("wamid.QUIET", phone_number_id=PHONE_NUMBER_ID)
    await client.mark_read("wamid.ANSWERED", phone_number_id=PHONE_NUMBER_ID, typing=True)
    assert fake_graph.reads() == ["wamid.QUIET", "wamid.ANSWERED"]
    [typing] = fake_graph.typing()
    assert typing.answer == 200 and typing.path == f"/v25.0/{PHONE_NUMBER_ID}/messages"
    assert typing.body == {
        "messaging_product": "whatsapp",
        "status": "read",
        "message_id": "wamid.ANSWERED",
        "typing_indicator": {"type": "text"},
    }


async def test_media_streams_whole_under_the_cap_and_is_refused_over_it(
    client: GraphClient, fake_graph: FakeGraph
) -> None:
    content = bytes(range(256)) * 40  # 10 KiB
    fake_graph.add_media("555", content, "audio/ogg; codecs=opus")
    download = await client.open_media("555", max_bytes=len(content))
    try:
        assert (download.content_type, download.content_length) == ("audio/ogg; codecs=opus", len(content))
        assert b"".join([chunk async for chunk in download.chunks()]) == content
    finally:
        await download.aclose()

    with pytest.raises(MediaTooLarge, match="10240 bytes"):  # Meta's file_size says so: nothing downloaded
        await client.open_media("555", max_bytes=len(content) - 1)
    assert [r.path for r in fake_graph.media_requests()][-1] == "/v25.0/555"

    # Meta announced no size and the download has no Content-Length: the stream stops at the cap.
    fake_graph.announce_media_sizes = False
    download = await client.open_media("555", max_bytes=4096)
    received = 0
    try:
        with pytest.raises(MediaTooLarge):
            async for chunk in download.chunks():
                received += len(chunk)
    finally:
        await download.aclose()
    assert received <= 4096

    with pytest.raises(GraphError) as unknown:
        await client.open_media("no-such-media", max_bytes=4096)
    assert unknown.value.code == 100 and not unknown.value.retryable
