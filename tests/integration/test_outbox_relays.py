"""Several relays on one PostgreSQL outbox share the work: every event published once, each conversation in order."""

from __future__ import annotations

import asyncio
from collections import defaultdict
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from redis.asyncio import Redis
from sqlalchemy import select, text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from conversation_api.db import create_engine, create_session_factory
from conversation_api.events.envelope import Event
from conversation_api.events.outbox import OutboxEvent, insert_events, new_event
from conversation_api.events.redis_streams import RedisStreamsBus
from conversation_api.events.relay import OutboxRelay
from conversation_api.settings import Settings
from tests.support.events import REDIS_URL, delete_prefix, fresh_database, unique_prefix

TYPES = ["message.received", "intent.detected"]


@pytest.fixture
def own_pg(tmp_path: Path) -> Iterator[Settings]:
    with fresh_database("postgresql", tmp_path) as settings:
        yield settings


@pytest.fixture
async def prefix() -> AsyncIterator[str]:
    value = unique_prefix()
    yield value
    delete_prefix(REDIS_URL, value)


async def add_events(sessions: async_sessionmaker[AsyncSession], conversations: list[str]) -> list[str]:
    """One outbox row per entry of `conversations` (types alternate), in that order; their event ids."""
    rows = [
        new_event(type=TYPES[n % 2], conversation_id=cid, user_id="relay-test", channel="api", payload={"n": n})[1]
        for n, cid in enumerate(conversations)
    ]
    async with sessions() as session, session.begin():
        await session.execute(insert_events(rows))
    return [row["event_id"] for row in rows]


async def published(prefix: str) -> list[Event]:
    """Every event in the streams, in stream order (one stream after the other)."""
    client = Redis.from_url(REDIS_URL)
    try:
        events = []
        for kind in TYPES:
            for _, fields in await client.xrange(f"{prefix}:{kind}"):
                events.append(Event.from_json(fields[b"event"]))
        return events
    finally:
        await client.aclose()


def assert_in_order_per_conversation(events: list[Event]) -> None:
    by_stream: dict[tuple[str, str | None], list[int]] = defaultdict(list)
    for event in events:
        assert event.sequence is not None
        by_stream[(event.type, event.conversation_id)].append(event.sequence)
    for key, sequences in by_stream.items():
        assert sequences == sorted(sequences), key


async def test_a_relay_takes_the_rows_another_relay_holds_not_and_keeps_each_conversation_in_order(
    own_pg: Settings, prefix: str
) -> None:
    engine, other = create_engine(own_pg), create_engine(own_pg)
    sessions = create_session_factory(engine)
    bus = RedisStreamsBus(Redis.from_url(REDIS_URL), prefix=prefix)
    relay = OutboxRelay(sessions=sessions, bus=bus, lock_rows=True, batch_size=100)
    try:
        ids = await add_events(sessions, ["c1", "c1", "c2", "c1", "c3", "c2"])
        async with other.connect() as holder, holder.begin():
            # Another relay is publishing the first two rows (c1's first events): it holds their locks.
            locked = await holder.execute(
                text("SELECT id FROM outbox_event ORDER BY id LIMIT 2 FOR UPDATE"),
            )
            assert len(locked.all()) == 2
            # Without SKIP LOCKED this relay would wait for that transaction; it publishes what it may.
            assert await asyncio.wait_for(relay.relay_once(), timeout=5) == 3
            assert [e.id for e in await published(prefix)] == [ids[2], ids[4], ids[5]]  # c2, c3, c2; not c1's third
        assert await relay.relay_once() == 3
        events = await published(prefix)
        assert sorted(e.id for e in events) == sorted(ids)
        assert_in_order_per_conversation(events)
    finally:
        await bus.aclose()
        await engine.dispose()
        await other.dispose()


async def test_two_relays_on_one_outbox_publish_every_event_exactly_once(own_pg: Settings, prefix: str) -> None:
    engines = [create_engine(own_pg), create_engine(own_pg)]
    buses = [RedisStreamsBus(Redis.from_url(REDIS_URL), prefix=prefix) for _ in engines]
    relays = [
        OutboxRelay(sessions=create_session_factory(engine), bus=bus, lock_rows=True, batch_size=20)
        for engine, bus in zip(engines, buses, strict=True)
    ]
    try:
        ids: list[str] = []
        conversations = [f"c{n % 50}" for n in range(100)]
        for _ in range(12):  # 1200 events written while the relays run, like replicas behind a busy API
            ids += await add_events(create_session_factory(engines[0]), conversations)
        counts = [0, 0]

        async def drain(n: int) -> None:
            idle = 0
            while idle < 5:
                published_now = await relays[n].relay_once()
                counts[n] += published_now
                idle = 0 if published_now else idle + 1
                await asyncio.sleep(0)

        await asyncio.wait_for(asyncio.gather(drain(0), drain(1)), timeout=60)
        events = await published(prefix)
        assert len(events) == len(ids) == sum(counts)
        assert sorted(e.id for e in events) == sorted(ids)  # none twice, none missing
        assert min(counts) > 0, counts  # both relays did part of the work
        assert_in_order_per_conversation(events)
        async with create_session_factory(engines[1])() as session:
            left = (await session.scalars(select(OutboxEvent.id).where(OutboxEvent.published_at.is_(None)))).all()
        assert left == []
    finally:
        for bus in buses:
            await bus.aclose()
        for engine in engines:
            await engine.dispose()
