"""The consent ledger: who opted out of messages they did not ask for, since when, and how.

Changes come from the customer's own keywords (STOP, UNSUBSCRIBE, START and the
configured ones), Meta's `user_preferences` webhook (stop / resume marketing
messages) and Graph error 131050 (the customer stopped marketing messages). Each
is an event in `whatsapp_consent_event`, stored once (by its source and what it
came from: a wamid, a webhook's timestamp), so a redelivery records nothing new;
`whatsapp_consent` holds the current state. Meta's notifications arrive
unordered, so the current state only takes a change at least as recent as the one
it holds: the latest change wins.

An opt-out's scope says what it covers: `marketing` (Meta's stop) or `all` (the
customer's STOP). Marketing templates never go to an opted-out customer; utility and
authentication templates follow WHATSAPP_OPT_OUT_COVERS_UTILITY for `all`.
Replies to a customer who writes to us are not affected: they asked.
"""

from __future__ import annotations

import enum
import logging
import re
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession

from connectors.whatsapp import metrics
from connectors.whatsapp.models import ConsentScope, WhatsAppConsent, WhatsAppConsentEvent
from conversation_api.db import utcnow

log = logging.getLogger(__name__)

OPT_OUT_KEYWORDS = ("STOP", "UNSUBSCRIBE")
OPT_IN_KEYWORDS = ("START",)


class Source(enum.StrEnum):
    keyword = "keyword"  # the customer wrote STOP / START (or a configured keyword)
    user_preferences = "user_preferences"  # Meta's webhook: stopped or resumed marketing messages
    graph_error = "graph_error"  # Graph error 131050 on a send (or in a failed status)


@dataclass(frozen=True, slots=True)
class Consent:
    opted_out: str | None = None  # None, "marketing" or "all"
    changed_at: datetime | None = None
    source: str | None = None

    def blocks(self, category: str, *, covers_utility: bool) -> bool:
        """Whether a template of `category` may not be sent to this customer."""
        if self.opted_out is None:
            return False
        if category == "marketing":
            return True
        return self.opted_out == ConsentScope.all.value and covers_utility


def normalise(text: str) -> str:
    # "Stop.", " stop! ", "STOP" are the same request; "please stop the reminders" is not a keyword.
    return re.sub(r"[\s.!¡?¿]+$", "", text.strip()).upper()


@dataclass(frozen=True, slots=True)
class Keywords:
    opt_out: frozenset[str]
    opt_in: frozenset[str]

    @classmethod
    def of(cls, extra_opt_out: list[str], extra_opt_in: list[str]) -> Keywords:
        opt_out = frozenset(normalise(k) for k in (*OPT_OUT_KEYWORDS, *extra_opt_out) if k.strip())
        opt_in = frozenset(normalise(k) for k in (*OPT_IN_KEYWORDS, *extra_opt_in) if k.strip())
        both = opt_out & opt_in
        if both:
            raise ValueError(f"keyword(s) {', '.join(sorted(both))} cannot both opt out and opt in")
        return cls(opt_out=opt_out, opt_in=opt_in)

    def action_of(self, text: str | None) -> str | None:
        """`opt_out`, `opt_in` or None for a customer's message (the whole message must be the keyword)."""
        if not text:
            return None
        word = normalise(text)
        if word in self.opt_out:
            return "opt_out"
        if word in self.opt_in:
            return "opt_in"
        return None


def _insert(session: AsyncSession, table: Any) -> Any:
    dialect = session.get_bind().dialect.name
    return (postgresql.insert if dialect == "postgresql" else sqlite.insert)(table)


async def consent_of(*, session: AsyncSession, wa_id: str) -> Consent:
    row = await session.get(WhatsAppConsent, wa_id)
    if row is None:
        return Consent()
    return Consent(opted_out=row.opted_out, changed_at=row.changed_at, source=row.source)


async def record(
    *,
    session: AsyncSession,
    wa_id: str,
    action: str,
    source: Source,
    reference: str,
    at: datetime,
    scope: ConsentScope | None = None,
    detail: str | None = None,
    phone_number_id: str | None = None,
) -> bool:
    """Add a change to the ledger and apply it, unless it is already there; True when it was new.

    The caller owns the transaction.
    """
    assert action in ("opt_out", "opt_in")
    if action == "opt_out" and scope is None:
        raise ValueError("an opt-out needs its scope")
    now = utcnow()
    new = await session.execute(
        _insert(session, WhatsAppConsentEvent)
        .values(
            wa_id=wa_id,
            action=action,
            scope=scope.value if action == "opt_out" and scope else None,
            source=source.value,
            detail=(detail or "")[:2000] or None,
            reference=reference[:255],
            phone_number_id=phone_number_id,
            occurred_at=at,
            recorded_at=now,
        )
        .on_conflict_do_nothing(index_elements=["source", "reference"])
        .returning(WhatsAppConsentEvent.id)
    )
    if new.scalar_one_or_none() is None:
        return False
    state = scope.value if action == "opt_out" and scope else None
    await session.execute(
        _insert(session, WhatsAppConsent)
        .values(wa_id=wa_id, opted_out=state, changed_at=at, source=source.value, updated_at=now)
        .on_conflict_do_nothing(index_elements=["wa_id"])
    )
    await session.execute(
        update(WhatsAppConsent)
        .where(WhatsAppConsent.wa_id == wa_id)
        .where(WhatsAppConsent.changed_at <= at)
        .values(opted_out=state, changed_at=at, source=source.value, updated_at=now)
    )
    metrics.CONSENT_CHANGES.labels(action=action, source=source.value).inc()
    log.info("consent %s wa_id=%s scope=%s source=%s reference=%s", action, wa_id, state, source.value, reference)
    return True


async def ledger(*, session: AsyncSession, wa_id: str, limit: int = 100) -> list[WhatsAppConsentEvent]:
    """A customer's consent changes, newest first (the audit trail)."""
    rows = await session.scalars(
        select(WhatsAppConsentEvent)
        .where(WhatsAppConsentEvent.wa_id == wa_id)
        .order_by(WhatsAppConsentEvent.occurred_at.desc(), WhatsAppConsentEvent.id.desc())
        .limit(limit)
    )
    return list(rows)
