"""Service verbs of the human handoff. Callers own the transaction.

A conversation is `bot` (default), `pending_human` (handed off, waiting for a CSR),
`with_human` (claimed by a CSR), and back to `bot` when resolved or timed out.
The state lives in `conversation.handoff_state` (the gateway routes on it); every
change goes through `transition`, which records a `handoff_transition` row.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm.attributes import set_committed_value

from conversation_api.auth import Principal, Role
from conversation_api.bot import BotTurn
from conversation_api.conversations import service as conversations
from conversation_api.conversations.models import Conversation, HandoffState, Message, Sender
from conversation_api.db import utcnow
from conversation_api.errors import Conflict, ConversationNotFound
from conversation_api.handoff.events import observe_csr_reply, record_handoff_transition
from conversation_api.handoff.models import BotSync, ConversationHandoff, HandoffReason, HandoffTransition

log = logging.getLogger(__name__)

HUMAN_STATES = (HandoffState.pending_human, HandoffState.with_human)
FALLBACK_INTENT = "nlu_fallback"
FALLBACKS_BEFORE_HANDOFF = 2
LOWEST_RATING = 1
# The bot contract's `handoff_reason` values; anything else is reported as a workflow request.
REQUEST_REASONS = {
    HandoffReason.customer_request,
    HandoffReason.repeated_fallback,
    HandoffReason.low_rating,
    HandoffReason.workflow,
}
SYSTEM_ACTOR = "system"
BOT_ACTOR = "bot"

UNCLAIMED_TEXT = (
    "Sorry, no one from our team is free right now, so I'm back to help you in the meantime. What can I do for you?"
)
IDLE_TEXT = "This conversation with our team has been closed. Message us any time and I'll be glad to help."


class HandoffConflict(Conflict):
    """The conversation is not in a state that allows this (already claimed, not handed off, ...)."""

    code = "handoff_conflict"


# --- the one place the state changes -------------------------------------------------


async def transition(
    *,
    session: AsyncSession,
    conversation: Conversation,
    to_state: HandoffState,
    actor: str,
    reason: str,
    note: str | None = None,
) -> HandoffTransition:
    """Move `conversation` to `to_state` and record who, when and why.

    A conditional UPDATE (`WHERE handoff_state = <state we read>`) makes concurrent
    changes safe: exactly one of two racing claims (or a claim and a timeout) wins,
    the other gets HandoffConflict. Handoff events (requested/claimed/resolved) are
    published from here.
    """
    from_state = conversation.handoff_state
    result = await session.execute(
        update(Conversation)
        .where(Conversation.id == conversation.id, Conversation.handoff_state == from_state)
        .values(handoff_state=to_state)
        .execution_options(synchronize_session=False)
    )
    if result.rowcount != 1:  # type: ignore[attr-defined]
        raise HandoffConflict(
            f"conversation {conversation.id!r} is no longer {from_state.value}; reload it",
            conversation_id=conversation.id,
        )
    set_committed_value(conversation, "handoff_state", to_state)
    row = HandoffTransition(
        conversation_id=conversation.id,
        from_state=from_state,
        to_state=to_state,
        actor=actor,
        reason=reason,
        note=note,
        created_at=utcnow(),
    )
    session.add(row)
    record_handoff_transition(
        session, conversation=conversation, from_state=from_state, to_state=to_state, actor=actor, reason=reason
    )
    await session.flush()
    log.info(
        "handoff transition conversation_id=%s from=%s to=%s actor=%s reason=%s",
        conversation.id,
        from_state.value,
        to_state.value,
        actor,
        reason,
    )
    return row


async def handoff_of(*, session: AsyncSession, conversation_id: str) -> ConversationHandoff:
    """The conversation's handoff bookkeeping row, created on first use."""
    row = await session.get(ConversationHandoff, conversation_id)
    if row is None:
        row = ConversationHandoff(conversation_id=conversation_id, fallback_streak=0)
        session.add(row)
        await session.flush()
    return row


async def owned_with_handoff(
    *, session: AsyncSession, conversation_id: str, user_id: str
) -> tuple[Conversation, ConversationHandoff]:
    """`conversations.get_owned` and `handoff_of` in one query (the gateway's first read of every message)."""
    row = (
        await session.execute(
            select(Conversation, ConversationHandoff)
            .outerjoin(ConversationHandoff, ConversationHandoff.conversation_id == Conversation.id)
            .where(Conversation.id == conversation_id)
        )
    ).first()
    if row is None or row[0].user_id != user_id:
        raise ConversationNotFound(conversation_id)
    conversation, bookkeeping = row
    if bookkeeping is None:
        bookkeeping = start_bookkeeping(session=session, conversation_id=conversation.id)
    return conversation, bookkeeping


def start_bookkeeping(*, session: AsyncSession, conversation_id: str) -> ConversationHandoff:
    """The bookkeeping row of a conversation created in this transaction (no query needed)."""
    row = ConversationHandoff(conversation_id=conversation_id, fallback_streak=0)
    session.add(row)
    return row


# --- triggers ------------------------------------------------------------------------


async def request_human(
    *, session: AsyncSession, conversation: Conversation, reason: str, actor: str
) -> HandoffTransition | None:
    """Hand `conversation` to a human from its next message on (bot → pending_human).

    Returns None when a human already has it. The bot is paused after the caller
    commits (`TrackerSync.apply`); the pending pause is recorded here so it survives
    the bot being down.
    """
    if conversation.handoff_state is not HandoffState.bot:
        return None
    handoff = await handoff_of(session=session, conversation_id=conversation.id)
    try:
        row = await transition(
            session=session, conversation=conversation, to_state=HandoffState.pending_human, actor=actor, reason=reason
        )
    except HandoffConflict:
        return None  # handed off concurrently (e.g. by the feedback endpoint): nothing left to do
    handoff.reason = reason
    handoff.requested_at = row.created_at
    handoff.claimed_by = None
    handoff.claimed_at = None
    handoff.fallback_streak = 0
    handoff.bot_sync = BotSync.pause
    return row


def requested_reason(turn: BotTurn) -> str | None:
    """The handoff reason if the bot asked for a human in this turn (the bot contract's reasons only)."""
    if turn.handoff_reason is None:
        return None
    reason = turn.handoff_reason or HandoffReason.customer_request.value
    return reason if reason in REQUEST_REASONS else HandoffReason.workflow.value


def lowest_rating_given(turn: BotTurn) -> bool:
    """Whether a `feedback.received` outcome in this turn carries the lowest rating."""
    return any(w.type == "feedback.received" and w.rating == LOWEST_RATING for w in turn.workflows)


async def _count_fallbacks(session: AsyncSession, conversation: Conversation, turn: BotTurn) -> int:
    if turn.intent == FALLBACK_INTENT:
        handoff = await handoff_of(session=session, conversation_id=conversation.id)
        handoff.fallback_streak += 1
        return handoff.fallback_streak
    row = await session.get(ConversationHandoff, conversation.id)
    if row is not None and row.fallback_streak:
        row.fallback_streak = 0
    return 0


async def after_bot_turn(
    *, session: AsyncSession, conversation: Conversation, turn: BotTurn
) -> HandoffTransition | None:
    """Apply the handoff triggers of one bot turn; the turn's reply stays the bot's.

    Triggers: the bot set `handoff_requested` (customer asked, or a workflow did);
    two `nlu_fallback` turns in a row; a `feedback.received` rating of 1.
    """
    streak = await _count_fallbacks(session, conversation, turn)
    reason = requested_reason(turn)
    if reason is None and lowest_rating_given(turn):
        reason = HandoffReason.low_rating.value
    if reason is None and streak >= FALLBACKS_BEFORE_HANDOFF:
        reason = HandoffReason.repeated_fallback.value
    if reason is None:
        return None
    actor = BOT_ACTOR if reason != HandoffReason.repeated_fallback else "gateway"
    return await request_human(session=session, conversation=conversation, reason=reason, actor=actor)


# --- CSR verbs -----------------------------------------------------------------------


async def _load(session: AsyncSession, conversation_id: str) -> tuple[Conversation, ConversationHandoff]:
    conversation = await conversations.get(session=session, conversation_id=conversation_id)
    if conversation is None:
        raise ConversationNotFound(conversation_id)
    return conversation, await handoff_of(session=session, conversation_id=conversation_id)


def _claimed_by_other(handoff: ConversationHandoff, csr: Principal) -> bool:
    return handoff.claimed_by is not None and handoff.claimed_by != csr.user_id and csr.role is not Role.admin


async def claim(*, session: AsyncSession, conversation_id: str, csr: Principal) -> Conversation:
    """Assign a waiting conversation to `csr` (pending_human → with_human); claiming it again is a no-op."""
    conversation, handoff = await _load(session, conversation_id)
    if conversation.handoff_state is HandoffState.with_human:
        if handoff.claimed_by == csr.user_id:
            return conversation
        raise HandoffConflict(
            f"conversation {conversation_id!r} is already claimed by {handoff.claimed_by}",
            conversation_id=conversation_id,
            claimed_by=handoff.claimed_by,
        )
    if conversation.handoff_state is not HandoffState.pending_human:
        raise HandoffConflict(
            f"conversation {conversation_id!r} is not waiting for a human (state {conversation.handoff_state.value})",
            conversation_id=conversation_id,
            handoff_state=conversation.handoff_state.value,
        )
    try:
        row = await transition(
            session=session,
            conversation=conversation,
            to_state=HandoffState.with_human,
            actor=csr.user_id,
            reason=HandoffReason.claimed,
        )
    except HandoffConflict as exc:
        raise HandoffConflict(
            f"conversation {conversation_id!r} was just claimed by someone else", conversation_id=conversation_id
        ) from exc
    handoff.claimed_by = csr.user_id
    handoff.claimed_at = row.created_at
    return conversation


async def replyable(*, session: AsyncSession, conversation_id: str, csr: Principal) -> Conversation:
    """The conversation `csr` may reply to: with a human, claimed by them (or they are an admin); else 409."""
    conversation, handoff = await _load(session, conversation_id)
    if conversation.handoff_state is not HandoffState.with_human:
        hint = "claim it first" if conversation.handoff_state is HandoffState.pending_human else "it is with the bot"
        raise HandoffConflict(
            f"conversation {conversation_id!r} is {conversation.handoff_state.value}; {hint}",
            conversation_id=conversation_id,
            handoff_state=conversation.handoff_state.value,
        )
    if _claimed_by_other(handoff, csr):
        raise HandoffConflict(
            f"conversation {conversation_id!r} is claimed by {handoff.claimed_by}",
            conversation_id=conversation_id,
            claimed_by=handoff.claimed_by,
        )
    return conversation


async def reply(
    *, session: AsyncSession, conversation_id: str, csr: Principal, text: str
) -> tuple[Conversation, Message]:
    """Store a CSR's reply (sender `csr`); the caller delivers it after committing."""
    conversation = await replyable(session=session, conversation_id=conversation_id, csr=csr)
    handoff = await handoff_of(session=session, conversation_id=conversation_id)
    await observe_csr_reply(session, conversation=conversation, requested_at=handoff.requested_at, replied_at=utcnow())
    message = await conversations.append_message(
        session=session, conversation=conversation, sender=Sender.csr, text=text, payload={"agent": csr.user_id}
    )
    log.info("csr replied conversation_id=%s csr=%s message_id=%s", conversation_id, csr.user_id, message.id)
    return conversation, message


async def template_sendable(*, session: AsyncSession, conversation_id: str, csr: Principal) -> Conversation:
    """The conversation `csr` may send a template to: any state, unless another CSR has claimed it (409).

    A template is how a business starts over with a customer whose window closed, so the
    conversation need not be handed off first; the customer's answer goes to whoever has it.
    """
    conversation, handoff = await _load(session, conversation_id)
    if conversation.handoff_state is HandoffState.with_human and _claimed_by_other(handoff, csr):
        raise HandoffConflict(
            f"conversation {conversation_id!r} is claimed by {handoff.claimed_by}",
            conversation_id=conversation_id,
            claimed_by=handoff.claimed_by,
        )
    return conversation


async def send_template(
    *, session: AsyncSession, conversation: Conversation, csr: Principal, text: str, payload: dict[str, Any]
) -> Message:
    """Store a template a CSR sends (sender `csr`, the template in the payload); the caller delivers it."""
    message = await conversations.append_message(
        session=session,
        conversation=conversation,
        sender=Sender.csr,
        text=text,
        payload={"agent": csr.user_id, **payload},
    )
    log.info(
        "csr sent a template conversation_id=%s csr=%s message_id=%s template=%s",
        conversation.id,
        csr.user_id,
        message.id,
        payload.get("template", {}).get("name"),
    )
    return message


async def return_to_bot(
    *,
    session: AsyncSession,
    conversation: Conversation,
    actor: str,
    reason: str,
    note: str | None = None,
) -> HandoffTransition:
    """pending_human/with_human → bot; the bot is resumed after the caller commits (`TrackerSync.apply`)."""
    handoff = await handoff_of(session=session, conversation_id=conversation.id)
    row = await transition(
        session=session, conversation=conversation, to_state=HandoffState.bot, actor=actor, reason=reason, note=note
    )
    handoff.reason = None
    handoff.requested_at = None
    handoff.claimed_by = None
    handoff.claimed_at = None
    handoff.fallback_streak = 0
    handoff.bot_sync = BotSync.resume
    return row


async def resolve(
    *, session: AsyncSession, conversation_id: str, csr: Principal, note: str | None = None
) -> Conversation:
    """Give the conversation back to the bot. A CSR resolves its own or an unclaimed one; an admin any."""
    conversation, handoff = await _load(session, conversation_id)
    if conversation.handoff_state not in HUMAN_STATES:
        raise HandoffConflict(
            f"conversation {conversation_id!r} is already with the bot",
            conversation_id=conversation_id,
            handoff_state=conversation.handoff_state.value,
        )
    if conversation.handoff_state is HandoffState.with_human and _claimed_by_other(handoff, csr):
        raise HandoffConflict(
            f"conversation {conversation_id!r} is claimed by {handoff.claimed_by}",
            conversation_id=conversation_id,
            claimed_by=handoff.claimed_by,
        )
    await return_to_bot(
        session=session, conversation=conversation, actor=csr.user_id, reason=HandoffReason.resolved, note=note
    )
    return conversation


# --- timeouts ------------------------------------------------------------------------


async def unclaimed_before(*, session: AsyncSession, cutoff: datetime, limit: int = 100) -> list[str]:
    """Conversations waiting for a CSR since before `cutoff`, oldest first."""
    query = (
        select(Conversation.id)
        .join(ConversationHandoff, ConversationHandoff.conversation_id == Conversation.id)
        .where(Conversation.handoff_state == HandoffState.pending_human, ConversationHandoff.requested_at < cutoff)
        .order_by(ConversationHandoff.requested_at)
        .limit(limit)
    )
    return list((await session.scalars(query)).all())


async def idle_before(*, session: AsyncSession, cutoff: datetime, limit: int = 100) -> list[str]:
    """Claimed conversations with no message and no claim since `cutoff`."""
    query = (
        select(Conversation.id)
        .join(ConversationHandoff, ConversationHandoff.conversation_id == Conversation.id)
        .where(
            Conversation.handoff_state == HandoffState.with_human,
            Conversation.updated_at < cutoff,
            ConversationHandoff.claimed_at < cutoff,
        )
        .order_by(Conversation.updated_at)
        .limit(limit)
    )
    return list((await session.scalars(query)).all())


def _before(moment: datetime | None, cutoff: datetime) -> bool:
    if moment is None:
        return False
    # SQLite hands back naive datetimes; everything is stored in UTC.
    return moment.replace(tzinfo=cutoff.tzinfo) < cutoff if moment.tzinfo is None else moment < cutoff


async def time_out(
    *, session: AsyncSession, conversation_id: str, reason: HandoffReason, cutoff: datetime
) -> tuple[Conversation, Message] | None:
    """Return a timed-out conversation to the bot and tell the customer; None if it no longer qualifies."""
    conversation, handoff = await _load(session, conversation_id)
    if reason is HandoffReason.unclaimed_timeout:
        due = conversation.handoff_state is HandoffState.pending_human and _before(handoff.requested_at, cutoff)
        text = UNCLAIMED_TEXT
    else:
        due = (
            conversation.handoff_state is HandoffState.with_human
            and _before(conversation.updated_at, cutoff)
            and _before(handoff.claimed_at, cutoff)
        )
        text = IDLE_TEXT
    if not due:
        return None
    await return_to_bot(session=session, conversation=conversation, actor=SYSTEM_ACTOR, reason=reason)
    message = await conversations.append_message(
        session=session, conversation=conversation, sender=Sender.bot, text=text
    )
    return conversation, message


# --- reading -------------------------------------------------------------------------


@dataclass(slots=True)
class Understanding:
    """What NLU saw in a conversation's customer messages: the CSR's transcript summary."""

    intents: list[str] = field(default_factory=list)
    entities: list[dict[str, Any]] = field(default_factory=list)

    def add(self, intent: str | None, entities: list[dict[str, Any]] | None) -> None:
        if intent and intent not in self.intents:
            self.intents.append(intent)
        for entity in entities or []:
            pair = {"entity": entity.get("entity"), "value": entity.get("value")}
            if pair not in self.entities:
                self.entities.append(pair)


@dataclass(slots=True)
class QueueEntry:
    conversation: Conversation
    handoff: ConversationHandoff
    last_message: Message | None
    understanding: Understanding
    message_count: int


async def queue(
    *, session: AsyncSession, states: Sequence[HandoffState], claimed_by: str | None = None, limit: int = 100
) -> list[QueueEntry]:
    """Handed-off conversations in `states`, longest waiting first, with what the CSR needs to pick one."""
    query = (
        select(Conversation, ConversationHandoff)
        .join(ConversationHandoff, ConversationHandoff.conversation_id == Conversation.id)
        .where(Conversation.handoff_state.in_(list(states)))
        .order_by(ConversationHandoff.requested_at, Conversation.id)
        .limit(limit)
    )
    if claimed_by is not None:
        query = query.where(ConversationHandoff.claimed_by == claimed_by)
    rows = (await session.execute(query)).all()
    ids = [conversation.id for conversation, _ in rows]
    if not ids:
        return []
    last_ids = select(func.max(Message.id)).where(Message.conversation_id.in_(ids)).group_by(Message.conversation_id)
    last = {m.conversation_id: m for m in (await session.scalars(select(Message).where(Message.id.in_(last_ids))))}
    counts = dict(
        (
            await session.execute(
                select(Message.conversation_id, func.count(Message.id))
                .where(Message.conversation_id.in_(ids))
                .group_by(Message.conversation_id)
            )
        ).all()
    )
    understood: dict[str, Understanding] = {cid: Understanding() for cid in ids}
    seen = await session.execute(
        select(Message.conversation_id, Message.intent, Message.entities)
        .where(Message.conversation_id.in_(ids), Message.sender == Sender.user, Message.intent.is_not(None))
        .order_by(Message.id)
    )
    for cid, intent, entities in seen.all():
        understood[cid].add(intent, entities)
    return [
        QueueEntry(
            conversation=conversation,
            handoff=handoff,
            last_message=last.get(conversation.id),
            understanding=understood[conversation.id],
            message_count=int(counts.get(conversation.id, 0)),
        )
        for conversation, handoff in rows
    ]


@dataclass(slots=True)
class Transcript:
    conversation: Conversation
    handoff: ConversationHandoff | None
    messages: Sequence[Message]
    transitions: Sequence[HandoffTransition]
    understanding: Understanding


async def transcript(*, session: AsyncSession, conversation_id: str, limit: int = 1000) -> Transcript:
    """The conversation with its latest `limit` messages (oldest first), intents and state history."""
    conversation = await conversations.get(session=session, conversation_id=conversation_id)
    if conversation is None:
        raise ConversationNotFound(conversation_id)
    messages, _ = await conversations.history(session=session, conversation_id=conversation_id, limit=limit)
    transitions = (
        await session.scalars(
            select(HandoffTransition)
            .where(HandoffTransition.conversation_id == conversation_id)
            .order_by(HandoffTransition.id)
        )
    ).all()
    understanding = Understanding()
    for message in messages:
        if message.sender is Sender.user:
            understanding.add(message.intent, message.entities)
    return Transcript(
        conversation=conversation,
        handoff=await session.get(ConversationHandoff, conversation_id),
        messages=messages,
        transitions=transitions,
        understanding=understanding,
    )
