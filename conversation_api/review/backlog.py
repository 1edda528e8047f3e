"""The review backlog on /metrics: refreshed every REVIEW_BACKLOG_INTERVAL and after each decision."""

from __future__ import annotations

import logging
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from conversation_api.background import PeriodicTask
from conversation_api.metrics.instruments import set_review_backlog
from conversation_api.review import service
from conversation_api.settings import Settings

log = logging.getLogger(__name__)


def criteria_of(settings: Settings) -> service.Criteria:
    return service.Criteria(
        confidence_threshold=settings.review_confidence_threshold,
        turns_before_handoff=settings.review_turns_before_handoff,
    )


async def count(sessions: async_sessionmaker[AsyncSession], settings: Settings) -> int:
    async with sessions() as session:
        size = await service.backlog(session=session, criteria=criteria_of(settings))
    set_review_backlog(size)
    return size


async def refresh_backlog(container: Any) -> None:
    """After a decision has committed: a failure here must not turn its answer into an error."""
    try:
        await count(container.sessions, container.settings)
    except Exception as exc:  # the gauge catches up on the next periodic refresh
        log.warning("review backlog not refreshed error=%s", type(exc).__name__)


def backlog_task(sessions: async_sessionmaker[AsyncSession], settings: Settings) -> PeriodicTask:
    async def job() -> None:
        await count(sessions, settings)

    # At start too: a gauge that reads 0 for a minute after each deploy would look like an empty queue.
    return PeriodicTask(name="review-backlog", every=settings.review_backlog_interval, job=job, first_at_start=True)
