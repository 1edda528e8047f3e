"""Events and metrics of handoff state changes (called by conversation_api.handoff.service)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import exists, select
from sqlalchemy.ext.asyncio import AsyncSession

from conversation_api.conversations.models import Conversation, HandoffState, Message, Sender
from conversation_api.db import utcnow
from conversation_api.events.envelope import EventType
from conversation_api.events.outbox import record_event
from conversation_api.metrics import instruments

EVENT_FOR_STATE = {
    HandoffState.pending_human: EventType.handoff_requested,
    HandoffState.with_human: EventType.handoff_claimed,
    HandoffState.bot: EventType.handoff_resolved,
}
REQUEST_REASONS = frozenset({"customer_request", "repeated_fallback", "low_rating", "workflow"})


def record_handoff_transition(
    session: AsyncSession,
    *,
    conversation: Conversation,
    from_state: HandoffState,
    to_state: HandoffState,
    actor: str,
    reason: str,
) -> None:
    """`handoff.requested|claimed|resolved` in the transaction of the state change, and its counters."""
    payload = {"from_state": from_state.value, "to_state": to_state.value, "actor": actor, "reason": reason}
    if to_state is HandoffState.with_human:
        payload["csr_id"] = actor
    record_event(
        session,
        type=EVENT_FOR_STATE[to_state],
        conversation_id=conversation.id,
        user_id=conversation.user_id,
        channel=conversation.channel,
        payload=payload,
    )
    instruments.count_handoff_transition(to_state=to_state.value)
    if to_state is HandoffState.pending_human:
        label = reason if reason in REQUEST_REASONS else "other"
        instruments.HANDOFFS_REQUESTED.labels(label, conversation.channel).inc()


async def observe_csr_reply(
    session: AsyncSession, *, conversation: Conversation, requested_at: datetime | None, replied_at: datetime
) -> None:
    """Observe the CSR first response time if no CSR had answered since the handoff was requested.

    Call before storing the CSR's message.
    """
    if requested_at is None:
        return
    earlier = await session.scalar(
        select(
            exists().where(
                Message.conversation_id == conversation.id,
                Message.sender == Sender.csr,
                Message.created_at >= requested_at,
            )
        )
    )
    if not earlier:
        instruments.observe_csr_first_response(
            channel=conversation.channel, seconds=(_aware(replied_at) - _aware(requested_at)).total_seconds()
        )


def _aware(moment: datetime) -> datetime:
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=utcnow().tzinfo)
