"""The reminder schedule: one row per appointment, moved or dropped with it."""

from __future__ import annotations

import enum
from datetime import datetime

from sqlalchemy import DateTime, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from conversation_api.db import Base, BigIntId, utcnow


class ReminderState(enum.StrEnum):
    scheduled = "scheduled"  # waits for due_at (a claim's lease may hold it for a moment)
    sending = "sending"  # its message is stored and is being handed to the channel
    sent = "sent"  # the channel accepted it
    failed = "failed"  # refused (opted out, template not approved, Graph error) or out of attempts
    interrupted = "interrupted"  # the sender died mid-send: not sent again, so never twice
    skipped = "skipped"  # too late (the appointment is nearer than the lead), or a channel without templates
    cancelled = "cancelled"  # the appointment was cancelled


class ReminderResponse(enum.StrEnum):
    confirmed = "confirmed"
    rescheduled = "rescheduled"
    cancelled = "cancelled"


class AppointmentReminder(Base):
    __tablename__ = "appointment_reminder"

    id: Mapped[int] = mapped_column(BigIntId, primary_key=True, autoincrement=True)
    appointment_id: Mapped[str] = mapped_column(String(64), nullable=False, unique=True)
    conversation_id: Mapped[str] = mapped_column(String(36), nullable=False)
    user_id: Mapped[str] = mapped_column(String(255), nullable=False)
    service: Mapped[str | None] = mapped_column(String(100))
    staff: Mapped[str | None] = mapped_column(String(100))
    customer_name: Mapped[str | None] = mapped_column(String(255))  # as the booking knew it
    starts_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)
    due_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)
    state: Mapped[str] = mapped_column(String(16), nullable=False, default=ReminderState.scheduled.value)
    # Claims, whatever came of them; a reminder claimed REMINDER_MAX_ATTEMPTS times without being stored fails.
    attempts: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    locked_until: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    lease_owner: Mapped[str | None] = mapped_column(String(32))
    message_id: Mapped[int | None] = mapped_column(BigIntId)
    last_error: Mapped[str | None] = mapped_column(Text)
    response: Mapped[str | None] = mapped_column(String(16))
    sent_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False, default=utcnow)

    __table_args__ = (
        Index("ix_appointment_reminder_state_due", "state", "due_at"),
        Index("ix_appointment_reminder_conversation", "conversation_id"),
        Index("ix_appointment_reminder_message", "message_id"),
    )
