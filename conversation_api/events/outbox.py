"""The transactional outbox: events are rows written in the same transaction as the change they describe.

A relay (relay.py) publishes unpublished rows in id order and marks them
published; published rows stay as the event log the metrics summary reads.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, cast

from sqlalchemy import JSON, DateTime, Index, Insert, Integer, String, Table, insert
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Mapped, mapped_column

from conversation_api.db import Base, BigIntId, utcnow
from conversation_api.events.envelope import Event, EventType


class OutboxEvent(Base):
    __tablename__ = "outbox_event"

    id: Mapped[int] = mapped_column(BigIntId, primary_key=True, autoincrement=True)
    event_id: Mapped[str] = mapped_column(String(36), nullable=False, unique=True)
    type: Mapped[str] = mapped_column(String(64), nullable=False)
    version: Mapped[int] = mapped_column(Integer, nullable=False)
    conversation_id: Mapped[str | None] = mapped_column(String(36))
    user_id: Mapped[str | None] = mapped_column(String(128))
    channel: Mapped[str | None] = mapped_column(String(32))
    payload: Mapped[dict[str, Any]] = mapped_column(JSON, nullable=False)
    occurred_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False, default=utcnow)
    published_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))

    __table_args__ = (
        Index("ix_outbox_event_published_at_id", "published_at", "id"),
        Index("ix_outbox_event_type_occurred_at", "type", "occurred_at"),
    )

    def to_event(self) -> Event:
        return Event(
            id=self.event_id,
            type=self.type,
            version=self.version,
            occurred_at=self.occurred_at,
            conversation_id=self.conversation_id,
            user_id=self.user_id,
            channel=self.channel,
            payload=self.payload or {},
            sequence=self.id,
        )


def new_event(
    *,
    type: EventType | str,
    conversation_id: str | None,
    user_id: str | None,
    channel: str | None,
    payload: dict[str, Any] | None = None,
    occurred_at: datetime | None = None,
) -> tuple[Event, dict[str, Any]]:
    """An event and its outbox row, for callers that write the row with a Core statement (`insert_events`)."""
    event = Event(
        type=str(type),
        conversation_id=conversation_id,
        user_id=user_id,
        channel=channel,
        payload=payload or {},
        occurred_at=occurred_at or utcnow(),
    )
    row = {
        "event_id": event.id,
        "type": event.type,
        "version": event.version,
        "conversation_id": conversation_id,
        "user_id": user_id,
        "channel": channel,
        "payload": event.payload,
        "occurred_at": event.occurred_at,
        "published_at": None,
    }
    return event, row


def insert_events(rows: list[dict[str, Any]]) -> Insert:
    """One INSERT for several outbox rows (from `new_event`); ids follow the list's order."""
    # A one-row INSERT is compiled once and cached; a multi-row VALUES is compiled on every execution.
    return insert(cast(Table, OutboxEvent.__table__)).values(rows[0] if len(rows) == 1 else rows)


def record_event(
    session: AsyncSession,
    *,
    type: EventType | str,
    conversation_id: str | None,
    user_id: str | None,
    channel: str | None,
    payload: dict[str, Any] | None = None,
    occurred_at: datetime | None = None,
) -> Event:
    """Add an event to the caller's transaction; it is published after the transaction commits.

    Nothing is published if the transaction rolls back, and nothing committed is
    lost while the bus is down: the relay publishes it (in order) when it is back.
    """
    event, row = new_event(
        type=type,
        conversation_id=conversation_id,
        user_id=user_id,
        channel=channel,
        payload=payload,
        occurred_at=occurred_at,
    )
    session.add(OutboxEvent(**row))
    return event
