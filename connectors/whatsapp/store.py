"""Idempotent writes of webhook notifications: contacts, the inbound queue and statuses.

Meta delivers at least once, in any order and sometimes concurrently, so every
insert is `ON CONFLICT DO NOTHING` on the natural key (wamid; wamid + status):
the database, not the process, decides which delivery is the first.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import case, func, or_, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession

from connectors.whatsapp.consent import Source
from connectors.whatsapp.consent import record as record_consent
from connectors.whatsapp.graph import STOPPED_MARKETING
from connectors.whatsapp.models import (
    STATUS_RANK,
    ConsentScope,
    WhatsAppContact,
    WhatsAppInbound,
    WhatsAppOutbound,
    WhatsAppStatus,
    WhatsAppTemplateEvent,
    WhatsAppTemplateStatus,
)
from connectors.whatsapp.payloads import InboundMessage, Notification, StatusUpdate, TemplateUpdate
from conversation_api.db import utcnow

USER_PREFIX = "whatsapp:"


def user_id_for(wa_id: str) -> str:
    """The conversation API's user id of a WhatsApp user ("whatsapp:<wa_id>", never clashing with API users)."""
    return USER_PREFIX + wa_id


def wa_id_of(user_id: str) -> str | None:
    return user_id[len(USER_PREFIX) :] if user_id.startswith(USER_PREFIX) else None


@dataclass(slots=True)
class StoreResult:
    new_messages: list[InboundMessage] = field(default_factory=list)
    duplicate_messages: list[InboundMessage] = field(default_factory=list)
    new_statuses: list[StatusUpdate] = field(default_factory=list)
    duplicate_statuses: list[StatusUpdate] = field(default_factory=list)
    ignored: int = 0  # messages and statuses for phone numbers we do not serve (acknowledged, not stored)
    new_templates: list[TemplateUpdate] = field(default_factory=list)


def _insert(session: AsyncSession, table: Any) -> Any:
    dialect = session.get_bind().dialect.name
    return (postgresql.insert if dialect == "postgresql" else sqlite.insert)(table)


async def _insert_if_new(session: AsyncSession, table: Any, keys: list[str], values: dict[str, Any]) -> bool:
    """Insert unless a row with the same `keys` exists; True when this call inserted it."""
    inserted = await session.execute(
        _insert(session, table).values(**values).on_conflict_do_nothing(index_elements=keys).returning(table.id)
    )
    # RETURNING yields a row only when this delivery inserted it (rowcount is not reliable here).
    return inserted.scalar_one_or_none() is not None


def _rank(column: Any) -> Any:
    return case(STATUS_RANK, value=column, else_=-1)


async def store_notification(*, session: AsyncSession, notification: Notification) -> StoreResult:
    """Store contacts, new messages (queued for the worker) and new statuses; the caller owns the transaction."""
    result = StoreResult()
    now = utcnow()
    latest: dict[str, InboundMessage] = {}  # each sender's latest message: its time and the number it went to
    for message in notification.messages:
        if message.wa_id not in latest or message.timestamp > latest[message.wa_id].timestamp:
            latest[message.wa_id] = message
    for wa_id in sorted(latest):  # a fixed order, so concurrent batches lock contacts without deadlocking
        await upsert_contact(
            session=session,
            wa_id=wa_id,
            profile_name=notification.profile_names.get(wa_id),
            last_inbound_at=latest[wa_id].timestamp,
            phone_number_id=latest[wa_id].phone_number_id,
        )

    # Sorted by wamid so that two overlapping batches take the unique-index locks in the same order.
    for message in sorted(notification.messages, key=lambda m: m.wamid):
        is_new = await _insert_if_new(
            session,
            WhatsAppInbound,
            ["wamid"],
            dict(
                wamid=message.wamid,
                wa_id=message.wa_id,
                phone_number_id=message.phone_number_id,
                type=message.type,
                text=message.text,
                bot_text=message.bot_text,
                media_id=message.media_id,
                mime_type=message.mime_type,
                raw=message.raw,
                sent_at=message.timestamp,
                received_at=now,
                state="pending",
                attempts=0,
                next_attempt_at=now,
            ),
        )
        (result.new_messages if is_new else result.duplicate_messages).append(message)

    for status in notification.statuses:
        if await _insert_if_new(
            session,
            WhatsAppStatus,
            ["wamid", "status"],
            dict(
                wamid=status.wamid,
                status=status.status,
                recipient_id=status.recipient_id,
                occurred_at=status.timestamp,
                error_code=status.error_code,
                error_reason=status.error_reason,
                raw=status.raw,
                received_at=now,
            ),
        ):
            result.new_statuses.append(status)
            await apply_status(
                session=session,
                wamid=status.wamid,
                status=status.status,
                at=status.timestamp,
                error_code=status.error_code,
                error_reason=status.error_reason,
            )
        else:
            result.duplicate_statuses.append(status)

    for status in result.new_statuses:
        if status.status == "failed" and status.error_code == STOPPED_MARKETING and status.recipient_id:
            await record_consent(
                session=session,
                wa_id=status.recipient_id,
                action="opt_out",
                scope=ConsentScope.marketing,
                source=Source.graph_error,
                reference=f"status:{status.wamid}",
                at=status.timestamp,
                detail=f"{STOPPED_MARKETING}: {status.error_reason}",
                phone_number_id=status.phone_number_id,
            )
    for preference in notification.preferences:
        await record_consent(
            session=session,
            wa_id=preference.wa_id,
            action="opt_out" if preference.value == "stop" else "opt_in",
            scope=ConsentScope.marketing if preference.value == "stop" else None,
            source=Source.user_preferences,
            reference=f"{preference.wa_id}:{preference.value}:{int(preference.timestamp.timestamp())}",
            at=preference.timestamp,
            detail=preference.detail,
            phone_number_id=preference.phone_number_id,
        )

    for template in notification.templates:
        if await store_template_update(session=session, change=template):
            result.new_templates.append(template)
    return result


async def store_template_update(*, session: AsyncSession, change: TemplateUpdate) -> bool:
    """Keep Meta's news about a template (once) and move its current status or quality; False if seen before.

    Notifications arrive unordered: the current state only takes a newer one.
    """
    now = utcnow()
    is_new = await _insert_if_new(
        session,
        WhatsAppTemplateEvent,
        ["field", "name", "language", "value", "occurred_at"],
        dict(
            field=change.field,
            name=change.name,
            language=change.language,
            template_id=change.template_id,
            value=change.value,
            previous=change.previous,
            reason=change.reason,
            occurred_at=change.timestamp,
            raw=change.raw,
            received_at=now,
        ),
    )
    if not is_new:
        return False
    await session.execute(
        _insert(session, WhatsAppTemplateStatus)
        .values(name=change.name, language=change.language, template_id=change.template_id, updated_at=now)
        .on_conflict_do_nothing(index_elements=["name", "language"])
    )
    table = WhatsAppTemplateStatus
    if change.field == "message_template_status_update":
        newer = or_(table.status_at.is_(None), table.status_at <= change.timestamp)
        values: dict[str, Any] = {"status": change.value, "reason": change.reason, "status_at": change.timestamp}
    else:
        newer = or_(table.quality_at.is_(None), table.quality_at <= change.timestamp)
        values = {"quality": change.value, "quality_at": change.timestamp}
    if change.template_id:
        values["template_id"] = change.template_id
    await session.execute(
        update(table)
        .where(table.name == change.name, table.language == change.language, newer)
        .values(**values, updated_at=now)
    )
    return True


async def upsert_contact(
    *,
    session: AsyncSession,
    wa_id: str,
    profile_name: str | None,
    last_inbound_at: datetime | None,
    phone_number_id: str | None = None,
) -> None:
    """Create the contact on its first message, or refresh its profile name and service window.

    Not one `ON CONFLICT (wa_id) DO UPDATE`: that arbitrates only the wa_id index, so two
    concurrent first deliveries could collide on the user_id index and raise instead of merging.
    `DO NOTHING` without a target arbitrates every unique index (waiting for the other insert to
    commit); the update after it then finds the contact, whoever inserted it.
    """
    now = utcnow()
    if await _refresh_contact(session, wa_id, profile_name, last_inbound_at, phone_number_id, now):
        return  # the usual case, a customer we know: one statement
    inserted = await session.execute(
        _insert(session, WhatsAppContact)
        .values(
            wa_id=wa_id,
            user_id=user_id_for(wa_id),
            profile_name=profile_name,
            last_inbound_at=last_inbound_at,
            phone_number_id=phone_number_id,
            created_at=now,
            updated_at=now,
        )
        .on_conflict_do_nothing()
        .returning(WhatsAppContact.wa_id)
    )
    if inserted.scalar_one_or_none() is None:  # another delivery inserted it meanwhile
        await _refresh_contact(session, wa_id, profile_name, last_inbound_at, phone_number_id, now)


async def _refresh_contact(
    session: AsyncSession,
    wa_id: str,
    profile_name: str | None,
    last_inbound_at: datetime | None,
    phone_number_id: str | None,
    now: datetime,
) -> bool:
    """Update a known contact; False when there is none (yet)."""
    current = WhatsAppContact.last_inbound_at
    newer = or_(current.is_(None), current < last_inbound_at)
    values: dict[str, Any] = {
        "profile_name": func.coalesce(profile_name, WhatsAppContact.profile_name),
        # Only ever moves forward: a late redelivery of an old message must not close the window.
        "last_inbound_at": case((newer, last_inbound_at), else_=current),
        "updated_at": now,
    }
    if phone_number_id is not None:
        # Replies go out from the number of the customer's latest message (timestamps are whole
        # seconds: of two in the same second, the one stored last).
        latest = or_(current.is_(None), current <= last_inbound_at, WhatsAppContact.phone_number_id.is_(None))
        values["phone_number_id"] = case(
            (latest, phone_number_id),
            else_=WhatsAppContact.phone_number_id,
        )
    updated = await session.execute(
        update(WhatsAppContact).where(WhatsAppContact.wa_id == wa_id).values(**values).returning(WhatsAppContact.wa_id)
    )
    return updated.scalar_one_or_none() is not None


async def apply_status(
    *,
    session: AsyncSession,
    wamid: str,
    status: str,
    at: datetime,
    error_code: int | None = None,
    error_reason: str | None = None,
) -> None:
    """Move the outbound message to `status` unless it is already further along (statuses arrive unordered)."""
    values: dict[str, Any] = {"status": status, "status_at": at, "updated_at": utcnow()}
    if status == "failed":
        values.update(error_code=error_code, error_reason=error_reason)
    await session.execute(
        update(WhatsAppOutbound)
        .where(WhatsAppOutbound.wamid == wamid)
        .where(_rank(WhatsAppOutbound.status) < STATUS_RANK.get(status, -1))
        .values(**values)
    )


async def apply_known_statuses(*, session: AsyncSession, wamid: str) -> None:
    """Statuses can arrive before we stored the wamid of what we sent: replay them onto the new row."""
    known = (await session.scalars(select(WhatsAppStatus).where(WhatsAppStatus.wamid == wamid))).all()
    for status in sorted(known, key=lambda s: STATUS_RANK.get(s.status, -1)):
        await apply_status(
            session=session,
            wamid=wamid,
            status=status.status,
            at=status.occurred_at,
            error_code=status.error_code,
            error_reason=status.error_reason,
        )
