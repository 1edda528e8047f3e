"""Request limits: the body cap, authentication before the body, clipped 422s, the per-user message rate."""

from __future__ import annotations

import asyncio
import logging
import select
import socket
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import AsyncExitStack, ExitStack
from pathlib import Path

import httpx
import psycopg
import pytest

from conversation_api.settings import Settings
from tests.conftest import TokenFactory, auth, running_app
from tests.support.database import POSTGRES_URL, migrated_schema, plain_dsn
from tests.support.events import metric_value, redis_server
from tests.support.fakes import FakeBot
from tests.support.processes import free_port
from tests.support.stack import api_server

MESSAGES = "/api/v1/messages"
TEN_MB = 10 * 1024 * 1024


def new_user(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def body(user: str, text: str = "hi") -> dict[str, str]:
    return {"conversation_id": "", "user_id": user, "message": text}


@pytest.fixture
async def client(db_settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    async for _, http in running_app(db_settings, bot=FakeBot()):
        yield http


# --- the body cap ---------------------------------------------------------------------------------------


async def test_a_body_over_the_cap_is_413_before_auth(client: httpx.AsyncClient, token: TokenFactory) -> None:
    too_big = b"x" * (64 * 1024 + 1)
    response = await client.post(MESSAGES, content=too_big, headers={"Content-Type": "application/json"})
    assert response.status_code == 413
    assert response.json()["code"] == "payload_too_large" and "65536" in response.json()["detail"]
    assert response.headers["connection"] == "close"

    async def chunks() -> AsyncIterator[bytes]:  # no Content-Length: counted as it arrives
        for _ in range(100):
            yield b"x" * 1024

    streamed = await client.post(MESSAGES, content=chunks(), headers=auth(token("cap-ann")))
    assert streamed.status_code == 413 and streamed.json()["code"] == "payload_too_large"
    # Just under the cap the body is read and validated as usual.
    under = await client.post(MESSAGES, json=body("cap-ann", "y" * 60_000), headers=auth(token("cap-ann")))
    assert under.status_code == 422 and under.json()["code"] == "invalid_request"


async def test_the_whatsapp_webhook_has_its_own_larger_cap(client: httpx.AsyncClient) -> None:
    # 200 KB is over MAX_BODY_BYTES but under WHATSAPP_MAX_BODY_BYTES: it reaches the webhook
    # (not configured here, so 503), where a 2 MB one does not.
    webhook = "/webhooks/whatsapp"
    batch = await client.post(webhook, content=b"{" + b" " * 200_000 + b"}", headers={"X-Hub-Signature-256": "x"})
    assert batch.status_code == 503 and batch.json()["code"] == "whatsapp_not_configured"
    huge = await client.post(webhook, content=b"x" * 2_000_000, headers={"X-Hub-Signature-256": "x"})
    assert huge.status_code == 413 and huge.json()["code"] == "payload_too_large"


def rss_bytes(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS")


def read_response(sock: socket.socket, timeout: float = 5.0) -> bytes:
    sock.settimeout(timeout)
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        if not chunk:
            break
        data += chunk
    return data


def post_declared_ten_mb(port: int) -> tuple[bytes, float]:
    """Headers declaring 10 MB and no body at all: the answer must come without waiting for it."""
    with socket.create_connection(("127.0.0.1", port)) as sock:
        started = time.perf_counter()
        sock.sendall(
            f"POST {MESSAGES} HTTP/1.1\r\nHost: api\r\nContent-Type: application/json\r\n"
            f"Content-Length: {TEN_MB}\r\n\r\n".encode()
        )
        return read_response(sock), time.perf_counter() - started


def post_chunked_ten_mb(port: int, bearer: str) -> tuple[bytes, int]:
    """10 MB in 16 KiB chunks, stopping once the server has answered; returns the answer and the bytes sent."""
    chunk = b"%x\r\n%s\r\n" % (16384, b"x" * 16384)
    sent = 0
    with socket.create_connection(("127.0.0.1", port)) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 65536)
        sock.sendall(
            f"POST {MESSAGES} HTTP/1.1\r\nHost: api\r\nContent-Type: application/json\r\n"
            f"Authorization: Bearer {bearer}\r\nTransfer-Encoding: chunked\r\n\r\n".encode()
        )
        while sent < TEN_MB:
            readable, _, _ = select.select([sock], [], [], 0)
            if readable:
                break
            try:
                sock.sendall(chunk)
            except (BrokenPipeError, ConnectionResetError):
                break
            sent += 16384
        return read_response(sock), sent


@pytest.fixture(scope="module")
def api_process() -> Iterator[tuple[int, int]]:
    """The API as a real uvicorn process (its bot points at nothing; these requests never reach it).

    On a schema of its own: it lives for the module, and its sweepers would otherwise work on
    the conversations of the in-process apps the other tests here run.
    """
    with migrated_schema() as settings, api_server(settings, f"http://127.0.0.1:{free_port()}") as server:
        yield int(server.url.rsplit(":", 1)[1]), server.process.pid


def test_ten_megabytes_are_refused_without_being_read(api_process: tuple[int, int], token: TokenFactory) -> None:
    port, pid = api_process
    post_declared_ten_mb(port)  # warm up: the first request allocates what every request shares
    post_chunked_ten_mb(port, token("cap-bea"))
    before = rss_bytes(pid)
    for _ in range(5):
        answer, seconds = post_declared_ten_mb(port)
        assert answer.startswith(b"HTTP/1.1 413"), answer[:200]
        assert seconds < 1.0
        answer, sent = post_chunked_ten_mb(port, token("cap-bea"))
        assert answer.startswith(b"HTTP/1.1 413"), answer[:200]
        assert sent < TEN_MB / 2, f"the server answered only after {sent} bytes"
    grown = rss_bytes(pid) - before
    assert grown < 5 * 1024 * 1024, f"the API grew by {grown / 1e6:.1f} MB over ten 10 MB bodies"


# --- authentication before the body ---------------------------------------------------------------------


@pytest.mark.parametrize(
    "path",
    [MESSAGES, "/api/v1/conversations/c1/feedback", "/api/v1/csr/conversations/c1/messages"],
)
@pytest.mark.parametrize("header", [None, "Bearer not.a.jwt"])
async def test_no_valid_token_is_401_whatever_the_body(
    client: httpx.AsyncClient, path: str, header: str | None
) -> None:
    headers = {"Content-Type": "application/json", **({"Authorization": header} if header else {})}
    for content in (b'{"user_id": "a", "message": ', b'{"message": "\xff\xfe"}', b"[1, 2]"):
        response = await client.post(path, content=content, headers=headers)
        assert response.status_code == 401, (content, response.text)
        assert response.json()["code"] == "not_authenticated"


async def test_a_body_that_is_not_utf8_is_a_documented_400(client: httpx.AsyncClient, token: TokenFactory) -> None:
    headers = {**auth(token("cap-cid")), "Content-Type": "application/json"}
    response = await client.post(MESSAGES, content=b'{"user_id": "cap-cid", "message": "\xff"}', headers=headers)
    assert response.status_code == 400 and response.json()["code"] == "malformed_body"
    spec = (await client.get("/openapi.json")).json()
    assert "400" in spec["paths"][MESSAGES]["post"]["responses"]


# --- 422s do not echo the input back --------------------------------------------------------------------


async def test_a_422_echoes_at_most_200_characters_of_the_input(db_settings: Settings, token: TokenFactory) -> None:
    settings = db_settings.model_copy(update={"max_body_bytes": 12 * 1024 * 1024})
    huge = "z" * 10_000_000
    async for _, http in running_app(settings, bot=FakeBot()):
        headers = auth(token("cap-dan"))
        too_long = await http.post(MESSAGES, json=body("cap-dan", huge), headers=headers)
        assert too_long.status_code == 422 and len(too_long.content) < 2000
        [error] = too_long.json()["detail"]
        assert error["loc"] == ["body", "message"] and error["input"] == "z" * 200 + "…"

        # A missing field echoes the whole body as its input: that is clipped too.
        no_user = await http.post(MESSAGES, json={"message": huge}, headers=headers)
        assert no_user.status_code == 422 and len(no_user.content) < 2000
        assert no_user.json()["detail"][0]["loc"] == ["body", "user_id"]


# --- the per-user message rate ----------------------------------------------------------------------------


def limited(settings: Settings, rate: str = "5/minute", **update: object) -> Settings:
    return settings.model_copy(update={"rate_limit_messages": rate, **update})


async def burst(http: httpx.AsyncClient, bearer: str, user: str, count: int) -> list[httpx.Response]:
    return list(
        await asyncio.gather(*(http.post(MESSAGES, json=body(user), headers=auth(bearer)) for _ in range(count)))
    )


async def test_a_burst_from_one_user_gets_429_past_the_limit(db_settings: Settings, token: TokenFactory) -> None:
    bot = FakeBot()
    async for _, http in running_app(limited(db_settings), bot=bot):
        eve, fay = new_user("rate-eve"), new_user("rate-fay")
        responses = await burst(http, token(eve), eve, 200)
        statuses = sorted(r.status_code for r in responses)
        assert statuses == [200] * 5 + [429] * 195
        refused = next(r for r in responses if r.status_code == 429)
        assert refused.json()["code"] == "rate_limited" and "5 per 1 minute" in refused.json()["detail"]
        assert 1 <= int(refused.headers["retry-after"]) <= 60
        assert refused.json()["retry_after"] == int(refused.headers["retry-after"])
        assert len(bot.calls) == 5  # refused messages never reach the bot

        # Another user has a window of her own.
        assert [r.status_code for r in await burst(http, token(fay), fay, 5)] == [200] * 5


async def test_the_window_frees_after_its_time(db_settings: Settings, token: TokenFactory) -> None:
    async for _, http in running_app(limited(db_settings, "2/second"), bot=FakeBot()):
        gus = new_user("rate-gus")
        assert sorted(r.status_code for r in await burst(http, token(gus), gus, 3)) == [200, 200, 429]
        await asyncio.sleep(1.1)
        assert (await http.post(MESSAGES, json=body(gus), headers=auth(token(gus)))).status_code == 200


async def test_csr_replies_count_against_the_csr(db_settings: Settings, token: TokenFactory) -> None:
    async for _, http in running_app(limited(db_settings, "2/minute"), bot=FakeBot()):
        csr = auth(token(new_user("rate-csr"), "csr"))
        path = "/api/v1/csr/conversations/no-such-conversation/messages"
        statuses = [(await http.post(path, json={"message": "hello"}, headers=csr)).status_code for _ in range(3)]
        assert statuses == [404, 404, 429]


async def test_the_limit_is_off_when_empty(db_settings: Settings, token: TokenFactory) -> None:
    async for _, http in running_app(limited(db_settings, ""), bot=FakeBot()):
        hal = new_user("rate-hal")
        assert {r.status_code for r in await burst(http, token(hal), hal, 40)} == {200}


async def test_replicas_share_the_limit_through_redis(db_settings: Settings, token: TokenFactory) -> None:
    ida = new_user("rate-ida")
    with redis_server() as url:
        settings = limited(db_settings, "6/minute", rate_limit_redis_url=url)
        async for _, first in running_app(settings, bot=FakeBot()):
            async for _, second in running_app(settings, bot=FakeBot()):
                assert [r.status_code for r in await burst(first, token(ida), ida, 3)] == [200] * 3
                assert [r.status_code for r in await burst(second, token(ida), ida, 3)] == [200] * 3
                assert (await first.post(MESSAGES, json=body(ida), headers=auth(token(ida)))).status_code == 429
                assert (await second.post(MESSAGES, json=body(ida), headers=auth(token(ida)))).status_code == 429


async def test_redis_down_limits_in_the_process_instead_of_failing(
    db_settings: Settings, token: TokenFactory, caplog: pytest.LogCaptureFixture
) -> None:
    jo = new_user("rate-jo")
    with ExitStack() as redis:
        url = redis.enter_context(redis_server())
        settings = limited(db_settings, "3/minute", rate_limit_redis_url=url)
        async for _, http in running_app(settings, bot=FakeBot()):
            assert [r.status_code for r in await burst(http, token(jo), jo, 2)] == [200] * 2
            before = metric_value((await http.get("/metrics")).text, "reviewbot_rate_limit_store_failures_total")
            redis.close()  # Redis stops under the running app
            with caplog.at_level(logging.WARNING, logger="conversation_api.ratelimit"):
                statuses = [r.status_code for r in await burst(http, token(jo), jo, 5)]
            # Never a 500: this process's own window takes over (it had seen none of the 2 Redis counted).
            assert sorted(statuses) == [200, 200, 200, 429, 429]
            after = metric_value((await http.get("/metrics")).text, "reviewbot_rate_limit_store_failures_total")
            assert after >= before + 1
            assert "rate limit store unavailable" in caplog.text


# --- stale pooled connections ---------------------------------------------------------------------------


async def test_pooled_connections_the_database_dropped_are_replaced(pg_settings: Settings, token: TokenFactory) -> None:
    kim = new_user("pool-kim")
    # Background loops asleep, so that only the requests here use the pool.
    quiet = pg_settings.model_copy(
        update={"event_relay_interval": 3600, "handoff_sweep_interval": 3600, "session_idle_gap_seconds": 7200}
    )
    async for app, http in running_app(quiet, bot=FakeBot()):
        url = f"/api/v1/user/{kim}/conversations"
        assert (await http.get(url, headers=auth(token(kim)))).status_code == 200
        # Ending every pooled connection's backend is what a PostgreSQL restart does to them.
        engine = app.state.container.engine
        async with AsyncExitStack() as held:
            connections = [await held.enter_async_context(engine.connect()) for _ in range(engine.pool.checkedin())]
            pids = [(await c.exec_driver_sql("SELECT pg_backend_pid()")).scalar_one() for c in connections]
        with psycopg.connect(plain_dsn(POSTGRES_URL), autocommit=True) as admin:
            for pid in pids:
                assert admin.execute("SELECT pg_terminate_backend(%s)", (pid,)).fetchone() == (True,)
        assert pids
        for _ in range(3):
            assert (await http.get(url, headers=auth(token(kim)))).status_code == 200
