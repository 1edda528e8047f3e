"""The consumer library: subscribe a handler to event types through a consumer group.

    bus = RedisStreamsBus(Redis.from_url(url))
    await consume(bus, group="crm-sync", consumer="crm-1", types=["intent.detected"], handler=my_handler)

Each group sees every event of its types; within a group an event goes to one
consumer and is acknowledged only after the handler returned. A handler that
raises leaves the event pending: another consumer (or this one, later) takes it
over. After `max_deliveries` deliveries that did not succeed, the event goes to
the bus's dead letters with the error instead of coming round again, so one bad
event cannot keep a consumer busy forever. An event id the group has already
handled is acknowledged and skipped, so a redelivered event runs the handler once.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence

from tenacity import AsyncRetrying, RetryCallState, retry_if_exception_type, wait_exponential_jitter

from conversation_api.events.bus import Delivery, EventBus, EventBusUnavailable
from conversation_api.events.envelope import Event
from conversation_api.metrics.instruments import EVENTS_DEAD_LETTERED

log = logging.getLogger(__name__)

Handler = Callable[[Event], Awaitable[None]]


async def handle_delivery(
    bus: EventBus, delivery: Delivery, handler: Handler, *, max_deliveries: int | None = None
) -> bool:
    """Run the handler for one delivery; True if it ran and the delivery was acknowledged.

    With `max_deliveries`, a delivery whose handler fails on the last allowed
    delivery (or that was handed out more often without ever being acknowledged:
    a consumer that died on it) is dead-lettered.
    """
    event = delivery.event
    if await bus.seen(delivery.group, event.id):
        log.info(
            "duplicate event skipped group=%s type=%s event_id=%s conversation_id=%s",
            delivery.group,
            event.type,
            event.id,
            event.conversation_id,
        )
        await bus.ack(delivery)
        return False
    if max_deliveries is not None and delivery.deliveries > max_deliveries:
        await _dead_letter(bus, delivery, f"delivered {delivery.deliveries} times, never acknowledged")
        return False
    try:
        await handler(event)
    except Exception as exc:  # leave it pending: it is redelivered, nothing is lost
        log.exception(
            "handler failed group=%s type=%s event_id=%s conversation_id=%s delivery=%d",
            delivery.group,
            event.type,
            event.id,
            event.conversation_id,
            delivery.deliveries,
        )
        if max_deliveries is not None and delivery.deliveries >= max_deliveries:
            await _dead_letter(bus, delivery, f"{type(exc).__name__}: {exc}")
        return False
    await bus.remember(delivery.group, event.id)
    await bus.ack(delivery)
    return True


async def _dead_letter(bus: EventBus, delivery: Delivery, error: str) -> None:
    await bus.dead_letter(delivery, error=error)
    EVENTS_DEAD_LETTERED.labels(delivery.group, delivery.event.type).inc()
    log.error(
        "event dead-lettered group=%s type=%s event_id=%s conversation_id=%s deliveries=%d error=%s",
        delivery.group,
        delivery.event.type,
        delivery.event.id,
        delivery.event.conversation_id,
        delivery.deliveries,
        error,
    )


def _log_retry(state: RetryCallState) -> None:
    error = state.outcome.exception() if state.outcome else None
    log.warning("event bus unavailable attempt=%d error=%s", state.attempt_number, error)


async def consume(
    bus: EventBus,
    *,
    group: str,
    consumer: str,
    types: Sequence[str],
    handler: Handler,
    stop: asyncio.Event | None = None,
    count: int = 100,
    block_ms: int = 1000,
    max_deliveries: int | None = 5,
) -> None:
    """Hand every event of `types` to `handler` until `stop` is set; wait out bus outages.

    An event the handler fails on `max_deliveries` times is dead-lettered (None: retried forever).
    """
    stop = stop or asyncio.Event()
    log.info("consuming group=%s consumer=%s types=%s", group, consumer, ",".join(types))
    while not stop.is_set():
        async for attempt in AsyncRetrying(
            retry=retry_if_exception_type(EventBusUnavailable),
            wait=wait_exponential_jitter(multiplier=0.2, max=10, jitter=0.2),
            before_sleep=_log_retry,
            reraise=True,
        ):
            with attempt:
                deliveries = await bus.read(group=group, consumer=consumer, types=types, count=count, block_ms=block_ms)
                for delivery in deliveries:
                    await handle_delivery(bus, delivery, handler, max_deliveries=max_deliveries)
                    if stop.is_set():
                        return
