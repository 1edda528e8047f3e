"""What the gateway records for a customer message and for a bot turn: events, feedback, metrics.

The bot reports outcomes through slot events in its turn (the bot contract):
`handoff_requested`/`handoff_reason`, and `workflow_events`, a list of
`{"type", "workflow", "success", "data"}` that the actions fill in.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from conversation_api.bot import BotTurn
from conversation_api.conversations.models import Conversation, Message
from conversation_api.events.envelope import WORKFLOW_EVENT_TYPES, WORKFLOWS, EventType
from conversation_api.events.outbox import record_event
from conversation_api.feedback import service as feedback
from conversation_api.metrics import instruments

log = logging.getLogger(__name__)


@dataclass(slots=True)
class TurnOutcome:
    workflows: list[tuple[str, bool]] = field(default_factory=list)
    rating: int | None = None


def _slot_values(turn: BotTurn, name: str) -> list[Any]:
    return [e.get("value") for e in turn.events if e.get("event") == "slot" and e.get("name") == name]


def workflow_reports(turn: BotTurn) -> list[dict[str, Any]]:
    """The well-formed workflow outcomes the actions reported in this turn, in order."""
    reports: list[dict[str, Any]] = []
    for value in _slot_values(turn, "workflow_events"):
        for report in value if isinstance(value, list) else []:
            if not isinstance(report, dict) or report.get("type") not in WORKFLOW_EVENT_TYPES:
                log.warning("ignored malformed workflow event report=%r", report)
                continue
            data = report.get("data")
            reports.append(
                {
                    "type": report["type"],
                    "workflow": report.get("workflow") if report.get("workflow") in WORKFLOWS else "other",
                    "success": bool(report.get("success")),
                    "data": data if isinstance(data, dict) else {},
                }
            )
    return reports


def _rating(data: dict[str, Any]) -> int | None:
    """A whole 1-5 rating; entity values arrive as strings, so "4" counts too."""
    rating = data.get("rating")
    if isinstance(rating, str) and rating.strip().isdigit():
        rating = int(rating)
    if isinstance(rating, bool) or not isinstance(rating, int):
        return None
    return rating if 1 <= rating <= 5 else None


def record_user_message(session: AsyncSession, *, conversation: Conversation, message: Message) -> None:
    """`message.received`, in the transaction that stores the message."""
    record_event(
        session,
        type=EventType.message_received,
        conversation_id=conversation.id,
        user_id=conversation.user_id,
        channel=conversation.channel,
        payload={"message_id": message.id, "text": message.text, "external_id": message.external_id},
        occurred_at=message.created_at,
    )


async def record_bot_turn(
    session: AsyncSession, *, conversation: Conversation, message: Message, turn: BotTurn
) -> TurnOutcome:
    """Record intent.detected, each workflow event and the bot's feedback, in the reply's transaction.

    `handoff.requested` is recorded by the handoff state change itself (events/handoff.py).
    """
    ids: dict[str, Any] = {
        "conversation_id": conversation.id,
        "user_id": conversation.user_id,
        "channel": conversation.channel,
    }
    outcome = TurnOutcome()
    record_event(
        session,
        type=EventType.intent_detected,
        payload={
            "message_id": message.id,
            "intent": turn.intent,
            "confidence": turn.confidence,
            "entities": turn.entities,
        },
        **ids,
    )
    for report in workflow_reports(turn):
        record_event(
            session,
            type=report["type"],
            payload={
                "workflow": report["workflow"],
                "success": report["success"],
                "source": "bot",
                "data": report["data"],
            },
            **ids,
        )
        outcome.workflows.append((report["workflow"], report["success"]))
        if report["type"] == EventType.feedback_received and report["success"]:
            rating = _rating(report["data"])
            if rating is None:
                log.warning("bot feedback without a 1-5 rating conversation_id=%s", conversation.id)
                continue
            comment = report["data"].get("comment")
            try:
                await feedback.record(
                    session=session,
                    conversation=conversation,
                    rating=rating,
                    comment=str(comment) if comment else None,
                    source="bot",
                    publish=False,
                )
                outcome.rating = rating
            except feedback.FeedbackAlreadyGiven:
                log.info("feedback already given; bot rating ignored conversation_id=%s", conversation.id)
    return outcome


def observe_bot_turn(*, channel: str, turn: BotTurn, outcome: TurnOutcome, response_seconds: float) -> None:
    """Metrics of a committed bot turn."""
    instruments.BOT_RESPONSE.labels(channel).observe(response_seconds)
    instruments.INTENTS.labels(turn.intent or "none", channel).inc()
    for workflow, success in outcome.workflows:
        instruments.WORKFLOWS.labels(workflow, "success" if success else "failure").inc()
    if outcome.rating is not None:
        instruments.observe_feedback(rating=outcome.rating, channel=channel, source="bot")


async def record_bot_unavailable(
    session: AsyncSession, *, conversation: Conversation, message: Message, reason: str
) -> None:
    """`bot.unavailable`: the customer's message is stored but the bot could not answer it."""
    async with session.begin():
        record_event(
            session,
            type=EventType.bot_unavailable,
            conversation_id=conversation.id,
            user_id=conversation.user_id,
            channel=conversation.channel,
            payload={"message_id": message.id, "reason": reason},
        )
