"""Tables for conversations and messages."""

from __future__ import annotations

import enum
import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import JSON, DateTime, Enum, Float, ForeignKey, Index, String, Text
from sqlalchemy import text as sa_text
from sqlalchemy.orm import Mapped, mapped_column

from conversation_api.db import Base, BigIntId, utcnow


class Sender(enum.StrEnum):
    user = "user"
    bot = "bot"
    csr = "csr"


class HandoffState(enum.StrEnum):
    bot = "bot"
    pending_human = "pending_human"
    with_human = "with_human"


class TurnState(enum.StrEnum):
    """Where a customer message routed to the bot stands (NULL: not the bot's to answer)."""

    pending = "pending"  # stored; the bot has not answered it yet (in flight, or the bot failed)
    answered = "answered"  # the bot's turn for it is stored
    superseded = "superseded"  # the bot was down; the customer wrote again and a later message was answered
    handed_off = "handed_off"  # left unanswered too long by a bot outage: given to a human instead


class Channel(enum.StrEnum):
    api = "api"
    whatsapp = "whatsapp"


def new_conversation_id() -> str:
    return str(uuid.uuid4())


class Conversation(Base):
    __tablename__ = "conversation"

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_conversation_id)
    user_id: Mapped[str] = mapped_column(String(128), nullable=False)
    channel: Mapped[str] = mapped_column(String(32), nullable=False, default=Channel.api.value)
    handoff_state: Mapped[HandoffState] = mapped_column(
        Enum(HandoffState, name="handoff_state", native_enum=False, length=32),
        nullable=False,
        default=HandoffState.bot,
    )
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False, default=utcnow)

    __table_args__ = (Index("ix_conversation_user_updated", "user_id", "updated_at"),)


class Message(Base):
    __tablename__ = "message"

    id: Mapped[int] = mapped_column(BigIntId, primary_key=True, autoincrement=True)
    conversation_id: Mapped[str] = mapped_column(
        String(36), ForeignKey("conversation.id", ondelete="CASCADE"), nullable=False
    )
    sender: Mapped[Sender] = mapped_column(Enum(Sender, name="sender", native_enum=False, length=16), nullable=False)
    text: Mapped[str] = mapped_column(Text, nullable=False)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False, default=utcnow)
    intent: Mapped[str | None] = mapped_column(String(128))
    entities: Mapped[list[dict[str, Any]] | None] = mapped_column(JSON)
    confidence: Mapped[float | None] = mapped_column(Float)
    payload: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    channel: Mapped[str] = mapped_column(String(32), nullable=False, default=Channel.api.value)
    external_id: Mapped[str | None] = mapped_column(String(255))
    turn_state: Mapped[TurnState | None] = mapped_column(
        Enum(TurnState, name="turn_state", native_enum=False, length=16, create_constraint=False)
    )
    # A bot reply: the customer message it answers.
    reply_to: Mapped[int | None] = mapped_column(BigIntId, index=True)

    __table_args__ = (
        Index("ix_message_conversation_id_id", "conversation_id", "id"),
        Index(
            "ix_message_turn_pending",
            "id",
            postgresql_where=sa_text("turn_state = 'pending'"),
            sqlite_where=sa_text("turn_state = 'pending'"),
        ),
        Index("uq_message_channel_external_id", "channel", "external_id", unique=True),
    )
