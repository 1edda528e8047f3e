"""Recording feedback. Callers own the transaction."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from conversation_api.conversations.models import Conversation
from conversation_api.errors import Conflict
from conversation_api.events.envelope import EventType
from conversation_api.events.outbox import record_event
from conversation_api.feedback.models import Feedback


class FeedbackAlreadyGiven(Conflict):
    code = "feedback_already_given"

    def __init__(self, conversation_id: str) -> None:
        super().__init__(
            f"conversation {conversation_id!r} already has feedback; it is given once per conversation",
            conversation_id=conversation_id,
        )


async def get(*, session: AsyncSession, conversation_id: str) -> Feedback | None:
    result = await session.scalars(select(Feedback).where(Feedback.conversation_id == conversation_id))
    return result.first()


async def record(
    *,
    session: AsyncSession,
    conversation: Conversation,
    rating: int,
    comment: str | None,
    source: str,
    publish: bool = True,
) -> Feedback:
    """Store the conversation's one rating; FeedbackAlreadyGiven if it has one.

    With `publish`, a `feedback.received` event joins the same transaction (the
    bot's flow reports its own event through the turn's workflow events).
    """
    if await get(session=session, conversation_id=conversation.id) is not None:
        raise FeedbackAlreadyGiven(conversation.id)
    feedback = Feedback(
        conversation_id=conversation.id,
        user_id=conversation.user_id,
        channel=conversation.channel,
        rating=rating,
        comment=comment,
        source=source,
    )
    try:
        if session.get_bind().dialect.name == "sqlite":
            # pysqlite's SAVEPOINTs are unreliable; SQLite serialises writers, so the check above holds.
            session.add(feedback)
            await session.flush()
        else:
            async with session.begin_nested():  # a concurrent duplicate must not undo the caller's other writes
                session.add(feedback)
                await session.flush()
    except IntegrityError as exc:
        raise FeedbackAlreadyGiven(conversation.id) from exc
    if publish:
        record_event(
            session,
            type=EventType.feedback_received,
            conversation_id=conversation.id,
            user_id=conversation.user_id,
            channel=conversation.channel,
            payload={
                "workflow": "feedback",
                "success": True,
                "source": source,
                "data": {"rating": rating, "comment": comment},
            },
        )
    return feedback
