"""Tables of the human handoff: the current handoff of each conversation and every state change."""

from __future__ import annotations

import enum
from datetime import datetime

from sqlalchemy import DateTime, Enum, ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from conversation_api.conversations.models import HandoffState
from conversation_api.db import Base, BigIntId, utcnow


class HandoffReason(enum.StrEnum):
    """Why a conversation changed hands (`handoff_transition.reason`)."""

    # Into pending_human (the first four are the bot contract's `handoff_reason` values).
    customer_request = "customer_request"
    repeated_fallback = "repeated_fallback"
    low_rating = "low_rating"
    workflow = "workflow"
    # The bot was down longer than BOT_REDRIVE_MAX_AGE_SECONDS while the customer waited for an answer.
    bot_unavailable = "bot_unavailable"
    # Out of pending_human / with_human.
    claimed = "claimed"
    resolved = "resolved"
    unclaimed_timeout = "unclaimed_timeout"
    idle_timeout = "idle_timeout"


class BotSync(enum.StrEnum):
    """A pause/resume the bot has not acknowledged yet (Rasa was unreachable)."""

    pause = "pause"
    resume = "resume"


class ConversationHandoff(Base):
    """The handoff bookkeeping of one conversation; the state itself is `conversation.handoff_state`."""

    __tablename__ = "conversation_handoff"

    conversation_id: Mapped[str] = mapped_column(
        String(36), ForeignKey("conversation.id", ondelete="CASCADE"), primary_key=True
    )
    reason: Mapped[str | None] = mapped_column(String(64))
    requested_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    claimed_by: Mapped[str | None] = mapped_column(String(128))
    claimed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # nlu_fallback turns in a row since the last other intent (two hand the conversation over).
    fallback_streak: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    bot_sync: Mapped[BotSync | None] = mapped_column(Enum(BotSync, name="bot_sync", native_enum=False, length=16))

    __table_args__ = (Index("ix_conversation_handoff_requested_at", "requested_at"),)


class HandoffTransition(Base):
    """One change of `conversation.handoff_state`: who, when and why (audit and metrics)."""

    __tablename__ = "handoff_transition"

    id: Mapped[int] = mapped_column(BigIntId, primary_key=True, autoincrement=True)
    conversation_id: Mapped[str] = mapped_column(
        String(36), ForeignKey("conversation.id", ondelete="CASCADE"), nullable=False
    )
    from_state: Mapped[HandoffState] = mapped_column(
        Enum(HandoffState, name="handoff_state", native_enum=False, length=32), nullable=False
    )
    to_state: Mapped[HandoffState] = mapped_column(
        Enum(HandoffState, name="handoff_state", native_enum=False, length=32), nullable=False
    )
    actor: Mapped[str] = mapped_column(String(128), nullable=False)
    reason: Mapped[str] = mapped_column(String(64), nullable=False)
    note: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False, default=utcnow)

    __table_args__ = (Index("ix_handoff_transition_conversation_id_id", "conversation_id", "id"),)
