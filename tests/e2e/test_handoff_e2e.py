"""Human handoff end to end: HTTP → API → the real Rasa (trained model) and its action server → PostgreSQL.

Rasa's own tracker is the witness: while a human has the conversation Rasa is
paused and receives none of the customer's messages; resolving resumes it.
"""

from __future__ import annotations

import time
from collections.abc import Iterator

import httpx
import pytest

from conversation_api.settings import Settings
from tests.conftest import TokenFactory, auth
from tests.support.stack import RASA_TOKEN, BotStack, api_server

pytestmark = pytest.mark.e2e


def say(api: httpx.Client, token: str, user: str, text: str, conversation_id: str = "") -> dict:
    response = api.post(
        "/api/v1/messages",
        headers=auth(token),
        json={"conversation_id": conversation_id, "user_id": user, "message": text},
    )
    assert response.status_code == 200, response.text
    return response.json()


def tracker(rasa_url: str, conversation_id: str) -> dict:
    response = httpx.get(f"{rasa_url}/conversations/{conversation_id}/tracker", params={"token": RASA_TOKEN})
    assert response.status_code == 200, response.text
    return response.json()


def user_texts(state: dict) -> list[str]:
    return [e["text"] for e in state["events"] if e["event"] == "user"]


def test_no_bot_reply_while_a_human_has_it_and_rasa_agrees(
    api: httpx.Client, real_bot: BotStack, token: TokenFactory
) -> None:
    customer, csr = token("e2e-hugo"), token("e2e-csr-sam", "csr")
    trigger = say(api, customer, "e2e-hugo", "i want to talk to a human")
    cid = trigger["conversation_id"]
    assert "team" in trigger["message"].lower() and trigger["handoff_state"] == "pending_human"
    state = tracker(real_bot.rasa_url, cid)
    assert state["paused"] is True and state["slots"]["handoff_requested"] is True

    for text in ("hello?", "what are your opening hours?"):
        reply = say(api, customer, "e2e-hugo", text, cid)
        assert (reply["message"], reply["messages"], reply["handoff_state"]) == ("", [], "pending_human")

    queue = api.get("/api/v1/csr/queue", headers=auth(csr)).json()["items"]
    item = next(i for i in queue if i["conversation_id"] == cid)
    assert item["user_id"] == "e2e-hugo" and item["intents"] == ["request_human"]
    assert item["last_message"]["text"] == "what are your opening hours?"

    assert api.post(f"/api/v1/csr/conversations/{cid}/claim", headers=auth(csr)).status_code == 200
    sent = api.post(
        f"/api/v1/csr/conversations/{cid}/messages", headers=auth(csr), json={"message": "Hi Hugo, we open at 9."}
    )
    assert sent.status_code == 201, sent.text
    assert say(api, customer, "e2e-hugo", "great, thanks", cid)["message"] == ""

    # Rasa received nothing after the handoff: only the triggering message is in its tracker.
    assert user_texts(tracker(real_bot.rasa_url, cid)) == ["i want to talk to a human"]
    history = api.get(f"/api/v1/user/e2e-hugo/messages/{cid}", headers=auth(customer)).json()["messages"]
    assert [m["sender"] for m in history] == ["user", "bot", "user", "user", "csr", "user"]
    assert history[4]["text"] == "Hi Hugo, we open at 9."

    resolved = api.post(f"/api/v1/csr/conversations/{cid}/resolve", headers=auth(csr), json={"note": "answered"})
    assert resolved.status_code == 200 and resolved.json()["bot_in_step"] is True
    state = tracker(real_bot.rasa_url, cid)
    assert state["paused"] is False and state["slots"]["handoff_requested"] is False

    back = say(api, customer, "e2e-hugo", "hello", cid)
    assert back["message"] and back["handoff_state"] == "bot"
    assert user_texts(tracker(real_bot.rasa_url, cid)) == ["i want to talk to a human", "hello"]
    transcript = api.get(f"/api/v1/csr/conversations/{cid}", headers=auth(csr)).json()
    assert [(t["to_state"], t["reason"]) for t in transcript["transitions"]] == [
        ("pending_human", "customer_request"),
        ("with_human", "claimed"),
        ("bot", "resolved"),
    ]


@pytest.fixture(scope="module")
def impatient_api(stack_settings: Settings, real_bot: BotStack) -> Iterator[str]:
    """A second API process on the same database and Rasa, with second-long handoff timeouts."""
    env = {"HANDOFF_TIMEOUT": "1", "HANDOFF_IDLE_TIMEOUT": "1.5", "HANDOFF_SWEEP_INTERVAL": "0.2"}
    with api_server(stack_settings, real_bot.rasa_url, extra_env=env) as server:
        yield server.url


def wait_for_state(client: httpx.Client, csr: str, cid: str, wanted: str, seconds: float = 10) -> dict:
    deadline = time.monotonic() + seconds
    while True:
        transcript = client.get(f"/api/v1/csr/conversations/{cid}", headers=auth(csr)).json()
        if transcript["handoff_state"] == wanted or time.monotonic() > deadline:
            return transcript
        time.sleep(0.2)


def test_unclaimed_and_idle_timeouts_resume_the_real_rasa(
    impatient_api: str, real_bot: BotStack, token: TokenFactory
) -> None:
    customer, csr = token("e2e-tess"), token("e2e-csr-tim", "csr")
    with httpx.Client(base_url=impatient_api, timeout=30) as client:
        cid = say(client, customer, "e2e-tess", "can i talk to a human")["conversation_id"]
        assert tracker(real_bot.rasa_url, cid)["paused"] is True
        transcript = wait_for_state(client, csr, cid, "bot")
        assert transcript["handoff_state"] == "bot"
        assert (transcript["transitions"][-1]["actor"], transcript["transitions"][-1]["reason"]) == (
            "system",
            "unclaimed_timeout",
        )
        assert (
            transcript["messages"][-1]["sender"] == "bot"
            and "no one from our team" in transcript["messages"][-1]["text"]
        )
        assert tracker(real_bot.rasa_url, cid)["paused"] is False
        assert say(client, customer, "e2e-tess", "hello", cid)["message"]

        say(client, customer, "e2e-tess", "i want a human", cid)
        assert client.post(f"/api/v1/csr/conversations/{cid}/claim", headers=auth(csr)).status_code == 200
        transcript = wait_for_state(client, csr, cid, "bot")
        assert transcript["transitions"][-1]["reason"] == "idle_timeout"
        assert tracker(real_bot.rasa_url, cid)["paused"] is False
        assert user_texts(tracker(real_bot.rasa_url, cid)) == ["can i talk to a human", "hello", "i want a human"]
