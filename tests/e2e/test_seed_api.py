"""The seed API end to end: HTTP → conversation API → real Rasa (trained model) → PostgreSQL."""

from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from tests.conftest import TokenFactory, auth

pytestmark = pytest.mark.e2e


def say(api: httpx.Client, token: str, user: str, text: str, conversation_id: str = "") -> dict:
    response = api.post(
        "/api/v1/messages",
        headers=auth(token),
        json={"conversation_id": conversation_id, "user_id": user, "message": text},
    )
    assert response.status_code == 200, response.text
    return response.json()


def test_readyz_sees_the_database_and_the_real_bot(api: httpx.Client) -> None:
    response = api.get("/readyz")
    assert response.status_code == 200
    assert response.json()["checks"] == {"database": "ok", "bot": "ok"}


def test_a_conversation_with_the_real_bot_is_stored_with_intents(api: httpx.Client, token: TokenFactory) -> None:
    alice = token("e2e-alice")
    hello = say(api, alice, "e2e-alice", "hello")
    cid = hello["conversation_id"]
    assert hello["message"] and hello["handoff_state"] == "bot"

    hours = say(api, alice, "e2e-alice", "what are your opening hours?", cid)
    assert hours["conversation_id"] == cid
    assert hours["message"] and hours["message"] != hello["message"]

    history = api.get(f"/api/v1/user/e2e-alice/messages/{cid}", headers=auth(alice)).json()["messages"]
    users = [m for m in history if m["sender"] == "user"]
    bots = [m for m in history if m["sender"] == "bot"]
    assert [m["text"] for m in users] == ["hello", "what are your opening hours?"]
    assert [m["intent"] for m in users] == ["greet", "faq"]
    assert all(0 < m["confidence"] <= 1 for m in users)
    assert "\n".join(m["text"] for m in bots).startswith(hello["message"])
    assert [m["sender"] for m in history][0] == "user"


def test_asking_for_a_human_reaches_rasa_and_its_action_server(api: httpx.Client, token: TokenFactory) -> None:
    bob = token("e2e-bob")
    reply = say(api, bob, "e2e-bob", "i want to talk to a human")
    history = api.get(f"/api/v1/user/e2e-bob/messages/{reply['conversation_id']}", headers=auth(bob)).json()
    assert history["messages"][0]["intent"] == "request_human"
    assert "team" in reply["message"].lower()


def test_concurrent_messages_to_one_conversation_each_get_their_reply(api: httpx.Client, token: TokenFactory) -> None:
    carol = token("e2e-carol")
    cid = say(api, carol, "e2e-carol", "hi")["conversation_id"]
    texts = ["hello there", "thanks", "what are your opening hours?", "bye", "good morning", "thank you"]
    with ThreadPoolExecutor(len(texts)) as pool:
        replies = list(pool.map(lambda t: say(api, carol, "e2e-carol", t, cid), texts))
    assert all(r["message"] for r in replies)
    history = api.get(f"/api/v1/user/e2e-carol/messages/{cid}", headers=auth(carol)).json()["messages"]
    # Serialised per conversation: each user message is directly followed by its bot reply.
    senders = [m["sender"] for m in history]
    assert senders.count("user") == len(texts) + 1
    for i, message in enumerate(history):
        if message["sender"] == "user":
            assert history[i + 1]["sender"] == "bot", senders


def test_cross_user_access_is_refused_over_http(api: httpx.Client, token: TokenFactory) -> None:
    dan, eve = token("e2e-dan"), token("e2e-eve")
    cid = say(api, dan, "e2e-dan", "hello")["conversation_id"]
    assert api.get(f"/api/v1/user/e2e-dan/messages/{cid}", headers=auth(eve)).status_code == 403
    assert api.get(f"/api/v1/user/e2e-eve/messages/{cid}", headers=auth(eve)).status_code == 404
    response = api.post(
        "/api/v1/messages", headers=auth(eve), json={"conversation_id": cid, "user_id": "e2e-eve", "message": "hi"}
    )
    assert response.status_code == 404
    assert api.post("/api/v1/messages", json={"user_id": "e2e-dan", "message": "hi"}).status_code == 401
