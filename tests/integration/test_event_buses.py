"""Both EventBus adapters, the same contract: the in-process bus and Redis Streams on the real Redis."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
from prometheus_client import REGISTRY
from redis.asyncio import Redis

from conversation_api.events.bus import EventBus, EventBusUnavailable
from conversation_api.events.consumer import consume, handle_delivery
from conversation_api.events.envelope import Event
from conversation_api.events.in_process import InProcessBus
from conversation_api.events.redis_streams import RedisStreamsBus
from tests.support.events import REDIS_URL, delete_prefix, unique_prefix
from tests.support.processes import free_port


@pytest.fixture(params=["in_process", "redis"])
async def bus(request: pytest.FixtureRequest) -> AsyncIterator[EventBus]:
    if request.param == "in_process":
        yield InProcessBus(claim_idle_seconds=0.2)
        return
    prefix = unique_prefix()
    redis_bus = RedisStreamsBus(Redis.from_url(REDIS_URL), prefix=prefix, claim_idle_ms=200)
    try:
        yield redis_bus
    finally:
        await redis_bus.aclose()
        delete_prefix(REDIS_URL, prefix)


def event(kind: str, conversation: str, n: int) -> Event:
    return Event(type=kind, conversation_id=conversation, user_id="u", channel="api", payload={"n": n})


async def drain(bus: EventBus, group: str, consumer: str, types: list[str], *, ack: bool = True) -> list[Event]:
    seen: list[Event] = []
    while deliveries := await bus.read(group=group, consumer=consumer, types=types, count=7, block_ms=50):
        for delivery in deliveries:
            seen.append(delivery.event)
            if ack:
                await bus.ack(delivery)
    return seen


async def test_every_group_sees_every_event_of_its_types_in_order(bus: EventBus) -> None:
    published = [event("message.received", f"c{i % 3}", i) for i in range(20)]
    published += [event("intent.detected", "c0", 100 + i) for i in range(5)]
    await bus.publish(published)

    first = await drain(bus, "analytics", "a-1", ["message.received"])
    second = await drain(bus, "crm", "c-1", ["message.received", "intent.detected"])

    assert [e.id for e in first] == [e.id for e in published[:20]]
    assert sorted(e.id for e in second) == sorted(e.id for e in published)
    for conversation in ("c0", "c1", "c2"):
        got = [e.payload["n"] for e in second if e.conversation_id == conversation and e.type == "message.received"]
        assert got == sorted(got) and got
    assert await drain(bus, "analytics", "a-1", ["message.received"]) == []
    # The envelope survives the trip unchanged.
    assert first[0] == published[0]


async def test_within_a_group_each_event_goes_to_one_consumer(bus: EventBus) -> None:
    await bus.publish([event("order.placed", "c", i) for i in range(30)])
    one, two = [], []
    for _ in range(10):
        one += await drain(bus, "shop", "one", ["order.placed"])
        two += await drain(bus, "shop", "two", ["order.placed"])
    ids = [e.id for e in one + two]
    assert len(ids) == 30 and len(set(ids)) == 30


async def test_unacknowledged_events_are_delivered_again(bus: EventBus) -> None:
    await bus.publish([event("contact.updated", "c", i) for i in range(3)])
    taken = await drain(bus, "crm", "crashed", ["contact.updated"], ack=False)
    assert len(taken) == 3
    await asyncio.sleep(0.3)  # longer than the claim idle time
    retaken = await drain(bus, "crm", "survivor", ["contact.updated"])
    assert [e.id for e in retaken] == [e.id for e in taken]
    await asyncio.sleep(0.3)
    assert await drain(bus, "crm", "survivor", ["contact.updated"]) == []


async def test_consume_runs_the_handler_once_per_event_id_and_retries_failures(bus: EventBus) -> None:
    duplicate = event("feedback.received", "c", 1)
    later = event("feedback.received", "c", 2)
    await bus.publish([duplicate, duplicate, later])  # a relay crash can publish an event twice
    handled: list[str] = []
    failures = {"left": 1}
    stop = asyncio.Event()

    async def handler(received: Event) -> None:
        if received.id == later.id and failures["left"]:
            failures["left"] -= 1
            raise RuntimeError("CRM hiccup")
        handled.append(received.id)
        if received.id == later.id:
            stop.set()

    await asyncio.wait_for(
        consume(bus, group="g", consumer="w", types=["feedback.received"], handler=handler, stop=stop, block_ms=50),
        timeout=10,
    )
    assert handled == [duplicate.id, later.id]
    assert await bus.seen("g", duplicate.id) and not await bus.seen("other", duplicate.id)


async def test_redis_consumer_resumes_its_own_pending_entries_after_a_restart() -> None:
    prefix = unique_prefix()
    first = RedisStreamsBus(Redis.from_url(REDIS_URL), prefix=prefix)
    try:
        await first.publish([event("order.cancelled", "c", i) for i in range(4)])
        taken = await drain(first, "g", "worker-1", ["order.cancelled"], ack=False)
        assert len(taken) == 4
        restarted = RedisStreamsBus(Redis.from_url(REDIS_URL), prefix=prefix)
        again = await drain(restarted, "g", "worker-1", ["order.cancelled"])
        assert [e.id for e in again] == [e.id for e in taken]
        await restarted.aclose()
    finally:
        await first.aclose()
        delete_prefix(REDIS_URL, prefix)


async def test_redis_down_is_reported_as_unavailable() -> None:
    dead = RedisStreamsBus(Redis.from_url(f"redis://127.0.0.1:{free_port()}/0", socket_connect_timeout=1))
    with pytest.raises(EventBusUnavailable):
        await dead.publish([event("message.received", "c", 1)])
    with pytest.raises(EventBusUnavailable):
        await dead.read(group="g", consumer="c", types=["message.received"], block_ms=10)
    await dead.aclose()


async def dead_letters(bus: EventBus) -> list[tuple[str, str, int, str]]:
    """(event id, group, deliveries, error) of each dead letter, whichever adapter holds them."""
    if isinstance(bus, InProcessBus):
        return [(d.delivery.event.id, d.delivery.group, d.delivery.deliveries, d.error) for d in bus.dead]
    assert isinstance(bus, RedisStreamsBus)
    return [(d.event.id, d.group, d.deliveries, d.error) for d in await bus.dead_letters()]


async def nothing_pending(bus: EventBus, group: str, kind: str) -> bool:
    if isinstance(bus, InProcessBus):
        return bus.pending_count(group) == 0
    assert isinstance(bus, RedisStreamsBus)
    client = Redis.from_url(REDIS_URL)
    try:
        summary = await client.xpending(bus.stream(kind), group)
    finally:
        await client.aclose()
    return int(summary["pending"]) == 0


async def test_an_event_the_handler_keeps_failing_on_is_dead_lettered_after_n_deliveries(bus: EventBus) -> None:
    bad, good = event("order.placed", "c", 1), event("order.placed", "c", 2)
    await bus.publish([bad, good])
    calls: list[str] = []
    stop = asyncio.Event()

    async def handler(received: Event) -> None:
        calls.append(received.id)
        if received.id == bad.id:
            raise RuntimeError("the CRM refuses this order")

    before = REGISTRY.get_sample_value(
        "reviewbot_events_dead_lettered_total", {"group": "billing", "type": "order.placed"}
    )
    consumer = asyncio.create_task(
        consume(
            bus,
            group="billing",
            consumer="b-1",
            types=["order.placed"],
            handler=handler,
            stop=stop,
            block_ms=50,
            max_deliveries=3,
        )
    )
    try:
        for _ in range(200):
            if await dead_letters(bus):
                break
            await asyncio.sleep(0.05)
        await asyncio.sleep(0.6)  # three claim-idle periods: it does not come round again
    finally:
        stop.set()
        await asyncio.wait_for(consumer, timeout=5)
    assert calls.count(bad.id) == 3 and calls.count(good.id) == 1
    assert await dead_letters(bus) == [(bad.id, "billing", 3, "RuntimeError: the CRM refuses this order")]
    assert await nothing_pending(bus, "billing", "order.placed")
    after = REGISTRY.get_sample_value(
        "reviewbot_events_dead_lettered_total", {"group": "billing", "type": "order.placed"}
    )
    assert (after or 0) == (before or 0) + 1


async def test_an_event_its_consumers_died_on_is_dead_lettered_without_running_the_handler(bus: EventBus) -> None:
    crash = event("contact.updated", "c", 1)
    await bus.publish([crash])
    for n in range(3):  # three consumers took it and died before acknowledging it (killed, out of memory)
        [taken] = await bus.read(group="crm", consumer=f"doomed-{n}", types=["contact.updated"], block_ms=50)
        assert taken.deliveries == n + 1
        await asyncio.sleep(0.25)  # longer than the claim idle time
    [delivery] = await bus.read(group="crm", consumer="careful", types=["contact.updated"], block_ms=50)
    assert delivery.deliveries == 4
    ran: list[Event] = []

    async def handler(received: Event) -> None:
        ran.append(received)

    assert not await handle_delivery(bus, delivery, handler, max_deliveries=3)
    assert ran == []
    assert await dead_letters(bus) == [(crash.id, "crm", 4, "delivered 4 times, never acknowledged")]
    assert await nothing_pending(bus, "crm", "contact.updated")
