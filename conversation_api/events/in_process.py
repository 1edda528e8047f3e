"""The embedded default bus: streams kept in this process's memory (no Redis needed).

Subscribers in the same process (tests, a single-binary deployment) get the
same semantics as with Redis Streams: a stream per event type, consumer groups
that each see every event, acknowledgements and redelivery of what was not
acknowledged. Nothing survives a restart, and only the newest `maxlen` events
of each type are kept.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass, field, replace

from conversation_api.events.bus import Delivery
from conversation_api.events.envelope import Event


@dataclass
class _Stream:
    entries: list[Event] = field(default_factory=list)
    trimmed: int = 0  # absolute index of entries[0]


@dataclass
class _Pending:
    delivery: Delivery
    consumer: str
    delivered_at: float


@dataclass(frozen=True, slots=True)
class DeadLetter:
    delivery: Delivery
    error: str


class InProcessBus:
    def __init__(self, *, maxlen: int = 10_000, claim_idle_seconds: float = 30.0, remember: int = 100_000) -> None:
        self._maxlen = maxlen
        self._claim_idle = claim_idle_seconds
        self._remember_max = remember
        self._streams: dict[str, _Stream] = {}
        self._cursors: dict[tuple[str, str], int] = {}
        self._pending: dict[str, dict[str, _Pending]] = {}
        self._seen: dict[str, OrderedDict[str, None]] = {}
        self._published = asyncio.Condition()
        self.dead: list[DeadLetter] = []  # the dead letters, oldest first (gone at a restart, like the rest)

    async def publish(self, events: Sequence[Event]) -> None:
        async with self._published:
            for event in events:
                stream = self._streams.setdefault(event.type, _Stream())
                stream.entries.append(event)
                if len(stream.entries) > self._maxlen:
                    drop = len(stream.entries) - self._maxlen
                    del stream.entries[:drop]
                    stream.trimmed += drop
            self._published.notify_all()

    def _new_for(self, group: str, types: Sequence[str], count: int) -> list[Delivery]:
        found: list[Delivery] = []
        for event_type in types:
            stream = self._streams.get(event_type)
            if stream is None:
                continue
            cursor = max(self._cursors.get((group, event_type), 0), stream.trimmed)
            end = min(stream.trimmed + len(stream.entries), cursor + count - len(found))
            for index in range(cursor, end):
                event = stream.entries[index - stream.trimmed]
                found.append(Delivery(event=event, stream=event_type, entry_id=str(index), group=group))
            self._cursors[(group, event_type)] = end
            if len(found) >= count:
                break
        return found

    def _reclaim(self, group: str, consumer: str, types: Sequence[str], count: int) -> list[Delivery]:
        now = time.monotonic()
        found: list[Delivery] = []
        for pending in self._pending.get(group, {}).values():
            if len(found) >= count:
                break
            if pending.delivery.stream in types and now - pending.delivered_at >= self._claim_idle:
                pending.consumer, pending.delivered_at = consumer, now
                pending.delivery = replace(pending.delivery, deliveries=pending.delivery.deliveries + 1)
                found.append(pending.delivery)
        return found

    async def read(
        self, *, group: str, consumer: str, types: Sequence[str], count: int = 100, block_ms: int = 1000
    ) -> list[Delivery]:
        deadline = time.monotonic() + block_ms / 1000
        async with self._published:
            while True:
                found = self._reclaim(group, consumer, types, count)
                found += self._new_for(group, types, count - len(found))
                if found or time.monotonic() >= deadline:
                    break
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._published.wait(), max(0.0, deadline - time.monotonic()))
            pending = self._pending.setdefault(group, {})
            now = time.monotonic()
            for delivery in found:
                key = f"{delivery.stream}/{delivery.entry_id}"
                if key in pending:
                    pending[key].delivered_at = now
                else:
                    pending[key] = _Pending(delivery, consumer, now)
            return found

    async def ack(self, delivery: Delivery) -> None:
        self._pending.get(delivery.group, {}).pop(f"{delivery.stream}/{delivery.entry_id}", None)

    async def dead_letter(self, delivery: Delivery, *, error: str) -> None:
        self.dead.append(DeadLetter(delivery=delivery, error=error))
        await self.ack(delivery)

    async def seen(self, group: str, event_id: str) -> bool:
        return event_id in self._seen.get(group, {})

    async def remember(self, group: str, event_id: str) -> None:
        seen = self._seen.setdefault(group, OrderedDict())
        seen[event_id] = None
        while len(seen) > self._remember_max:
            seen.popitem(last=False)

    def pending_count(self, group: str) -> int:
        return len(self._pending.get(group, {}))

    async def aclose(self) -> None:
        return None
