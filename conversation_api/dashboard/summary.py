"""The seed's figures for a period, computed from the database (GET /api/v1/metrics/summary)."""

from __future__ import annotations

from collections import defaultdict
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, Float, and_, cast, distinct, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from conversation_api.conversations.models import Message, Sender
from conversation_api.events.envelope import WORKFLOW_EVENT_TYPES, EventType
from conversation_api.events.outbox import OutboxEvent
from conversation_api.feedback.models import Feedback
from conversation_api.metrics.sessions import ConversationSession
from conversation_api.review import service as review

REPLY_MARGIN = timedelta(hours=1)


def seconds_between(dialect: str, start: Any, end: Any) -> ColumnElement[float]:
    """`end - start` in seconds, on PostgreSQL and SQLite."""
    if dialect == "sqlite":
        return cast((func.julianday(end) - func.julianday(start)) * 86400.0, Float)
    return cast(func.extract("epoch", end - start), Float)


def _rate(part: int, whole: int) -> float | None:
    return round(part / whole, 4) if whole else None


def _avg(value: float | None) -> float | None:
    return round(float(value), 3) if value is not None else None


async def messages(session: AsyncSession, start: datetime, end: datetime) -> dict[str, Any]:
    in_period = and_(Message.created_at >= start, Message.created_at < end)
    rows = (
        await session.execute(
            select(Message.sender, Message.channel, func.count())
            .where(in_period)
            .group_by(Message.sender, Message.channel)
        )
    ).all()
    by_sender: dict[str, int] = defaultdict(int)
    by_channel: dict[str, int] = defaultdict(int)
    for sender, channel, count in rows:
        by_sender[str(sender)] += count
        by_channel[channel] += count
    conversations = await session.scalar(select(func.count(distinct(Message.conversation_id))).where(in_period))
    return {
        "total": sum(by_sender.values()),
        "by_sender": {s.value: by_sender.get(s.value, 0) for s in Sender},
        "by_channel": dict(by_channel),
        "conversations": int(conversations or 0),
    }


async def bot_response(session: AsyncSession, start: datetime, end: datetime, dialect: str) -> dict[str, Any]:
    """Each customer message directly followed (in its conversation) by a bot message."""
    ordered = (
        select(
            Message.sender,
            Message.created_at,
            func.lead(Message.sender)
            .over(partition_by=Message.conversation_id, order_by=Message.id)
            .label("next_sender"),
            func.lead(Message.created_at)
            .over(partition_by=Message.conversation_id, order_by=Message.id)
            .label("next_at"),
        )
        # A reply comes within seconds; the margin keeps replies to the period's last messages.
        .where(Message.created_at >= start, Message.created_at < end + REPLY_MARGIN)
        .subquery()
    )
    seconds = seconds_between(dialect, ordered.c.created_at, ordered.c.next_at)
    count, average = (
        await session.execute(
            select(func.count(), func.avg(seconds)).where(
                ordered.c.sender == Sender.user.value,
                ordered.c.next_sender == Sender.bot.value,
                ordered.c.created_at >= start,
                ordered.c.created_at < end,
            )
        )
    ).one()
    return {"replies": int(count or 0), "average_seconds": _avg(average)}


async def sessions(session: AsyncSession, start: datetime, end: datetime, dialect: str) -> dict[str, Any]:
    """Sessions that started in the period (those still open count up to their latest message)."""
    seconds = seconds_between(dialect, ConversationSession.started_at, ConversationSession.last_message_at)
    count, average, closed = (
        await session.execute(
            select(func.count(), func.avg(seconds), func.count(ConversationSession.ended_at)).where(
                ConversationSession.started_at >= start, ConversationSession.started_at < end
            )
        )
    ).one()
    return {"count": int(count or 0), "ended": int(closed or 0), "average_duration_seconds": _avg(average)}


async def workflows(session: AsyncSession, start: datetime, end: datetime) -> dict[str, Any]:
    """Outcomes the bot's actions reported, per workflow (feedback given through the API is not a workflow)."""
    rows = (
        await session.execute(
            select(OutboxEvent.payload).where(
                OutboxEvent.type.in_([str(t) for t in WORKFLOW_EVENT_TYPES]),
                OutboxEvent.occurred_at >= start,
                OutboxEvent.occurred_at < end,
            )
        )
    ).scalars()
    counts: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    for payload in rows:
        if payload.get("source") == "api":
            continue
        counts[str(payload.get("workflow") or "other")][0 if payload.get("success") else 1] += 1
    return {
        workflow: {"succeeded": ok, "failed": failed, "success_rate": _rate(ok, ok + failed)}
        for workflow, (ok, failed) in sorted(counts.items())
    }


async def csat(session: AsyncSession, start: datetime, end: datetime) -> dict[str, Any]:
    rows = (
        await session.execute(
            select(Feedback.rating, func.count())
            .where(Feedback.created_at >= start, Feedback.created_at < end)
            .group_by(Feedback.rating)
        )
    ).all()
    distribution = {str(r): 0 for r in range(1, 6)}
    for rating, count in rows:
        distribution[str(rating)] = count
    total = sum(distribution.values())
    average = sum(int(r) * c for r, c in distribution.items()) / total if total else None
    satisfied = distribution["4"] + distribution["5"]
    return {
        "responses": total,
        "average_rating": _avg(average),
        "satisfied_share": _rate(satisfied, total),
        "distribution": distribution,
    }


async def events_by_conversation(session: AsyncSession, start: datetime, end: datetime, type: str) -> tuple[int, int]:
    """How many events of `type` in the period, and in how many conversations."""
    count, conversations = (
        await session.execute(
            select(func.count(), func.count(distinct(OutboxEvent.conversation_id))).where(
                OutboxEvent.type == type, OutboxEvent.occurred_at >= start, OutboxEvent.occurred_at < end
            )
        )
    ).one()
    return int(count or 0), int(conversations or 0)


async def summary(
    *, session: AsyncSession, start: datetime, end: datetime, review_criteria: review.Criteria
) -> dict[str, Any]:
    """Every figure of the summary for [start, end)."""
    dialect = session.get_bind().dialect.name
    message_figures = await messages(session, start, end)
    replies = await bot_response(session, start, end, dialect)
    _, handed_off = await events_by_conversation(session, start, end, EventType.handoff_requested.value)
    unanswered, _ = await events_by_conversation(session, start, end, EventType.bot_unavailable.value)
    answered = replies["replies"]
    return {
        "from": start,
        "to": end,
        "messages": message_figures,
        "sessions": await sessions(session, start, end, dialect),
        "bot_response": replies,
        "workflows": await workflows(session, start, end),
        "csat": await csat(session, start, end),
        "handoff": {
            "conversations": handed_off,
            "rate": _rate(handed_off, message_figures["conversations"]),
        },
        "errors": {
            "bot_unavailable": unanswered,
            "rate": _rate(unanswered, answered + unanswered),
        },
        "review": await review.needing_review(session=session, criteria=review_criteria, start=start, end=end),
    }
