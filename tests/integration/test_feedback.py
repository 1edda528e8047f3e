"""POST /api/v1/conversations/{id}/feedback, and the bot's feedback flow landing in the same table."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest
from sqlalchemy import select

from conversation_api.db import create_engine, create_session_factory
from conversation_api.events.outbox import OutboxEvent
from conversation_api.feedback.models import Feedback
from conversation_api.settings import Settings
from tests.conftest import TokenFactory, auth, running_app
from tests.support.events import ScriptedBot, metric_value


@pytest.fixture
async def client(db_settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    async for _, http in running_app(db_settings, bot=ScriptedBot()):
        yield http


async def start(client: httpx.AsyncClient, token: str, user: str, text: str = "hello", cid: str = "") -> str:
    body = {"conversation_id": cid, "user_id": user, "message": text}
    response = await client.post("/api/v1/messages", headers=auth(token), json=body)
    assert response.status_code == 200, response.text
    return str(response.json()["conversation_id"])


async def stored(settings: Settings, conversation_id: str) -> tuple[list[Feedback], list[OutboxEvent]]:
    engine = create_engine(settings)
    try:
        async with create_session_factory(engine)() as session:
            feedback = list(await session.scalars(select(Feedback).where(Feedback.conversation_id == conversation_id)))
            events = list(
                await session.scalars(
                    select(OutboxEvent)
                    .where(OutboxEvent.conversation_id == conversation_id, OutboxEvent.type == "feedback.received")
                    .order_by(OutboxEvent.id)
                )
            )
            return feedback, events
    finally:
        await engine.dispose()


async def test_the_owner_rates_a_conversation_once(
    client: httpx.AsyncClient, token: TokenFactory, db_settings: Settings
) -> None:
    alice = token("fb-alice")
    cid = await start(client, alice, "fb-alice")
    before = metric_value((await client.get("/metrics")).text, "reviewbot_feedback_rating_count", source="api")

    response = await client.post(
        f"/api/v1/conversations/{cid}/feedback", headers=auth(alice), json={"rating": 4, "comment": " quick help "}
    )
    assert response.status_code == 201, response.text
    assert response.json() | {"created_at": None} == {
        "conversation_id": cid,
        "rating": 4,
        "comment": "quick help",
        "source": "api",
        "created_at": None,
    }

    again = await client.post(f"/api/v1/conversations/{cid}/feedback", headers=auth(alice), json={"rating": 1})
    assert again.status_code == 409
    assert again.json()["code"] == "feedback_already_given" and again.json()["conversation_id"] == cid

    feedback, events = await stored(db_settings, cid)
    assert [(f.rating, f.comment, f.source, f.user_id) for f in feedback] == [(4, "quick help", "api", "fb-alice")]
    assert [e.payload for e in events] == [
        {"workflow": "feedback", "success": True, "source": "api", "data": {"rating": 4, "comment": "quick help"}}
    ]
    after = metric_value((await client.get("/metrics")).text, "reviewbot_feedback_rating_count", source="api")
    assert after == before + 1


@pytest.mark.parametrize(
    "body",
    [
        {"rating": 0},
        {"rating": 6},
        {"rating": 3.5},
        {"rating": "five"},
        {},
        {"rating": 3, "comment": "x" * 2001},
        {"rating": 3, "stars": 5},
    ],
)
async def test_invalid_feedback_is_refused_with_422_and_nothing_is_stored(
    client: httpx.AsyncClient, token: TokenFactory, db_settings: Settings, body: dict
) -> None:
    bob = token("fb-bob")
    cid = await start(client, bob, "fb-bob")
    response = await client.post(f"/api/v1/conversations/{cid}/feedback", headers=auth(bob), json=body)
    assert response.status_code == 422, response.text
    assert response.json()["detail"]
    assert await stored(db_settings, cid) == ([], [])


async def test_only_the_owner_may_rate(client: httpx.AsyncClient, token: TokenFactory, db_settings: Settings) -> None:
    carol, mallory, admin = token("fb-carol"), token("fb-mallory"), token("fb-admin", "admin")
    cid = await start(client, carol, "fb-carol")
    for intruder in (mallory, admin):
        response = await client.post(
            f"/api/v1/conversations/{cid}/feedback", headers=auth(intruder), json={"rating": 1}
        )
        assert response.status_code == 404
    assert (await client.post(f"/api/v1/conversations/{cid}/feedback", json={"rating": 1})).status_code == 401
    missing = await client.post("/api/v1/conversations/nope/feedback", headers=auth(carol), json={"rating": 5})
    assert missing.status_code == 404
    assert await stored(db_settings, cid) == ([], [])


async def test_the_bots_feedback_flow_lands_in_the_same_place(
    client: httpx.AsyncClient, token: TokenFactory, db_settings: Settings
) -> None:
    dan = token("fb-dan")
    cid = await start(client, dan, "fb-dan")
    before = metric_value((await client.get("/metrics")).text, "reviewbot_feedback_rating_sum", source="bot")
    await start(client, dan, "fb-dan", "rate 2 too slow", cid)
    await start(client, dan, "fb-dan", "rate 5 changed my mind", cid)  # the first rating stands

    feedback, events = await stored(db_settings, cid)
    assert [(f.rating, f.comment, f.source) for f in feedback] == [(2, "too slow", "bot")]
    assert [e.payload["data"]["rating"] for e in events] == [2, 5]  # both reports are published as they happened
    conflict = await client.post(f"/api/v1/conversations/{cid}/feedback", headers=auth(dan), json={"rating": 3})
    assert conflict.status_code == 409
    after = metric_value((await client.get("/metrics")).text, "reviewbot_feedback_rating_sum", source="bot")
    assert after == before + 2
