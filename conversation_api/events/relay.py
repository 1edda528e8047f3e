"""Publishes committed outbox rows to the bus, in order, retrying while the bus is down."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time

from sqlalchemy import func, select, update
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from tenacity import AsyncRetrying, RetryCallState, retry_if_exception_type, wait_exponential_jitter

from conversation_api.db import utcnow
from conversation_api.events.bus import EventBus, EventBusUnavailable
from conversation_api.events.outbox import OutboxEvent
from conversation_api.metrics.instruments import EVENT_PUBLISH_FAILURES, EVENTS_PUBLISHED, OUTBOX_BACKLOG

log = logging.getLogger(__name__)


class OutboxRelay:
    """Moves outbox rows to the bus: at least once, each conversation's events in commit (id) order.

    Several API replicas may run a relay and share the work: on PostgreSQL each
    batch is taken with `SELECT ... FOR UPDATE SKIP LOCKED`, so a relay takes the
    next rows instead of waiting for another relay's batch. It leaves out the
    events of a conversation whose earlier events another relay is publishing,
    so one conversation's events still reach the bus in order.
    A crash between publishing and marking rows published re-publishes them;
    consumers recognise the repeat by the event id.
    """

    def __init__(
        self,
        *,
        sessions: async_sessionmaker[AsyncSession],
        bus: EventBus,
        lock_rows: bool,
        batch_size: int = 500,
        interval: float = 0.25,
        max_backoff: float = 10.0,
    ) -> None:
        self._sessions = sessions
        self.bus = bus
        self._lock_rows = lock_rows
        self._batch = batch_size
        self._interval = interval
        self._max_backoff = max_backoff
        self._task: asyncio.Task[None] | None = None
        self._wake = asyncio.Event()
        self._backlog_checked = 0.0

    async def relay_once(self) -> int:
        """Publish one batch of unpublished events; return how many were published."""
        async with self._sessions() as session, session.begin():
            query = (
                select(OutboxEvent)
                .where(OutboxEvent.published_at.is_(None))
                .order_by(OutboxEvent.id)
                .limit(self._batch)
            )
            if self._lock_rows:
                query = query.with_for_update(skip_locked=True)
            rows = list((await session.scalars(query)).all())
            if rows and self._lock_rows:
                rows = await self._not_behind_another_relay(session, rows)
            if not rows:
                return 0
            await self.bus.publish([row.to_event() for row in rows])
            await session.execute(
                update(OutboxEvent).where(OutboxEvent.id.in_([row.id for row in rows])).values(published_at=utcnow())
            )
        for row in rows:
            EVENTS_PUBLISHED.labels(row.type).inc()
        return len(rows)

    @staticmethod
    async def _not_behind_another_relay(session: AsyncSession, rows: list[OutboxEvent]) -> list[OutboxEvent]:
        """`rows` minus the events of conversations whose earlier, unpublished events were skipped.

        The rows were the lowest unlocked ids, so an unpublished row below the last
        one that is not among them is locked: another relay is publishing it now.
        """
        ids = [row.id for row in rows]
        held: dict[str | None, int] = dict(
            (
                await session.execute(
                    select(OutboxEvent.conversation_id, func.min(OutboxEvent.id))
                    .where(
                        OutboxEvent.published_at.is_(None),
                        OutboxEvent.id < ids[-1],
                        OutboxEvent.id.not_in(ids),
                        OutboxEvent.conversation_id.is_not(None),
                    )
                    .group_by(OutboxEvent.conversation_id)
                )
            ).all()
        )
        if not held:
            return rows
        return [row for row in rows if row.conversation_id not in held or row.id < held[row.conversation_id]]

    async def backlog(self) -> int:
        async with self._sessions() as session:
            count = await session.scalar(select(func.count()).where(OutboxEvent.published_at.is_(None)))
        OUTBOX_BACKLOG.set(count or 0)
        return int(count or 0)

    async def _update_backlog(self, *, force: bool = False) -> None:
        now = time.monotonic()
        if force or now - self._backlog_checked >= 1.0:
            self._backlog_checked = now
            with contextlib.suppress(SQLAlchemyError, OSError):
                await self.backlog()

    async def _failed(self, state: RetryCallState) -> None:
        EVENT_PUBLISH_FAILURES.inc()
        error = state.outcome.exception() if state.outcome else None
        log.warning(
            "event relay failed attempt=%d error=%s retry_in=%.1fs",
            state.attempt_number,
            error,
            state.upcoming_sleep,
        )
        await self._update_backlog(force=True)

    async def run(self) -> None:
        """Relay forever; back off (exponentially, with jitter) while the bus or database is down."""
        while True:
            try:
                async for attempt in AsyncRetrying(
                    retry=retry_if_exception_type((EventBusUnavailable, SQLAlchemyError, OSError)),
                    wait=wait_exponential_jitter(multiplier=0.2, max=self._max_backoff, jitter=0.2),
                    before_sleep=self._failed,
                    reraise=True,
                ):
                    with attempt:
                        published = await self.relay_once()
            except Exception:  # a bug must not stop event delivery for good: log, pause, go on
                log.exception("event relay crashed; restarting in %.0fs", self._max_backoff)
                await asyncio.sleep(self._max_backoff)
                continue
            if published < self._batch:
                await self._update_backlog(force=published > 0)
                self._wake.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), self._interval)

    def wake(self) -> None:
        """Publish soon instead of at the next poll."""
        self._wake.set()

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self.run(), name="outbox-relay")

    async def stop(self, *, drain_timeout: float = 2.0) -> None:
        if self._task is None:
            return
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await self._task
        self._task = None
        # Best effort: what is not published now stays in the outbox for the next start.
        with contextlib.suppress(Exception):
            async with asyncio.timeout(drain_timeout):
                while await self.relay_once() == self._batch:
                    pass
