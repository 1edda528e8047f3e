"""What the gateway records for a customer message and for a bot turn: events, feedback, metrics.

The bot adapter hands over each turn's outcomes typed (`BotTurn.workflows`,
`handoff_reason`); this module turns them into outbox events, feedback and metrics.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from conversation_api.bot import BotTurn
from conversation_api.conversations.models import Conversation, Message
from conversation_api.events.envelope import EventType
from conversation_api.events.outbox import OutboxEvent, new_event, record_event
from conversation_api.feedback import service as feedback
from conversation_api.metrics import instruments

log = logging.getLogger(__name__)


@dataclass(slots=True)
class TurnOutcome:
    workflows: list[tuple[str, bool]] = field(default_factory=list)
    rating: int | None = None


def user_message_event(*, conversation: Conversation, message: Message) -> dict[str, Any]:
    """The outbox row of `message.received`, for the transaction that stores the message."""
    _, row = new_event(
        type=EventType.message_received,
        conversation_id=conversation.id,
        user_id=conversation.user_id,
        channel=conversation.channel,
        payload={"message_id": message.id, "text": message.text, "external_id": message.external_id},
        occurred_at=message.created_at,
    )
    return row


def record_user_message(session: AsyncSession, *, conversation: Conversation, message: Message) -> None:
    """`message.received`, in the transaction that stores the message."""
    session.add(OutboxEvent(**user_message_event(conversation=conversation, message=message)))


@dataclass(slots=True)
class BotTurnRecord:
    """What a bot turn leaves behind: its outbox rows, its outcome and the ratings the bot collected."""

    events: list[dict[str, Any]] = field(default_factory=list)
    outcome: TurnOutcome = field(default_factory=TurnOutcome)
    ratings: list[tuple[int, str | None]] = field(default_factory=list)


def bot_turn_events(*, conversation: Conversation, message: Message, turn: BotTurn) -> BotTurnRecord:
    """intent.detected and each workflow event as outbox rows, in order, and the bot's feedback to store.

    `handoff.requested` is recorded by the handoff state change itself (handoff/events.py).
    """
    ids: dict[str, Any] = {
        "conversation_id": conversation.id,
        "user_id": conversation.user_id,
        "channel": conversation.channel,
    }
    record = BotTurnRecord()
    _, intent = new_event(
        type=EventType.intent_detected,
        payload={
            "message_id": message.id,
            "intent": turn.intent,
            "confidence": turn.confidence,
            "entities": turn.entities,
        },
        **ids,
    )
    record.events.append(intent)
    for outcome in turn.workflows:
        _, row = new_event(
            type=outcome.type,
            payload={"workflow": outcome.workflow, "success": outcome.success, "source": "bot", "data": outcome.data},
            **ids,
        )
        record.events.append(row)
        record.outcome.workflows.append((outcome.workflow, outcome.success))
        if outcome.type == EventType.feedback_received and outcome.success:
            if outcome.rating is None:
                log.warning("bot feedback without a 1-5 rating conversation_id=%s", conversation.id)
                continue
            comment = outcome.data.get("comment")
            record.ratings.append((outcome.rating, str(comment) if comment else None))
    return record


async def record_bot_feedback(session: AsyncSession, *, conversation: Conversation, record: BotTurnRecord) -> None:
    """Store the ratings the bot collected in this turn (the first one counts), in the reply's transaction."""
    for rating, comment in record.ratings:
        try:
            await feedback.record(
                session=session,
                conversation=conversation,
                rating=rating,
                comment=comment,
                source="bot",
                publish=False,
            )
            record.outcome.rating = rating
        except feedback.FeedbackAlreadyGiven:
            log.info("feedback already given; bot rating ignored conversation_id=%s", conversation.id)


async def record_bot_turn(
    session: AsyncSession, *, conversation: Conversation, message: Message, turn: BotTurn
) -> TurnOutcome:
    """Record intent.detected, each workflow event and the bot's feedback, in the reply's transaction.

    `handoff.requested` is recorded by the handoff state change itself (handoff/events.py).
    """
    record = bot_turn_events(conversation=conversation, message=message, turn=turn)
    session.add_all([OutboxEvent(**row) for row in record.events])
    await record_bot_feedback(session, conversation=conversation, record=record)
    return record.outcome


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
