"""WhatsApp end to end: signed webhooks -> the API server (env-configured, as `make run`) -> real Rasa
-> replies at the fake Graph API; PostgreSQL throughout."""

from __future__ import annotations

import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from conversation_api.settings import Settings
from tests.conftest import TokenFactory, auth
from tests.support.fake_graph import FakeGraph
from tests.support.stack import BotStack, api_server
from tests.support.whatsapp import WEBHOOK, new_wa_id, new_wamid, signed, text_payload, wait_until, whatsapp_env

pytestmark = pytest.mark.e2e

HANDOFF = "A member of our team will reply here shortly."


@pytest.fixture(scope="module")
def graph() -> Iterator[FakeGraph]:
    fake = FakeGraph().start()
    yield fake
    fake.stop()


@pytest.fixture(scope="module")
def whatsapp_api(stack_settings: Settings, real_bot: BotStack, graph: FakeGraph) -> Iterator[httpx.Client]:
    with (
        api_server(stack_settings, real_bot.rasa_url, extra_env=whatsapp_env(graph)) as server,
        httpx.Client(base_url=server.url, timeout=30) as client,
    ):
        yield client


def deliver(api: httpx.Client, payload: dict) -> httpx.Response:
    body, headers = signed(payload)
    return api.post(WEBHOOK, content=body, headers=headers)


def history(api: httpx.Client, token: TokenFactory, wa_id: str) -> list[dict]:
    user = f"whatsapp:{wa_id}"
    conversations = api.get(f"/api/v1/user/{user}/conversations", headers=auth(token(user))).json()["conversations"]
    assert [c["channel"] for c in conversations] == ["whatsapp"]
    cid = conversations[0]["conversation_id"]
    return api.get(f"/api/v1/user/{user}/messages/{cid}", headers=auth(token(user))).json()["messages"]


def test_a_signed_text_is_stored_and_rasa_s_reply_is_sent_to_the_customer(
    whatsapp_api: httpx.Client, graph: FakeGraph, token: TokenFactory
) -> None:
    wa_id, wamid = new_wa_id(), new_wamid()
    response = deliver(whatsapp_api, text_payload(wa_id, "hello", wamid=wamid))
    assert response.status_code == 200 and response.json()["messages"] == 1

    texts = wait_until(lambda: graph.texts(wa_id))
    assert len(texts) == 1 and "Welcome" in texts[0]
    [sent] = graph.sends(wa_id)
    assert (sent["to"], sent["type"], sent["messaging_product"]) == (wa_id, "text", "whatsapp")
    assert wamid in graph.reads()
    messages = history(whatsapp_api, token, wa_id)
    assert [(m["sender"], m["text"]) for m in messages] == [("user", "hello"), ("bot", texts[0])]
    assert messages[0]["intent"] == "greet"


def test_five_deliveries_of_one_message_give_one_reply(
    whatsapp_api: httpx.Client, graph: FakeGraph, token: TokenFactory
) -> None:
    wa_id = new_wa_id()
    payload = text_payload(wa_id, "what are your opening hours?")
    with ThreadPoolExecutor(5) as pool:
        responses = list(pool.map(lambda _: deliver(whatsapp_api, payload), range(5)))
    assert [r.status_code for r in responses] == [200] * 5
    assert sorted(r.json()["messages"] for r in responses) == [0, 0, 0, 0, 1]
    wait_until(lambda: graph.texts(wa_id))
    deliver(whatsapp_api, payload)  # and once more, later
    wait_until(lambda: len(history(whatsapp_api, token, wa_id)) >= 2)
    time.sleep(2)  # time for any (wrong) second reply to arrive
    messages = history(whatsapp_api, token, wa_id)
    assert [m["sender"] for m in messages] == ["user", "bot"]
    # Exactly one reply went out: the one stored, Rasa's opening-hours answer.
    assert graph.texts(wa_id) == [messages[1]["text"]] and "open" in messages[1]["text"].lower()


def test_after_asking_for_a_human_the_bot_does_not_answer(
    whatsapp_api: httpx.Client, graph: FakeGraph, token: TokenFactory
) -> None:
    wa_id = new_wa_id()
    deliver(whatsapp_api, text_payload(wa_id, "i want to talk to a human"))
    assert wait_until(lambda: graph.texts(wa_id)) == [HANDOFF]
    assert history(whatsapp_api, token, wa_id)[0]["intent"] == "request_human"
    user = f"whatsapp:{wa_id}"
    states = whatsapp_api.get(f"/api/v1/user/{user}/conversations", headers=auth(token(user))).json()
    assert states["conversations"][0]["handoff_state"] == "pending_human"

    deliver(whatsapp_api, text_payload(wa_id, "hello? anyone?"))
    wait_until(lambda: [m["text"] for m in history(whatsapp_api, token, wa_id)][-1] == "hello? anyone?")
    time.sleep(2)  # time for a (wrong) bot reply to arrive
    assert graph.texts(wa_id) == [HANDOFF]
    assert [m["sender"] for m in history(whatsapp_api, token, wa_id)] == ["user", "bot", "user"]


def test_a_csr_reply_is_sent_to_the_customer(whatsapp_api: httpx.Client, graph: FakeGraph, token: TokenFactory) -> None:
    wa_id = new_wa_id()
    deliver(whatsapp_api, text_payload(wa_id, "can i talk to a human"))
    wait_until(lambda: graph.texts(wa_id))
    user = f"whatsapp:{wa_id}"
    cid = whatsapp_api.get(f"/api/v1/user/{user}/conversations", headers=auth(token(user))).json()["conversations"][0][
        "conversation_id"
    ]

    csr = auth(token("sam", "csr"))
    assert whatsapp_api.post(f"/api/v1/csr/conversations/{cid}/claim", headers=csr).status_code == 200
    reply = whatsapp_api.post(
        f"/api/v1/csr/conversations/{cid}/messages", headers=csr, json={"message": "Hi, Sam here. How can I help?"}
    )
    assert reply.status_code == 201, reply.text
    assert reply.json()["delivered_via"] == "whatsapp"
    assert graph.texts(wa_id) == [HANDOFF, "Hi, Sam here. How can I help?"]
    assert graph.sends(wa_id)[-1]["to"] == wa_id
