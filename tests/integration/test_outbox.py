"""Nothing is lost while Redis is down: events wait in the outbox and arrive once per group, in order."""

from __future__ import annotations

import asyncio
from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path

import pytest
from redis.asyncio import Redis
from sqlalchemy import func, select

from conversation_api.db import create_engine, create_session_factory
from conversation_api.events.consumer import consume
from conversation_api.events.envelope import Event
from conversation_api.events.outbox import OutboxEvent
from conversation_api.events.redis_streams import RedisStreamsBus
from conversation_api.settings import Settings
from tests.conftest import TokenFactory, auth
from tests.support.events import app_client, fresh_database, metric_value, redis_server, unique_prefix
from tests.support.fakes import FakeBot
from tests.support.processes import free_port

TYPES = ["message.received", "intent.detected"]


@pytest.fixture(params=["postgresql", "sqlite"])
def own_db(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Settings]:
    with fresh_database(request.param, tmp_path) as settings:
        yield settings


USER = "outbox-alice"


async def outbox_rows(settings: Settings) -> list[OutboxEvent]:
    engine = create_engine(settings)
    try:
        async with create_session_factory(engine)() as session:
            return list(await session.scalars(select(OutboxEvent).order_by(OutboxEvent.id)))
    finally:
        await engine.dispose()


async def unpublished(settings: Settings) -> int:
    engine = create_engine(settings)
    try:
        async with create_session_factory(engine)() as session:
            query = select(func.count()).where(OutboxEvent.published_at.is_(None))
            return int(await session.scalar(query) or 0)
    finally:
        await engine.dispose()


async def collect(url: str, prefix: str, group: str, expected: int) -> list[Event]:
    bus = RedisStreamsBus(Redis.from_url(url), prefix=prefix)
    received: list[Event] = []
    stop = asyncio.Event()

    async def handler(event: Event) -> None:
        if event.user_id != USER:  # other tests share the PostgreSQL schema's outbox
            return
        received.append(event)
        if len(received) >= expected:
            stop.set()

    try:
        await asyncio.wait_for(
            consume(bus, group=group, consumer=f"{group}-1", types=TYPES, handler=handler, stop=stop, block_ms=100),
            timeout=30,
        )
        # Nothing more is waiting for this group.
        more = await bus.read(group=group, consumer=f"{group}-1", types=TYPES, block_ms=200)
        assert [d.event for d in more if d.event.user_id == USER] == []
    finally:
        await bus.aclose()
    return received


async def test_events_survive_a_redis_outage_and_arrive_once_per_group_in_order(
    own_db: Settings, token: TokenFactory
) -> None:
    port, prefix = free_port(), unique_prefix()
    settings = own_db.model_copy(
        update={
            "events_redis_url": f"redis://127.0.0.1:{port}/0",
            "events_stream_prefix": prefix,
            "event_relay_interval": 0.05,
        }
    )
    alice = token("outbox-alice")
    before = {row.event_id for row in await outbox_rows(settings)}
    async with app_client(settings, bot=FakeBot()) as (_, client):
        conversations = []
        for n in range(3):
            body = {"user_id": "outbox-alice", "message": f"first {n}"}
            response = await client.post("/api/v1/messages", headers=auth(alice), json=body)
            assert response.status_code == 200, response.text  # Redis is down; the API does not care
            conversations.append(response.json()["conversation_id"])
        for i in range(3):
            for cid in conversations:
                body = {"conversation_id": cid, "user_id": "outbox-alice", "message": f"m{i}"}
                assert (await client.post("/api/v1/messages", headers=auth(alice), json=body)).status_code == 200

        rows = [r for r in await outbox_rows(settings) if r.event_id not in before]
        assert len(rows) == 24 and all(r.published_at is None for r in rows)
        for _ in range(50):  # the relay reports its backlog after a failed attempt
            exposition = (await client.get("/metrics")).text
            if metric_value(exposition, "reviewbot_event_outbox_backlog") >= 24:
                break
            await asyncio.sleep(0.1)
        assert metric_value(exposition, "reviewbot_event_outbox_backlog") >= 24
        assert metric_value(exposition, "reviewbot_event_publish_failures_total") >= 1

        with redis_server(port) as url:
            for _ in range(300):
                if await unpublished(settings) == 0:
                    break
                await asyncio.sleep(0.1)
            assert await unpublished(settings) == 0
            groups = {group: await collect(url, prefix, group, 24) for group in ("crm", "analytics")}

    expected_ids = [r.event_id for r in rows]
    for group, events in groups.items():
        ids = [e.id for e in events]
        assert sorted(ids) == sorted(expected_ids), group  # every event, exactly once
        by_conversation: dict[tuple[str, str], list[Event]] = defaultdict(list)
        for event in events:
            by_conversation[(event.type, event.conversation_id or "")].append(event)
        assert len(by_conversation) == 6
        for (kind, cid), stream in by_conversation.items():
            assert [e.sequence for e in stream] == sorted(e.sequence for e in stream), (group, kind, cid)
            assert [e.payload["message_id"] for e in stream] == sorted(e.payload["message_id"] for e in stream)
            if kind == "message.received":
                assert [e.payload["text"] for e in stream][1:] == ["m0", "m1", "m2"]
        assert {e.user_id for e in events} == {"outbox-alice"} and {e.channel for e in events} == {"api"}


async def test_an_event_exists_exactly_when_its_message_does(own_db: Settings, token: TokenFactory) -> None:
    bob, eve = token("outbox-bob"), token("outbox-eve")
    async with app_client(own_db, bot=FakeBot(fail=True)) as (_, client):
        before = len(await outbox_rows(own_db))
        body = {"user_id": "outbox-bob", "message": "x"}
        failed = await client.post("/api/v1/messages", headers=auth(bob), json=body)
        assert failed.status_code == 503
        cid = failed.json()["conversation_id"]
        body = {"conversation_id": cid, "user_id": "outbox-eve", "message": "y"}
        refused = await client.post("/api/v1/messages", headers=auth(eve), json=body)
        assert refused.status_code == 404
        rows = (await outbox_rows(own_db))[before:]
    # The stored message has its event and the bot failure is on record; the refused one left no trace.
    assert [(r.type, r.conversation_id) for r in rows] == [("message.received", cid), ("bot.unavailable", cid)]
    assert rows[0].payload["message_id"] == failed.json()["message_id"] == rows[1].payload["message_id"]


async def test_events_of_the_in_process_bus_reach_subscribers_in_the_same_process(
    own_db: Settings, token: TokenFactory
) -> None:
    carol = token("outbox-carol")
    settings = own_db.model_copy(update={"event_relay_interval": 0.05})
    async with app_client(settings, bot=FakeBot()) as (app, client):
        bus = app.state.container.bus
        body = {"user_id": "outbox-carol", "message": "hi"}
        response = await client.post("/api/v1/messages", headers=auth(carol), json=body)
        cid = response.json()["conversation_id"]
        got: list[Event] = []
        for _ in range(100):
            deliveries = await bus.read(group="t", consumer="t", types=TYPES, block_ms=50)
            got += [d.event for d in deliveries if d.event.conversation_id == cid]
            if len(got) == 2:
                break
        assert [e.type for e in got] == TYPES
        assert got[1].payload["intent"] == "echo" and got[1].payload["entities"] == [{"entity": "word", "value": "hi"}]
