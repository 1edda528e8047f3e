"""Dead inbound messages: listing them and re-driving them into the queue (the CLI in __main__.py calls these)."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from connectors.whatsapp.models import InboundState, WhatsAppInbound
from conversation_api.db import utcnow


async def dead_messages(*, session: AsyncSession, limit: int = 100) -> list[WhatsAppInbound]:
    """The oldest `limit` dead rows, with their last error."""
    rows = await session.scalars(
        select(WhatsAppInbound)
        .where(WhatsAppInbound.state == InboundState.dead.value)
        .order_by(WhatsAppInbound.received_at, WhatsAppInbound.id)
        .limit(limit)
    )
    return list(rows)


async def redrive(*, session: AsyncSession, wamids: Sequence[str] | None) -> list[str]:
    """Queue dead rows again (all of them when `wamids` is None) with a fresh count of attempts; their wamids.

    The worker picks them up at its next poll. A message the bot already answered
    is not sent to the bot again: the worker only delivers what was not accepted.
    The caller owns the transaction.
    """
    statement = (
        update(WhatsAppInbound)
        .where(WhatsAppInbound.state == InboundState.dead.value)
        .values(
            state=InboundState.pending.value,
            failed_attempts=0,
            next_attempt_at=utcnow(),
            locked_until=None,
            lease_owner=None,
        )
        .returning(WhatsAppInbound.wamid)
    )
    if wamids is not None:
        statement = statement.where(WhatsAppInbound.wamid.in_(list(wamids)))
    return list((await session.scalars(statement)).all())
