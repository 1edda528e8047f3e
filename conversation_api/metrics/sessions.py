"""Conversation sessions, for the session-duration metric.

A session runs from a conversation's first message to its last one before a
silence of at least the idle gap (SESSION_IDLE_GAP_SECONDS). Every stored
message extends the open session or opens a new one (closing a stale one); a
sweeper closes sessions that went quiet. A session is observed in the histogram
once, when it is closed.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import cast

from sqlalchemy import DateTime, ForeignKey, Index, Integer, String, Table, Update, UpdateBase, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlalchemy.orm import Mapped, mapped_column

from conversation_api.background import PeriodicTask
from conversation_api.db import Base, BigIntId, execute_together, utcnow
from conversation_api.metrics.instruments import SESSION_DURATION, count_message

log = logging.getLogger(__name__)

# Set from SESSION_IDLE_GAP_SECONDS by the composition root (container.py).
idle_gap = timedelta(seconds=1800)


def configure(*, idle_gap_seconds: float) -> None:
    global idle_gap
    idle_gap = timedelta(seconds=idle_gap_seconds)


class ConversationSession(Base):
    __tablename__ = "conversation_session"

    id: Mapped[int] = mapped_column(BigIntId, primary_key=True, autoincrement=True)
    conversation_id: Mapped[str] = mapped_column(
        String(36), ForeignKey("conversation.id", ondelete="CASCADE"), nullable=False
    )
    channel: Mapped[str] = mapped_column(String(32), nullable=False)
    started_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)
    last_message_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)
    messages: Mapped[int] = mapped_column(Integer, nullable=False, default=1)
    ended_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))

    __table_args__ = (
        Index("ix_conversation_session_conversation_id_ended_at", "conversation_id", "ended_at"),
        Index("ix_conversation_session_ended_at_last_message_at", "ended_at", "last_message_at"),
        Index("ix_conversation_session_started_at", "started_at"),
    )


def _observe(rows: list[tuple[str, datetime, datetime]]) -> None:
    for channel, started_at, last_message_at in rows:
        SESSION_DURATION.labels(channel).observe(max((last_message_at - started_at).total_seconds(), 0.0))


def extend_statement(*, conversation_id: str, at: datetime, count: int = 1) -> Update:
    """The UPDATE that extends the conversation's open session to `at`; it matched no row if none was open."""
    table = cast(Table, ConversationSession.__table__)
    return (
        update(table)
        .where(
            table.c.conversation_id == conversation_id,
            table.c.ended_at.is_(None),
            table.c.last_message_at >= at - idle_gap,
        )
        .values(last_message_at=at, messages=table.c.messages + count)
    )


async def open_session(
    *, session: AsyncSession, conversation_id: str, channel: str, at: datetime, count: int = 1
) -> None:
    """After `extend_statement` matched nothing: close the stale open session, if any, and open a new one."""
    stale = await session.execute(
        update(ConversationSession)
        .where(ConversationSession.conversation_id == conversation_id, ConversationSession.ended_at.is_(None))
        .values(ended_at=ConversationSession.last_message_at)
        .returning(ConversationSession.channel, ConversationSession.started_at, ConversationSession.last_message_at)
        .execution_options(synchronize_session=False)
    )
    closed = [tuple(row) for row in stale.all()]
    session.add(
        ConversationSession(
            conversation_id=conversation_id, channel=channel, started_at=at, last_message_at=at, messages=count
        )
    )
    _observe(closed)  # type: ignore[arg-type]


async def track_activity(
    *, session: AsyncSession, conversation_id: str, channel: str, at: datetime, count: int = 1
) -> None:
    """Extend the conversation's open session to `at`, or open a new one, in the caller's transaction."""
    extended = await session.execute(extend_statement(conversation_id=conversation_id, at=at, count=count))
    if extended.rowcount:  # type: ignore[attr-defined]
        return
    await open_session(session=session, conversation_id=conversation_id, channel=channel, at=at, count=count)


async def close_idle_sessions(*, sessions: async_sessionmaker[AsyncSession], now: datetime | None = None) -> int:
    """Close (and observe) every session silent for at least the idle gap; return how many."""
    cutoff = (now or utcnow()) - idle_gap
    async with sessions() as session, session.begin():
        result = await session.execute(
            update(ConversationSession)
            .where(ConversationSession.ended_at.is_(None), ConversationSession.last_message_at < cutoff)
            .values(ended_at=ConversationSession.last_message_at)
            .returning(ConversationSession.channel, ConversationSession.started_at, ConversationSession.last_message_at)
            .execution_options(synchronize_session=False)
        )
        closed = [tuple(row) for row in result.all()]
    _observe(closed)  # type: ignore[arg-type]
    return len(closed)


class SessionSweeper:
    """Background task of the API: closes quiet sessions every `every` seconds."""

    def __init__(self, *, sessions: async_sessionmaker[AsyncSession], every: float) -> None:
        self._sessions = sessions
        self._periodic = PeriodicTask(name="session-sweeper", every=every, job=self.sweep_once)

    async def sweep_once(self) -> int:
        closed = await close_idle_sessions(sessions=self._sessions)
        if closed:
            log.info("sessions closed count=%d", closed)
        return closed

    def start(self) -> None:
        self._periodic.start()

    async def stop(self) -> None:
        await self._periodic.stop()


async def message_stored(
    *,
    session: AsyncSession,
    conversation_id: str,
    channel: str,
    sender: str,
    at: datetime,
    count: int = 1,
    also: Sequence[UpdateBase] = (),
) -> None:
    """Count stored messages and extend their session (called by conversations.service).

    `also`: the caller's other writes, sent in the same statement as the session's UPDATE where the
    database allows it (db.execute_together).
    """
    count_message(sender=sender, channel=channel, count=count)
    extended = await execute_together(
        session, extend_statement(conversation_id=conversation_id, at=at, count=count), *also
    )
    if not extended.rowcount:  # type: ignore[attr-defined]
        await open_session(session=session, conversation_id=conversation_id, channel=channel, at=at, count=count)
