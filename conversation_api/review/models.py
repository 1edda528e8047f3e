"""Tables of the review: CSR flags, the current annotation of each reviewed message, and every decision.

Which messages need review is read from the conversation tables (confidence, intent,
handoffs, ratings) when the queue is asked for, so a new threshold applies to every
message at once; only what people did is stored here.
"""

from __future__ import annotations

import enum
from datetime import datetime
from typing import Any

from sqlalchemy import JSON, DateTime, Enum, ForeignKey, Index, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from conversation_api.db import Base, BigIntId, utcnow


class Reason(enum.StrEnum):
    """Why a customer message is in the review queue (a message may have several)."""

    low_confidence = "low_confidence"  # answered with an intent read below REVIEW_CONFIDENCE_THRESHOLD
    nlu_fallback = "nlu_fallback"  # the bot did not understand it
    out_of_scope = "out_of_scope"  # the bot read it as something we do not do
    before_handoff = "before_handoff"  # among the last messages before the conversation went to a human
    low_rating = "low_rating"  # in a conversation the customer rated 1 or 2
    flagged = "flagged"  # a CSR (or a designer) flagged it


class Decision(enum.StrEnum):
    confirmed = "confirmed"  # the bot's intent and entities were right
    corrected = "corrected"  # the reviewer changed the intent or the entities
    ignored = "ignored"  # not training material (spam, personal, nonsense)
    reopened = "reopened"  # back in the queue (only in the decision log)


ANNOTATED = (Decision.confirmed, Decision.corrected)
_decision = Enum(Decision, name="review_decision_kind", native_enum=False, length=16, create_constraint=False)


class ReviewFlag(Base):
    """A customer message someone flagged for review while handling the conversation (once per message)."""

    __tablename__ = "review_flag"

    message_id: Mapped[int] = mapped_column(BigIntId, ForeignKey("message.id", ondelete="CASCADE"), primary_key=True)
    conversation_id: Mapped[str] = mapped_column(
        String(36), ForeignKey("conversation.id", ondelete="CASCADE"), nullable=False
    )
    flagged_by: Mapped[str] = mapped_column(String(128), nullable=False)
    note: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False, default=utcnow)


class ReviewAnnotation(Base):
    """The standing decision on a message. Its primary key is what makes a message reviewed once:
    a second reviewer's insert fails until a reopen deletes the row."""

    __tablename__ = "review_annotation"

    message_id: Mapped[int] = mapped_column(BigIntId, ForeignKey("message.id", ondelete="CASCADE"), primary_key=True)
    conversation_id: Mapped[str] = mapped_column(
        String(36), ForeignKey("conversation.id", ondelete="CASCADE"), nullable=False
    )
    decision: Mapped[Decision] = mapped_column(_decision, nullable=False)
    intent: Mapped[str | None] = mapped_column(String(128))
    entities: Mapped[list[dict[str, Any]] | None] = mapped_column(JSON)
    predicted_intent: Mapped[str | None] = mapped_column(String(128))
    note: Mapped[str | None] = mapped_column(Text)
    reviewed_by: Mapped[str] = mapped_column(String(128), nullable=False)
    reviewed_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False, default=utcnow)

    __table_args__ = (Index("ix_review_annotation_decision_reviewed_at", "decision", "reviewed_at"),)


class ReviewDecision(Base):
    """Every decision ever taken on a message, reopenings included: who, when, what (the audit trail)."""

    __tablename__ = "review_decision"

    id: Mapped[int] = mapped_column(BigIntId, primary_key=True, autoincrement=True)
    message_id: Mapped[int] = mapped_column(BigIntId, ForeignKey("message.id", ondelete="CASCADE"), nullable=False)
    conversation_id: Mapped[str] = mapped_column(
        String(36), ForeignKey("conversation.id", ondelete="CASCADE"), nullable=False
    )
    decision: Mapped[Decision] = mapped_column(_decision, nullable=False)
    intent: Mapped[str | None] = mapped_column(String(128))
    entities: Mapped[list[dict[str, Any]] | None] = mapped_column(JSON)
    predicted_intent: Mapped[str | None] = mapped_column(String(128))
    note: Mapped[str | None] = mapped_column(Text)
    actor: Mapped[str] = mapped_column(String(128), nullable=False)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False, default=utcnow)

    __table_args__ = (Index("ix_review_decision_message_id_id", "message_id", "id"),)
