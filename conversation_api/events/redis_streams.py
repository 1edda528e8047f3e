"""The production bus: one Redis Stream per event type, consumer groups, acknowledgements.

Stream names are `<prefix>:<event type>` (e.g. `reviewbot:events:intent.detected`),
each entry holding the event's JSON under the field `event`. Streams are trimmed
to about `maxlen` entries. A group created by a consumer starts from the oldest
retained entry, so a new service also sees what happened shortly before it joined.
Deliveries a group gave up on go to one dead-letter stream, `<prefix>:dead`, with
the group, the original stream and entry, the delivery count and the error.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any

from redis.asyncio import Redis
from redis.exceptions import RedisError, ResponseError

from conversation_api.events.bus import Delivery, EventBusUnavailable
from conversation_api.events.envelope import Event

log = logging.getLogger(__name__)


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


@dataclass(frozen=True, slots=True)
class DeadLetter:
    """One entry of the dead-letter stream: a delivery a group gave up on."""

    entry_id: str  # in the dead-letter stream
    event: Event
    group: str
    stream: str
    original_entry_id: str
    deliveries: int
    error: str
    dead_at: str


class RedisStreamsBus:
    def __init__(
        self,
        redis: Redis,
        *,
        prefix: str = "reviewbot:events",
        maxlen: int = 100_000,
        claim_idle_ms: int = 30_000,
        seen_ttl_seconds: int = 7 * 24 * 3600,
    ) -> None:
        self._redis = redis
        self.prefix = prefix
        self._maxlen = maxlen
        self._claim_idle_ms = claim_idle_ms
        self._seen_ttl = seen_ttl_seconds
        self._groups: set[tuple[str, str]] = set()
        # Per (group, consumer, stream): where re-reading this consumer's own pending entries has got to.
        self._backlog: dict[tuple[str, str, str], str] = {}
        self._last_claim: dict[tuple[str, str], float] = {}

    def stream(self, event_type: str) -> str:
        return f"{self.prefix}:{event_type}"

    @property
    def dead_stream(self) -> str:
        return f"{self.prefix}:dead"

    async def publish(self, events: Sequence[Event]) -> None:
        if not events:
            return
        try:
            async with self._redis.pipeline(transaction=False) as pipe:
                for event in events:
                    pipe.xadd(
                        self.stream(event.type),
                        {"event": event.to_json(), "id": event.id},
                        maxlen=self._maxlen,
                        approximate=True,
                    )
                await pipe.execute()
        except (RedisError, OSError) as exc:
            raise EventBusUnavailable(f"redis: {type(exc).__name__}: {exc}") from exc

    async def _ensure_groups(self, group: str, streams: Sequence[str]) -> None:
        for stream in streams:
            if (group, stream) in self._groups:
                continue
            try:
                await self._redis.xgroup_create(stream, group, id="0", mkstream=True)
            except ResponseError as exc:
                if "BUSYGROUP" not in str(exc):
                    raise
            self._groups.add((group, stream))

    def _deliveries(self, group: str, stream: str, entries: Any) -> tuple[list[Delivery], list[str]]:
        """Deliveries from raw entries, and the ids of entries trimmed away before they were read."""
        found, gone = [], []
        for entry_id, fields in entries or []:
            entry_id = _text(entry_id)
            if not fields:
                gone.append(entry_id)
                continue
            raw = fields.get(b"event", fields.get("event"))
            try:
                event = Event.from_json(raw)
            except (ValueError, KeyError, TypeError):
                log.error("unreadable event stream=%s entry=%s; acknowledging it", stream, entry_id)
                gone.append(entry_id)
                continue
            found.append(Delivery(event=event, stream=stream, entry_id=entry_id, group=group))
        return found, gone

    @staticmethod
    def _by_stream(response: Any) -> list[tuple[str, Any]]:
        items = response.items() if isinstance(response, dict) else (response or [])
        result = []
        for stream, entries in items:
            if isinstance(entries, list) and len(entries) == 1 and isinstance(entries[0], list):
                entries = entries[0]  # RESP3 wraps the entries once more
            result.append((_text(stream), entries))
        return result

    async def _collect(self, group: str, response: Any) -> list[Delivery]:
        found: list[Delivery] = []
        for stream, entries in self._by_stream(response):
            deliveries, gone = self._deliveries(group, stream, entries)
            found += deliveries
            if gone:
                await self._redis.xack(stream, group, *gone)
        return found

    async def _counted(self, deliveries: list[Delivery]) -> list[Delivery]:
        """Redeliveries with the group's delivery count (XPENDING), which every re-read or claim increments."""
        if not deliveries:
            return deliveries
        async with self._redis.pipeline(transaction=False) as pipe:
            for d in deliveries:
                pipe.xpending_range(d.stream, d.group, min=d.entry_id, max=d.entry_id, count=1)
            answers = await pipe.execute()
        counted = []
        for delivery, answer in zip(deliveries, answers, strict=True):
            times = int(answer[0]["times_delivered"]) if answer else delivery.deliveries
            counted.append(replace(delivery, deliveries=times))
        return counted

    async def _own_backlog(self, group: str, consumer: str, streams: Sequence[str], count: int) -> list[Delivery]:
        """Entries delivered to this consumer name before (a restart) and never acknowledged."""
        found: list[Delivery] = []
        for stream in streams:
            key = (group, consumer, stream)
            cursor = self._backlog.setdefault(key, "0")
            if cursor == "done":
                continue
            response = await self._redis.xreadgroup(group, consumer, {stream: cursor}, count=count)
            batch = await self._collect(group, response)
            entries = [e for _, es in self._by_stream(response) for e in (es or [])]
            self._backlog[key] = _text(entries[-1][0]) if entries else "done"
            found += batch
        return await self._counted(found)

    async def _claim_idle(self, group: str, consumer: str, streams: Sequence[str], count: int) -> list[Delivery]:
        """Take over entries another consumer of the group received but has not acknowledged for a while."""
        key = (group, consumer)
        now = time.monotonic()
        if now - self._last_claim.get(key, 0.0) < self._claim_idle_ms / 1000:
            return []
        self._last_claim[key] = now
        found: list[Delivery] = []
        for stream in streams:
            result = await self._redis.xautoclaim(stream, group, consumer, self._claim_idle_ms, "0-0", count=count)
            deliveries, gone = self._deliveries(group, stream, result[1] if len(result) > 1 else [])
            found += deliveries
            if gone:
                await self._redis.xack(stream, group, *gone)
        return await self._counted(found)

    async def read(
        self, *, group: str, consumer: str, types: Sequence[str], count: int = 100, block_ms: int = 1000
    ) -> list[Delivery]:
        streams = [self.stream(t) for t in types]
        try:
            await self._ensure_groups(group, streams)
            found = await self._own_backlog(group, consumer, streams, count)
            if not found:
                found = await self._claim_idle(group, consumer, streams, count)
            if found:
                return found
            response = await self._redis.xreadgroup(
                group, consumer, dict.fromkeys(streams, ">"), count=count, block=block_ms or None
            )
            return await self._collect(group, response)
        except ResponseError as exc:
            if "NOGROUP" in str(exc):  # the stream was deleted under us: recreate on the next read
                self._groups = {g for g in self._groups if g[0] != group}
                return []
            raise EventBusUnavailable(f"redis: {exc}") from exc
        except (RedisError, OSError) as exc:
            raise EventBusUnavailable(f"redis: {type(exc).__name__}: {exc}") from exc

    async def ack(self, delivery: Delivery) -> None:
        try:
            await self._redis.xack(delivery.stream, delivery.group, delivery.entry_id)
        except (RedisError, OSError) as exc:
            raise EventBusUnavailable(f"redis: {type(exc).__name__}: {exc}") from exc

    async def dead_letter(self, delivery: Delivery, *, error: str) -> None:
        fields = {
            "event": delivery.event.to_json(),
            "id": delivery.event.id,
            "group": delivery.group,
            "stream": delivery.stream,
            "entry_id": delivery.entry_id,
            "deliveries": str(delivery.deliveries),
            "error": error[:2000],
            "dead_at": datetime.now(UTC).isoformat(),
        }
        try:
            # One MULTI: the entry leaves the group's pending list only if it is kept as a dead letter.
            async with self._redis.pipeline(transaction=True) as pipe:
                pipe.xadd(self.dead_stream, fields, maxlen=self._maxlen, approximate=True)  # type: ignore[arg-type]
                pipe.xack(delivery.stream, delivery.group, delivery.entry_id)
                await pipe.execute()
        except (RedisError, OSError) as exc:
            raise EventBusUnavailable(f"redis: {type(exc).__name__}: {exc}") from exc

    async def dead_letters(self, *, count: int = 100, group: str | None = None) -> list[DeadLetter]:
        """The oldest `count` dead letters (of `group`, when given)."""
        letters = []
        entries: Any = await self._redis.xrange(self.dead_stream, count=None if group else count)
        for entry_id, raw in entries or []:
            fields = {_text(k): v for k, v in raw.items()}
            letter = DeadLetter(
                entry_id=_text(entry_id),
                event=Event.from_json(fields["event"]),
                group=_text(fields["group"]),
                stream=_text(fields["stream"]),
                original_entry_id=_text(fields["entry_id"]),
                deliveries=int(fields["deliveries"]),
                error=_text(fields["error"]),
                dead_at=_text(fields["dead_at"]),
            )
            if group is None or letter.group == group:
                letters.append(letter)
            if len(letters) >= count:
                break
        return letters

    async def redrive(self, letters: Sequence[DeadLetter]) -> None:
        """Publish dead letters' events again and drop them from the dead-letter stream.

        Every group of the stream is handed the event again; the groups that
        handled it before skip it by its id (for `seen_ttl_seconds`).
        """
        async with self._redis.pipeline(transaction=True) as pipe:
            for letter in letters:
                pipe.xadd(
                    letter.stream,
                    {"event": letter.event.to_json(), "id": letter.event.id},
                    maxlen=self._maxlen,
                    approximate=True,
                )
                pipe.xdel(self.dead_stream, letter.entry_id)
            await pipe.execute()

    def _seen_key(self, group: str, event_id: str) -> str:
        return f"{self.prefix}:seen:{group}:{event_id}"

    async def seen(self, group: str, event_id: str) -> bool:
        try:
            return bool(await self._redis.exists(self._seen_key(group, event_id)))
        except (RedisError, OSError) as exc:
            raise EventBusUnavailable(f"redis: {type(exc).__name__}: {exc}") from exc

    async def remember(self, group: str, event_id: str) -> None:
        try:
            await self._redis.set(self._seen_key(group, event_id), 1, ex=self._seen_ttl)
        except (RedisError, OSError) as exc:
            raise EventBusUnavailable(f"redis: {type(exc).__name__}: {exc}") from exc

    async def aclose(self) -> None:
        await self._redis.aclose()
