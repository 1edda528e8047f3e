"""The handoff timeouts, run periodically in the API's lifespan.

A `pending_human` conversation no CSR claims within HANDOFF_TIMEOUT goes back to
the bot, which tells the customer; a `with_human` conversation idle for
HANDOFF_IDLE_TIMEOUT is resolved. Every API replica may sweep: each timeout is a
conditional state change, so exactly one replica applies it.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from conversation_api.background import PeriodicTask
from conversation_api.channels import ChannelRegistry
from conversation_api.db import utcnow
from conversation_api.handoff import service
from conversation_api.handoff.bot_sync import TrackerSync
from conversation_api.handoff.models import HandoffReason
from conversation_api.locks import ConversationLocks
from conversation_api.unit_of_work import ConversationUnitOfWork

log = logging.getLogger(__name__)


@dataclass(slots=True)
class SweepResult:
    unclaimed: int = 0
    idle: int = 0
    bot_behind: int = 0


class HandoffSweeper:
    def __init__(
        self,
        *,
        sessions: async_sessionmaker[AsyncSession],
        locks: ConversationLocks,
        channels: ChannelRegistry,
        tracker_sync: TrackerSync,
        unclaimed_timeout: float,
        idle_timeout: float,
        interval: float,
    ) -> None:
        self._sessions = sessions
        self._uow = ConversationUnitOfWork(sessions=sessions, locks=locks)
        self._channels = channels
        self._sync = tracker_sync
        self._unclaimed = timedelta(seconds=unclaimed_timeout)
        self._idle = timedelta(seconds=idle_timeout)
        self._periodic = PeriodicTask(name="handoff-sweeper", every=interval, job=self.sweep_once)

    async def sweep_once(self, now: datetime | None = None) -> SweepResult:
        """Apply every due timeout and retry missed bot pauses/resumes."""
        now = now or utcnow()
        result = SweepResult()
        async with self._sessions() as session:
            unclaimed = await service.unclaimed_before(session=session, cutoff=now - self._unclaimed)
            idle = await service.idle_before(session=session, cutoff=now - self._idle)
        for conversation_id in unclaimed:
            if await self._time_out(conversation_id, HandoffReason.unclaimed_timeout, now - self._unclaimed):
                result.unclaimed += 1
        for conversation_id in idle:
            if await self._time_out(conversation_id, HandoffReason.idle_timeout, now - self._idle):
                result.idle += 1
        result.bot_behind = await self._sync.reconcile(self._uow.locks)
        return result

    async def _time_out(self, conversation_id: str, reason: HandoffReason, cutoff: datetime) -> bool:
        async with self._uow.conversation(conversation_id) as work:
            try:
                async with work.transaction() as session:
                    outcome = await service.time_out(
                        session=session, conversation_id=conversation_id, reason=reason, cutoff=cutoff
                    )
            except service.HandoffConflict:
                outcome = None  # claimed or resolved meanwhile (possibly by another replica)
            if outcome is None:
                return False
            conversation, message = outcome
            log.info("handoff timed out conversation_id=%s reason=%s", conversation_id, reason.value)
            try:
                await self._channels.for_conversation(conversation).deliver(conversation=conversation, message=message)
            except Exception:  # stored in the history either way; a channel failure must not stop the sweep
                log.exception("timeout notice not delivered conversation_id=%s", conversation_id)
            await self._sync.apply(conversation_id)
            return True

    def start(self) -> None:
        self._periodic.start()

    async def stop(self) -> None:
        await self._periodic.stop()
