"""The pub/sub port: what publishers (the outbox relay) and consumers need from a message bus."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from conversation_api.events.envelope import Event


class EventBusUnavailable(Exception):
    """The bus could not take or hand out events (Redis down, timing out)."""


@dataclass(frozen=True, slots=True)
class Delivery:
    """One event handed to one consumer of a group; acknowledge it once handled."""

    event: Event
    stream: str
    entry_id: str
    group: str
    deliveries: int = 1  # how many times the group has handed out this entry, this time included


class EventBus(Protocol):
    async def publish(self, events: Sequence[Event]) -> None:
        """Append `events` in order to their type's stream; raise EventBusUnavailable on failure."""
        ...

    async def read(
        self, *, group: str, consumer: str, types: Sequence[str], count: int = 100, block_ms: int = 1000
    ) -> list[Delivery]:
        """Up to `count` events of `types` not yet delivered to `group` (waiting up to `block_ms`).

        Every group sees every event; within a group each event goes to one consumer.
        Unacknowledged deliveries are handed out again (to this or another consumer).
        """
        ...

    async def ack(self, delivery: Delivery) -> None:
        """Mark `delivery` handled for its group."""
        ...

    async def dead_letter(self, delivery: Delivery, *, error: str) -> None:
        """Give up on `delivery` for its group: keep the event and `error` in the dead letters, then acknowledge it."""
        ...

    async def seen(self, group: str, event_id: str) -> bool:
        """Whether `group` already handled the event with this id (a redelivery)."""
        ...

    async def remember(self, group: str, event_id: str) -> None:
        """Record that `group` handled the event with this id."""
        ...

    async def aclose(self) -> None: ...
