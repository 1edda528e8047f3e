"""Handoff state changes publish handoff.requested/claimed/resolved and move the handoff and CSR metrics."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import select

from conversation_api.db import create_engine, create_session_factory
from conversation_api.events.outbox import OutboxEvent
from conversation_api.settings import Settings
from tests.conftest import TokenFactory, auth
from tests.support.events import ScriptedBot, app_client, fresh_database, metric_value


@pytest.fixture(params=["postgresql", "sqlite"])
def own_db(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Settings]:
    with fresh_database(request.param, tmp_path) as settings:
        yield settings


async def events_of(settings: Settings, conversation_id: str) -> list[OutboxEvent]:
    engine = create_engine(settings)
    try:
        async with create_session_factory(engine)() as session:
            query = select(OutboxEvent).where(OutboxEvent.conversation_id == conversation_id).order_by(OutboxEvent.id)
            return list(await session.scalars(query))
    finally:
        await engine.dispose()


async def test_a_full_handoff_is_on_record_and_measured(own_db: Settings, token: TokenFactory) -> None:
    ida, sam = token("h-ida"), token("h-sam", "csr")
    async with app_client(own_db, bot=ScriptedBot()) as (_, client):
        before = (await client.get("/metrics")).text

        async def say(text: str, cid: str = "") -> dict:
            body = {"conversation_id": cid, "user_id": "h-ida", "message": text}
            response = await client.post("/api/v1/messages", headers=auth(ida), json=body)
            assert response.status_code == 200, response.text
            return dict(response.json())

        cid = (await say("human please"))["conversation_id"]
        assert (await say("are you there?", cid))["handoff_state"] == "pending_human"
        csr = f"/api/v1/csr/conversations/{cid}"
        assert (await client.post(f"{csr}/claim", headers=auth(sam))).status_code == 200
        await asyncio.sleep(0.2)
        for text in ("Hi Ida, Sam here.", "How can I help?"):
            response = await client.post(f"{csr}/messages", headers=auth(sam), json={"message": text})
            assert response.status_code == 201, response.text
        assert (await client.post(f"{csr}/resolve", headers=auth(sam))).status_code == 200
        after = (await client.get("/metrics")).text

    def delta(name: str, **labels: str) -> float:
        return metric_value(after, name, **labels) - metric_value(before, name, **labels)

    events = await events_of(own_db, cid)
    assert [e.type for e in events] == [
        "message.received",
        "intent.detected",
        "handoff.requested",
        "message.received",  # routed to the human: no intent.detected
        "handoff.claimed",
        "handoff.resolved",
    ]
    requested, claimed, resolved = events[2].payload, events[4].payload, events[5].payload
    assert requested | {"actor": None} == {
        "from_state": "bot",
        "to_state": "pending_human",
        "actor": None,
        "reason": "customer_request",
    }
    assert claimed["csr_id"] == "h-sam" and claimed["to_state"] == "with_human"
    assert resolved["to_state"] == "bot" and resolved["actor"] == "h-sam" and resolved["reason"] == "resolved"

    assert delta("reviewbot_handoffs_requested_total", reason="customer_request", channel="api") == 1
    for state in ("pending_human", "with_human", "bot"):
        assert delta("reviewbot_handoff_transitions_total", to_state=state) == 1
    assert delta("reviewbot_messages_total", direction="sent", sender="csr", channel="api") == 2
    # The first CSR reply only: the second is not a "first response".
    assert delta("reviewbot_csr_first_response_seconds_count", channel="api") == 1
    assert 0.2 <= delta("reviewbot_csr_first_response_seconds_sum", channel="api") < 30
