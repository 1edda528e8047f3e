"""The review queue with the real bot: HTTP → API → the real Rasa (trained model) and action server → PostgreSQL.

Conversations with a fallback, an out-of-scope question, a handoff and a low rating,
plus a message a CSR flags; the queue holds exactly those messages and no other.
Low confidence is turned off here (threshold 0): what the model is unsure of moves
with every training, and tests/integration/test_review.py drives it on purpose.
"""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from tests.conftest import TokenFactory, auth
from tests.support.database import migrated_schema
from tests.support.stack import BotStack, api_server

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def review_api(real_bot: BotStack) -> Iterator[httpx.Client]:
    """An API server of its own (its own schema, so the queue is asserted whole) on the shared real bot."""
    with (
        migrated_schema() as settings,
        api_server(settings, real_bot.rasa_url, {"REVIEW_CONFIDENCE_THRESHOLD": "0"}) as server,
        httpx.Client(base_url=server.url, timeout=30) as client,
    ):
        yield client


def say(api: httpx.Client, token: str, user: str, text: str, cid: str = "") -> dict:
    response = api.post(
        "/api/v1/messages", headers=auth(token), json={"conversation_id": cid, "user_id": user, "message": text}
    )
    assert response.status_code == 200, response.text
    return response.json()


def customer_messages(api: httpx.Client, token: str, user: str, cid: str) -> list[dict]:
    response = api.get(f"/api/v1/user/{user}/messages/{cid}", headers=auth(token))
    return [m for m in response.json()["messages"] if m["sender"] == "user"]


# Phrases the model reads as nlu_fallback or out_of_scope; each in a conversation of its own (two fallbacks
# in a row would hand the conversation over). Which of them the model reads how changes with training, so
# the expected queue is computed from what the bot predicted for each, and at least one of each is required.
UNCLEAR = (
    "the thing",
    "what about it",
    "can you",
    "lol",
    "flurb wibble zorp",
    "what will the weather be like tomorrow",
)


def test_the_queue_holds_the_messages_the_real_bot_got_wrong(review_api: httpx.Client, token: TokenFactory) -> None:
    api = review_api
    expected: dict[tuple[str, str], list[str]] = {}
    for n, text in enumerate(UNCLEAR):
        user = f"rve-u{n}"
        cid = say(api, token(user), user, text)["conversation_id"]
        say(api, token(user), user, "what are your opening hours?", cid)
        for message in customer_messages(api, token(user), user, cid):
            if message["intent"] in ("nlu_fallback", "out_of_scope"):
                expected[(user, message["text"])] = [message["intent"]]
    predicted = [reasons[0] for reasons in expected.values()]
    assert "nlu_fallback" in predicted and "out_of_scope" in predicted, expected

    ben, cat, dan = (token(f"rve-{n}") for n in ("ben", "cat", "dan"))
    b = say(api, ben, "rve-ben", "hello")["conversation_id"]
    say(api, ben, "rve-ben", "what are your opening hours?", b)
    handed = say(api, ben, "rve-ben", "i want to talk to a human", b)
    assert handed["handoff_state"] == "pending_human"
    say(api, ben, "rve-ben", "is anyone there?", b)  # for the CSR: the bot never reads it
    expected[("rve-ben", "what are your opening hours?")] = ["before_handoff"]
    expected[("rve-ben", "i want to talk to a human")] = ["before_handoff"]
    c = say(api, cat, "rve-cat", "hi there")["conversation_id"]
    say(api, cat, "rve-cat", "do you sell shampoo?", c)
    rated = api.post(f"/api/v1/conversations/{c}/feedback", headers=auth(cat), json={"rating": 2})
    assert rated.status_code == 201, rated.text
    for message in customer_messages(api, cat, "rve-cat", c):
        expected[("rve-cat", message["text"])] = [
            *([message["intent"]] if message["intent"] in ("nlu_fallback", "out_of_scope") else []),
            "low_rating",
        ]
    d = say(api, dan, "rve-dan", "good morning")["conversation_id"]
    say(api, dan, "rve-dan", "thanks, bye", d)
    for message in customer_messages(api, dan, "rve-dan", d):
        if message["intent"] in ("nlu_fallback", "out_of_scope"):
            expected[("rve-dan", message["text"])] = [message["intent"]]
    flagged = customer_messages(api, dan, "rve-dan", d)[0]
    csr = auth(token("rve-csr-lena", "csr"))
    response = api.post(f"/api/v1/review/messages/{flagged['id']}/flag", headers=csr, json={"note": "greeting missed"})
    assert response.status_code == 201, response.text
    expected[("rve-dan", "good morning")] = [*expected.get(("rve-dan", "good morning"), []), "flagged"]

    designer = auth(token("rve-designer-ida", "designer"))
    page = api.get("/api/v1/review/queue", headers=designer, params={"limit": 100}).json()
    queued = {(i["user_id"], i["message"]["text"]): i["reasons"] for i in page["items"]}
    assert queued == expected
    assert page["total"] == len(expected) and page["next_before"] is None
    human = next(i for i in page["items"] if i["message"]["text"] == "i want to talk to a human")
    assert human["message"]["intent"] == "request_human" and human["message"]["confidence"] > 0
    assert [t["sender"] for t in human["before"]][-1] == "bot" and human["after"][0]["sender"] == "bot"

    for role in ("client", "csr"):
        assert api.get("/api/v1/review/queue", headers=auth(token("rve-x", role))).status_code == 403

    # Correct a fallback, and it leaves the queue.
    fallback = next(i for i in page["items"] if i["reasons"] == ["nlu_fallback"])
    saved = api.post(
        f"/api/v1/review/messages/{fallback['message']['id']}/annotation",
        headers=designer,
        json={"intent": "out_of_scope"},
    )
    assert saved.status_code == 201 and saved.json()["decision"] == "corrected"
    after = api.get("/api/v1/review/queue", headers=designer, params={"limit": 100}).json()
    assert fallback["message"]["id"] not in [i["message"]["id"] for i in after["items"]]
    assert after["total"] == len(expected) - 1
