"""Tables of the WhatsApp connector: contacts, the durable inbound queue, outbound messages, statuses."""

from __future__ import annotations

import enum
from datetime import datetime
from typing import Any

from sqlalchemy import JSON, DateTime, ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from conversation_api.db import Base, BigIntId, utcnow


class InboundState(enum.StrEnum):
    pending = "pending"  # waiting for (another) attempt by the worker
    done = "done"  # went through the gateway; replies (if any) were accepted by the Graph API or refused for good
    dead = "dead"  # WHATSAPP_MAX_ATTEMPTS failed attempts (not bot outages); kept until re-driven


class OutboundStatus(enum.StrEnum):
    pending = "pending"  # a bot reply not accepted yet (retryable errors ran out): the worker sends it again
    accepted = "accepted"  # the Graph API took it (not yet sent to the phone)
    sent = "sent"
    delivered = "delivered"
    read = "read"
    failed = "failed"


# Statuses only move forward; a late "sent" never undoes "read". "failed" wins over all.
STATUS_RANK = {"accepted": 0, "sent": 1, "delivered": 2, "read": 3, "failed": 4}


class WhatsAppContact(Base):
    """One WhatsApp user (wa_id) = one customer; remembers the profile name and the service window."""

    __tablename__ = "whatsapp_contact"

    wa_id: Mapped[str] = mapped_column(String(32), primary_key=True)
    user_id: Mapped[str] = mapped_column(String(128), nullable=False, unique=True)
    profile_name: Mapped[str | None] = mapped_column(String(256))
    conversation_id: Mapped[str | None] = mapped_column(String(36), ForeignKey("conversation.id", ondelete="SET NULL"))
    last_inbound_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # The business number of the customer's latest message: replies and templates go out from it.
    phone_number_id: Mapped[str | None] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False, default=utcnow)


class WhatsAppInbound(Base):
    """Every message Meta delivered, once (unique wamid): the durable queue the worker drains."""

    __tablename__ = "whatsapp_inbound"

    id: Mapped[int] = mapped_column(BigIntId, primary_key=True, autoincrement=True)
    wamid: Mapped[str] = mapped_column(String(255), nullable=False, unique=True)
    wa_id: Mapped[str] = mapped_column(String(32), nullable=False)
    phone_number_id: Mapped[str | None] = mapped_column(String(64))
    type: Mapped[str] = mapped_column(String(32), nullable=False)
    text: Mapped[str] = mapped_column(Text, nullable=False)
    bot_text: Mapped[str | None] = mapped_column(Text)
    media_id: Mapped[str | None] = mapped_column(String(255))
    mime_type: Mapped[str | None] = mapped_column(String(255))
    raw: Mapped[dict[str, Any]] = mapped_column(JSON, nullable=False)
    sent_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)
    received_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False, default=utcnow)
    state: Mapped[str] = mapped_column(String(16), nullable=False, default=InboundState.pending.value)
    attempts: Mapped[int] = mapped_column(Integer, nullable=False, default=0)  # claims, whatever their outcome
    # Attempts that failed (an error, replies not delivered, a lease that ran out); bot outages do not count.
    failed_attempts: Mapped[int] = mapped_column(Integer, nullable=False, default=0, server_default="0")
    next_attempt_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False, default=utcnow)
    locked_until: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # The claim's token: only the worker holding the lease may renew it or record the outcome.
    lease_owner: Mapped[str | None] = mapped_column(String(32))
    last_error: Mapped[str | None] = mapped_column(Text)
    conversation_id: Mapped[str | None] = mapped_column(String(36))
    message_id: Mapped[int | None] = mapped_column(BigIntId)
    processed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))

    __table_args__ = (Index("ix_whatsapp_inbound_state_next", "state", "next_attempt_at"),)


class WhatsAppOutbound(Base):
    """One request to the Graph API's /messages (a split text is several rows), matched to statuses by wamid."""

    __tablename__ = "whatsapp_outbound"

    id: Mapped[int] = mapped_column(BigIntId, primary_key=True, autoincrement=True)
    wamid: Mapped[str | None] = mapped_column(String(255), unique=True)
    wa_id: Mapped[str] = mapped_column(String(32), nullable=False)
    phone_number_id: Mapped[str | None] = mapped_column(String(64))  # the business number it went out from
    conversation_id: Mapped[str | None] = mapped_column(String(36))
    message_id: Mapped[int | None] = mapped_column(BigIntId, ForeignKey("message.id", ondelete="SET NULL"))
    kind: Mapped[str] = mapped_column(String(32), nullable=False)
    body: Mapped[dict[str, Any]] = mapped_column(JSON, nullable=False)
    status: Mapped[str] = mapped_column(String(16), nullable=False, default=OutboundStatus.accepted.value)
    status_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    error_code: Mapped[int | None] = mapped_column(Integer)
    error_reason: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False, default=utcnow)

    __table_args__ = (Index("ix_whatsapp_outbound_conversation_id", "conversation_id"),)


class WhatsAppStatus(Base):
    """Each (wamid, status) Meta reported, once; the outbound row keeps the furthest one."""

    __tablename__ = "whatsapp_status"

    id: Mapped[int] = mapped_column(BigIntId, primary_key=True, autoincrement=True)
    wamid: Mapped[str] = mapped_column(String(255), nullable=False)
    status: Mapped[str] = mapped_column(String(16), nullable=False)
    recipient_id: Mapped[str | None] = mapped_column(String(32))
    occurred_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)
    error_code: Mapped[int | None] = mapped_column(Integer)
    error_reason: Mapped[str | None] = mapped_column(Text)
    raw: Mapped[dict[str, Any]] = mapped_column(JSON, nullable=False)
    received_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False, default=utcnow)

    __table_args__ = (UniqueConstraint("wamid", "status"),)


class WhatsAppTemplateStatus(Base):
    """What Meta last said about one template (name, language): its review status and its quality."""

    __tablename__ = "whatsapp_template_status"

    id: Mapped[int] = mapped_column(BigIntId, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(512), nullable=False)
    language: Mapped[str] = mapped_column(String(16), nullable=False)
    template_id: Mapped[str | None] = mapped_column(String(64))
    status: Mapped[str | None] = mapped_column(String(32))  # APPROVED, REJECTED, PAUSED, DISABLED, ...
    reason: Mapped[str | None] = mapped_column(Text)
    status_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    quality: Mapped[str | None] = mapped_column(String(16))  # GREEN, YELLOW, RED, UNKNOWN
    quality_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False, default=utcnow)

    __table_args__ = (UniqueConstraint("name", "language"),)


class WhatsAppTemplateEvent(Base):
    """Every template status or quality notification Meta sent, once: the history admins see."""

    __tablename__ = "whatsapp_template_event"

    id: Mapped[int] = mapped_column(BigIntId, primary_key=True, autoincrement=True)
    field: Mapped[str] = mapped_column(String(64), nullable=False)  # message_template_(status|quality)_update
    name: Mapped[str] = mapped_column(String(512), nullable=False)
    language: Mapped[str] = mapped_column(String(16), nullable=False)
    template_id: Mapped[str | None] = mapped_column(String(64))
    value: Mapped[str] = mapped_column(String(32), nullable=False)  # the event (APPROVED...) or the new quality
    previous: Mapped[str | None] = mapped_column(String(32))  # the previous quality
    reason: Mapped[str | None] = mapped_column(Text)
    occurred_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)
    raw: Mapped[dict[str, Any]] = mapped_column(JSON, nullable=False)
    received_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False, default=utcnow)

    __table_args__ = (UniqueConstraint("field", "name", "language", "value", "occurred_at"),)


class ConsentScope(enum.StrEnum):
    marketing = "marketing"  # Meta's "stop marketing messages" (user_preferences, error 131050)
    all = "all"  # the customer's own STOP: every message they did not ask for


class WhatsAppConsent(Base):
    """A customer's current consent: opted out (of what) or not, and the last change."""

    __tablename__ = "whatsapp_consent"

    wa_id: Mapped[str] = mapped_column(String(32), primary_key=True)
    opted_out: Mapped[str | None] = mapped_column(String(16))  # None, "marketing" or "all"
    changed_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)
    source: Mapped[str] = mapped_column(String(32), nullable=False)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False, default=utcnow)


class WhatsAppConsentEvent(Base):
    """The consent ledger: every opt-out and opt-in, once, with when and how (the audit trail)."""

    __tablename__ = "whatsapp_consent_event"

    id: Mapped[int] = mapped_column(BigIntId, primary_key=True, autoincrement=True)
    wa_id: Mapped[str] = mapped_column(String(32), nullable=False)
    action: Mapped[str] = mapped_column(String(16), nullable=False)  # opt_out, opt_in
    scope: Mapped[str | None] = mapped_column(String(16))  # what an opt-out covers: marketing, all
    source: Mapped[str] = mapped_column(String(32), nullable=False)  # keyword, user_preferences, graph_error
    detail: Mapped[str | None] = mapped_column(Text)  # the keyword, Meta's detail, the error
    reference: Mapped[str] = mapped_column(String(255), nullable=False)  # what it came from (wamid...), for dedupe
    phone_number_id: Mapped[str | None] = mapped_column(String(64))
    occurred_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)
    recorded_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False, default=utcnow)

    __table_args__ = (
        UniqueConstraint("source", "reference"),
        Index("ix_whatsapp_consent_event_wa_id", "wa_id", "occurred_at"),
    )
