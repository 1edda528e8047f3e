"""Service verbs of the conversation review. Callers own the transaction.

The queue is read from the conversation tables when asked for: a customer message
needs review when it meets one of the `Reason`s and has no standing annotation.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import CompoundSelect, Select, and_, exists, func, literal, select, union_all
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from conversation_api.conversations.models import Conversation, HandoffState, Message, Sender
from conversation_api.db import utcnow
from conversation_api.errors import ApiError, Conflict
from conversation_api.feedback.models import Feedback
from conversation_api.handoff.models import HandoffTransition
from conversation_api.review.models import Decision, Reason, ReviewAnnotation, ReviewDecision, ReviewFlag

log = logging.getLogger(__name__)

FALLBACK_INTENT = "nlu_fallback"
OUT_OF_SCOPE_INTENT = "out_of_scope"
LOW_RATINGS = 2  # a conversation rated this or lower puts its customer messages in review


class MessageNotFound(ApiError):
    status_code = 404
    code = "message_not_found"

    def __init__(self, message_id: int) -> None:
        super().__init__(f"message {message_id} not found", message_id=message_id)


class NotACustomerMessage(ApiError):
    status_code = 422
    code = "not_a_customer_message"

    def __init__(self, message_id: int, sender: str) -> None:
        super().__init__(
            f"message {message_id} was sent by the {sender}; only customer messages are reviewed",
            message_id=message_id,
        )


class AlreadyReviewed(Conflict):
    code = "already_reviewed"


class NotReviewed(Conflict):
    code = "not_reviewed"


@dataclass(frozen=True, slots=True)
class Criteria:
    """What makes a customer message need review (from the settings)."""

    confidence_threshold: float
    turns_before_handoff: int


@dataclass(frozen=True, slots=True)
class QueueFilter:
    reasons: Sequence[Reason] = ()
    intent: str | None = None
    start: datetime | None = None
    end: datetime | None = None
    reviewed: bool = False  # False: the open queue; True: what has been reviewed


# --- which messages need review ------------------------------------------------------


def _customer() -> Any:
    return Message.sender == Sender.user


def _reason(reason: Reason) -> Any:
    return literal(reason.value).label("reason")


def candidates(criteria: Criteria) -> CompoundSelect[Any]:
    """(message_id, reason) for every customer message that meets a criterion; a message may repeat."""
    parts: list[Select[Any]] = [
        select(Message.id.label("message_id"), _reason(Reason.low_confidence)).where(
            _customer(),
            Message.confidence < criteria.confidence_threshold,
            Message.intent.is_not(None),
            Message.intent != FALLBACK_INTENT,
        ),
        select(Message.id.label("message_id"), _reason(Reason.nlu_fallback)).where(
            _customer(), Message.intent == FALLBACK_INTENT
        ),
        select(Message.id.label("message_id"), _reason(Reason.out_of_scope)).where(
            _customer(), Message.intent == OUT_OF_SCOPE_INTENT
        ),
        # The messages of conversations rated 1-2 that the bot read (not those written to a CSR).
        select(Message.id.label("message_id"), _reason(Reason.low_rating))
        .join(Feedback, Feedback.conversation_id == Message.conversation_id)
        .where(_customer(), Message.turn_state.is_not(None), Feedback.rating <= LOW_RATINGS),
        select(ReviewFlag.message_id.label("message_id"), _reason(Reason.flagged)),
    ]
    if criteria.turns_before_handoff > 0:
        # For each handoff, the last N customer messages the bot was given before it: the turn that
        # asked for a human, or the ones it kept failing on.
        ranked = (
            select(
                Message.id.label("message_id"),
                func.row_number().over(partition_by=HandoffTransition.id, order_by=Message.id.desc()).label("position"),
            )
            .join(
                HandoffTransition,
                and_(
                    HandoffTransition.conversation_id == Message.conversation_id,
                    Message.created_at <= HandoffTransition.created_at,
                ),
            )
            .where(
                _customer(),
                Message.turn_state.is_not(None),
                HandoffTransition.to_state == HandoffState.pending_human,
            )
            .subquery()
        )
        parts.append(
            select(ranked.c.message_id, _reason(Reason.before_handoff)).where(
                ranked.c.position <= criteria.turns_before_handoff
            )
        )
    return union_all(*parts)


def _matching(criteria: Criteria, wanted: QueueFilter) -> Select[Any]:
    """Ids of the customer messages in the queue (or reviewed, with `wanted.reviewed`) matching the filter."""
    found = candidates(criteria).subquery("found")
    ids = select(found.c.message_id)
    if wanted.reasons:
        ids = ids.where(found.c.reason.in_([r.value for r in wanted.reasons]))
    query = select(Message.id).where(Message.id.in_(ids))
    annotated = exists().where(ReviewAnnotation.message_id == Message.id)
    query = query.where(annotated if wanted.reviewed else ~annotated)
    if wanted.intent is not None:
        query = query.where(Message.intent == wanted.intent)
    if wanted.start is not None:
        query = query.where(Message.created_at >= wanted.start)
    if wanted.end is not None:
        query = query.where(Message.created_at < wanted.end)
    return query


async def reasons_of(*, session: AsyncSession, criteria: Criteria, message_ids: Sequence[int]) -> dict[int, list[str]]:
    if not message_ids:
        return {}
    found = candidates(criteria).subquery("found")
    rows = await session.execute(select(found.c.message_id, found.c.reason).where(found.c.message_id.in_(message_ids)))
    reasons: dict[int, list[str]] = defaultdict(list)
    for message_id, reason in rows.all():
        if reason not in reasons[message_id]:
            reasons[message_id].append(reason)
    order = [r.value for r in Reason]
    return {mid: sorted(found_reasons, key=order.index) for mid, found_reasons in reasons.items()}


# --- reading ---------------------------------------------------------------------------


@dataclass(slots=True)
class Item:
    message: Message
    conversation: Conversation
    reasons: list[str]
    before: list[Message] = field(default_factory=list)
    after: list[Message] = field(default_factory=list)
    flag: ReviewFlag | None = None
    annotation: ReviewAnnotation | None = None


@dataclass(slots=True)
class Page:
    items: list[Item]
    total: int
    next_before: int | None


async def _context(session: AsyncSession, message: Message, turns: int) -> tuple[list[Message], list[Message]]:
    if turns <= 0:
        return [], []
    same = Message.conversation_id == message.conversation_id
    before = (
        await session.scalars(
            select(Message).where(same, Message.id < message.id).order_by(Message.id.desc()).limit(turns)
        )
    ).all()
    after = (
        await session.scalars(select(Message).where(same, Message.id > message.id).order_by(Message.id).limit(turns))
    ).all()
    return list(reversed(before)), list(after)


async def _items(
    session: AsyncSession, criteria: Criteria, messages: Sequence[Message], context_turns: int
) -> list[Item]:
    ids = [m.id for m in messages]
    reasons = await reasons_of(session=session, criteria=criteria, message_ids=ids)
    conversations = {
        c.id: c
        for c in await session.scalars(
            select(Conversation).where(Conversation.id.in_({m.conversation_id for m in messages}))
        )
    }
    flags = {f.message_id: f for f in await session.scalars(select(ReviewFlag).where(ReviewFlag.message_id.in_(ids)))}
    annotations = {
        a.message_id: a
        for a in await session.scalars(select(ReviewAnnotation).where(ReviewAnnotation.message_id.in_(ids)))
    }
    items = []
    for message in messages:
        before, after = await _context(session, message, context_turns)
        items.append(
            Item(
                message=message,
                conversation=conversations[message.conversation_id],
                reasons=reasons.get(message.id, []),
                before=before,
                after=after,
                flag=flags.get(message.id),
                annotation=annotations.get(message.id),
            )
        )
    return items


async def queue(
    *,
    session: AsyncSession,
    criteria: Criteria,
    wanted: QueueFilter,
    limit: int,
    before: int | None = None,
    context_turns: int = 3,
) -> Page:
    """A page of the queue, newest message first; `before` (a message id) pages back."""
    matching = _matching(criteria, wanted)
    total = int(await session.scalar(select(func.count()).select_from(matching.subquery())) or 0)
    page = select(Message).where(Message.id.in_(matching))
    if before is not None:
        page = page.where(Message.id < before)
    rows = list((await session.scalars(page.order_by(Message.id.desc()).limit(limit + 1))).all())
    more = len(rows) > limit
    rows = rows[:limit]
    return Page(
        items=await _items(session, criteria, rows, context_turns),
        total=total,
        next_before=rows[-1].id if more and rows else None,
    )


async def backlog(*, session: AsyncSession, criteria: Criteria) -> int:
    """How many customer messages wait for review."""
    matching = _matching(criteria, QueueFilter())
    return int(await session.scalar(select(func.count()).select_from(matching.subquery())) or 0)


async def needing_review(
    *, session: AsyncSession, criteria: Criteria, start: datetime, end: datetime
) -> dict[str, Any]:
    """Customer messages of [start, end) and how many of them met a review criterion (reviewed or not)."""
    in_period = and_(_customer(), Message.created_at >= start, Message.created_at < end)
    customer = int(await session.scalar(select(func.count()).where(in_period)) or 0)
    found = candidates(criteria).subquery("found")
    flagged = int(
        await session.scalar(select(func.count()).where(in_period, Message.id.in_(select(found.c.message_id)))) or 0
    )
    return {
        "customer_messages": customer,
        "needing_review": flagged,
        "share": round(flagged / customer, 4) if customer else None,
    }


async def customer_message(*, session: AsyncSession, message_id: int) -> Message:
    message = await session.get(Message, message_id)
    if message is None:
        raise MessageNotFound(message_id)
    if message.sender is not Sender.user:
        raise NotACustomerMessage(message_id, message.sender.value)
    return message


async def item(*, session: AsyncSession, criteria: Criteria, message_id: int, context_turns: int = 3) -> Item:
    """One customer message as a review item (whether or not it is in the queue)."""
    message = await customer_message(session=session, message_id=message_id)
    return (await _items(session, criteria, [message], context_turns))[0]


async def conversation_of(*, session: AsyncSession, message_id: int) -> str:
    """The conversation a customer message belongs to (to take its unit of work before writing)."""
    return (await customer_message(session=session, message_id=message_id)).conversation_id


# --- writing -------------------------------------------------------------------------


async def flag(*, session: AsyncSession, message_id: int, actor: str, note: str | None) -> tuple[ReviewFlag, bool]:
    """Flag a customer message for review; flagging it again keeps the first flag. Returns (flag, created)."""
    message = await customer_message(session=session, message_id=message_id)
    existing = await session.get(ReviewFlag, message_id)
    if existing is not None:
        return existing, False
    row = ReviewFlag(
        message_id=message.id, conversation_id=message.conversation_id, flagged_by=actor, note=note, created_at=utcnow()
    )
    session.add(row)
    await session.flush()
    log.info("review flag conversation_id=%s message_id=%s actor=%s", message.conversation_id, message.id, actor)
    return row, True


def _same_entities(predicted: list[dict[str, Any]] | None, given: list[dict[str, Any]]) -> bool:
    def spans(entities: list[dict[str, Any]]) -> set[tuple[Any, Any, Any]]:
        return {(e.get("start"), e.get("end"), e.get("entity")) for e in entities}

    return spans(predicted or []) == spans(given)


async def decide(
    *,
    session: AsyncSession,
    message: Message,
    actor: str,
    intent: str | None,
    entities: list[dict[str, Any]] | None,
    note: str | None,
) -> ReviewAnnotation:
    """Record the decision on a customer message: annotated (confirmed or corrected) or ignored (`intent` None).

    A message has one standing decision: AlreadyReviewed if it has one (reopen it first).
    """
    if intent is None:
        decision = Decision.ignored
    elif intent == message.intent and _same_entities(message.entities, entities or []):
        decision = Decision.confirmed
    else:
        decision = Decision.corrected
    existing = await session.get(ReviewAnnotation, message.id)
    if existing is not None:
        raise _already(existing)
    now = utcnow()
    annotation = ReviewAnnotation(
        message_id=message.id,
        conversation_id=message.conversation_id,
        decision=decision,
        intent=intent,
        entities=entities if intent is not None else None,
        predicted_intent=message.intent,
        note=note,
        reviewed_by=actor,
        reviewed_at=now,
    )
    try:
        if session.get_bind().dialect.name == "sqlite":
            session.add(annotation)
            await session.flush()
        else:
            async with session.begin_nested():  # a concurrent reviewer's row wins; ours is a 409
                session.add(annotation)
                await session.flush()
    except IntegrityError as exc:
        raise AlreadyReviewed(
            f"message {message.id} was just reviewed by someone else; reopen it to review it again",
            message_id=message.id,
        ) from exc
    session.add(_logged(annotation, actor=actor, at=now))
    log.info(
        "review decision conversation_id=%s message_id=%s decision=%s intent=%s actor=%s",
        message.conversation_id,
        message.id,
        decision.value,
        intent,
        actor,
    )
    return annotation


def _already(existing: ReviewAnnotation) -> AlreadyReviewed:
    return AlreadyReviewed(
        f"message {existing.message_id} was already reviewed ({existing.decision.value}) by {existing.reviewed_by}; "
        "reopen it to review it again",
        message_id=existing.message_id,
        decision=existing.decision.value,
        reviewed_by=existing.reviewed_by,
    )


def _logged(annotation: ReviewAnnotation, *, actor: str, at: datetime) -> ReviewDecision:
    return ReviewDecision(
        message_id=annotation.message_id,
        conversation_id=annotation.conversation_id,
        decision=annotation.decision,
        intent=annotation.intent,
        entities=annotation.entities,
        predicted_intent=annotation.predicted_intent,
        note=annotation.note,
        actor=actor,
        created_at=at,
    )


async def reopen(*, session: AsyncSession, message: Message, actor: str, note: str | None) -> None:
    """Put a reviewed message back in the queue; its earlier decisions stay in the log."""
    existing = await session.get(ReviewAnnotation, message.id)
    if existing is None:
        raise NotReviewed(f"message {message.id} has not been reviewed; nothing to reopen", message_id=message.id)
    await session.delete(existing)
    session.add(
        ReviewDecision(
            message_id=message.id,
            conversation_id=message.conversation_id,
            decision=Decision.reopened,
            predicted_intent=message.intent,
            note=note,
            actor=actor,
            created_at=utcnow(),
        )
    )
    log.info("review reopened conversation_id=%s message_id=%s actor=%s", message.conversation_id, message.id, actor)


async def decisions(*, session: AsyncSession, message_id: int) -> Sequence[ReviewDecision]:
    query = select(ReviewDecision).where(ReviewDecision.message_id == message_id).order_by(ReviewDecision.id)
    return (await session.scalars(query)).all()


async def annotated(*, session: AsyncSession) -> Sequence[tuple[ReviewAnnotation, Message]]:
    """Every confirmed or corrected message with its text, oldest decision first (what the export writes)."""
    rows = await session.execute(
        select(ReviewAnnotation, Message)
        .join(Message, Message.id == ReviewAnnotation.message_id)
        .where(ReviewAnnotation.decision.in_([Decision.confirmed, Decision.corrected]))
        .order_by(ReviewAnnotation.reviewed_at, ReviewAnnotation.message_id)
    )
    return [(a, m) for a, m in rows.all()]
