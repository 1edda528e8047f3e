"""An example consumer: keeps each customer's last intent and contact details in `customer_profile`.

Run it with
    python -m conversation_api.events consume --group crm-sync \
        --types intent.detected contact.updated --handler crm-sync
A CRM integration replaces `upsert` with a call to the CRM's API; the rest stays.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import JSON, DateTime, Float, String
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlalchemy.orm import Mapped, mapped_column

from conversation_api.db import Base, utcnow
from conversation_api.events.envelope import Event, EventType

TYPES = (EventType.intent_detected.value, EventType.contact_updated.value)


class CustomerProfile(Base):
    __tablename__ = "customer_profile"

    user_id: Mapped[str] = mapped_column(String(128), primary_key=True)
    channel: Mapped[str | None] = mapped_column(String(32))
    last_conversation_id: Mapped[str | None] = mapped_column(String(36))
    last_intent: Mapped[str | None] = mapped_column(String(128))
    last_intent_confidence: Mapped[float | None] = mapped_column(Float)
    last_intent_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    contact: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False, default=utcnow)


def _utc(moment: datetime | None) -> datetime | None:
    if moment is None:
        return None
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment


def apply(profile: CustomerProfile, event: Event) -> None:
    """Fold one event into the profile; an older event never overwrites a newer intent."""
    if event.type == EventType.intent_detected:
        newer = profile.last_intent_at is None or _utc(profile.last_intent_at) <= event.occurred_at  # type: ignore[operator]
        if newer:
            profile.last_intent = event.payload.get("intent")
            profile.last_intent_confidence = event.payload.get("confidence")
            profile.last_intent_at = event.occurred_at
    elif event.type == EventType.contact_updated:
        data = event.payload.get("data") or {}
        if event.payload.get("success", True) and isinstance(data, dict):
            profile.contact = {**(profile.contact or {}), **data}
    profile.channel = event.channel or profile.channel
    profile.last_conversation_id = event.conversation_id or profile.last_conversation_id
    profile.updated_at = utcnow()


class CrmSync:
    """The handler: `await CrmSync(sessions)(event)`."""

    def __init__(self, sessions: async_sessionmaker[AsyncSession]) -> None:
        self._sessions = sessions

    async def __call__(self, event: Event) -> None:
        if event.type not in TYPES or not event.user_id:
            return
        for attempt in range(2):
            try:
                await self.upsert(event)
                return
            except IntegrityError:  # another consumer created the row first: update it instead
                if attempt:
                    raise

    async def upsert(self, event: Event) -> None:
        async with self._sessions() as session, session.begin():
            profile = await session.get(CustomerProfile, event.user_id, with_for_update=True)
            if profile is None:
                profile = CustomerProfile(user_id=event.user_id)
                session.add(profile)
            apply(profile, event)
