"""Service verbs over conversations and messages. Callers own the transaction."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, cast

from sqlalchemy import Insert, Table, Update, UpdateBase, insert, select, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm.attributes import set_committed_value

from conversation_api.conversations.models import Channel, Conversation, Message, Sender, TurnState
from conversation_api.db import execute_together, utcnow
from conversation_api.errors import ConversationNotFound
from conversation_api.events.outbox import insert_events as outbox_rows
from conversation_api.metrics import sessions as activity


async def get(*, session: AsyncSession, conversation_id: str) -> Conversation | None:
    return await session.get(Conversation, conversation_id)


async def get_owned(*, session: AsyncSession, conversation_id: str, user_id: str) -> Conversation:
    """The conversation if it exists and belongs to `user_id`; otherwise ConversationNotFound.

    Another user's conversation is reported exactly like a missing one, so ids leak nothing.
    """
    conversation = await session.get(Conversation, conversation_id)
    if conversation is None or conversation.user_id != user_id:
        raise ConversationNotFound(conversation_id)
    return conversation


async def create(
    *, session: AsyncSession, user_id: str, channel: str = Channel.api.value, conversation_id: str | None = None
) -> Conversation:
    now = utcnow()
    conversation = Conversation(user_id=user_id, channel=channel, created_at=now, updated_at=now)
    if conversation_id:
        conversation.id = conversation_id
    session.add(conversation)
    await session.flush()
    return conversation


@dataclass(frozen=True, slots=True)
class NewMessage:
    text: str
    intent: str | None = None
    entities: list[dict[str, Any]] | None = None
    confidence: float | None = None
    payload: dict[str, Any] | None = None
    external_id: str | None = None


async def append_messages(
    *,
    session: AsyncSession,
    conversation: Conversation,
    sender: Sender,
    messages: Sequence[NewMessage],
    created_at: datetime | None = None,
) -> list[Message]:
    """Store several messages from one sender in one INSERT (the bot's replies to one turn)."""
    now = created_at or utcnow()
    rows = [
        Message(
            conversation_id=conversation.id,
            sender=sender,
            text=m.text,
            created_at=now,
            intent=m.intent,
            entities=m.entities,
            confidence=m.confidence,
            payload=m.payload,
            channel=conversation.channel,
            external_id=m.external_id,
        )
        for m in messages
    ]
    if not rows:
        return rows
    session.add_all(rows)
    conversation.updated_at = now
    await session.flush()
    await activity.message_stored(
        session=session,
        conversation_id=conversation.id,
        channel=conversation.channel,
        sender=str(sender),
        at=now,
        count=len(rows),
    )
    return rows


async def append_message(
    *,
    session: AsyncSession,
    conversation: Conversation,
    sender: Sender,
    text: str,
    intent: str | None = None,
    entities: list[dict[str, Any]] | None = None,
    confidence: float | None = None,
    payload: dict[str, Any] | None = None,
    external_id: str | None = None,
    created_at: datetime | None = None,
) -> Message:
    new = NewMessage(
        text=text, intent=intent, entities=entities, confidence=confidence, payload=payload, external_id=external_id
    )
    [message] = await append_messages(
        session=session, conversation=conversation, sender=sender, messages=[new], created_at=created_at
    )
    return message


# --- the gateway's hot path: Core statements, no unit of work -----------------------------
# The gateway writes every customer message and every bot turn; ORM flushes and one statement
# per table cost it more CPU than the rest of the request. These verbs store the same rows.


def _message_values(
    conversation: Conversation,
    sender: Sender,
    message: NewMessage,
    at: datetime,
    *,
    turn_state: TurnState | None = None,
    reply_to: int | None = None,
) -> dict[str, Any]:
    return {
        "conversation_id": conversation.id,
        "sender": sender,
        "text": message.text,
        "created_at": at,
        "intent": message.intent,
        "entities": message.entities,
        "confidence": message.confidence,
        "payload": message.payload,
        "channel": conversation.channel,
        "external_id": message.external_id,
        "turn_state": turn_state,
        "reply_to": reply_to,
    }


def _insert_messages(rows: list[dict[str, Any]]) -> Insert:
    # A one-row INSERT is compiled once and cached; a multi-row VALUES is compiled on every execution.
    return insert(cast(Table, Message.__table__)).values(rows[0] if len(rows) == 1 else rows)


def _touch(conversation: Conversation, at: datetime) -> Update:
    """conversation.updated_at = `at`, in the database and (without dirtying it) on the loaded object."""
    set_committed_value(conversation, "updated_at", at)
    table = cast(Table, Conversation.__table__)
    return update(table).where(table.c.id == conversation.id).values(updated_at=at)


async def add_message(
    *,
    session: AsyncSession,
    conversation: Conversation,
    sender: Sender,
    text: str,
    external_id: str | None = None,
    payload: dict[str, Any] | None = None,
    turn_state: TurnState | None = None,
    events: Callable[[Message], list[dict[str, Any]]] = lambda _message: [],
) -> Message:
    """`append_message` in two statements: the message (with the conversation's UPDATE alongside), then its
    session (with the outbox rows `events` builds from the stored message alongside).

    The returned Message is not in the session; reload it to change it.
    """
    now = utcnow()
    values = _message_values(
        conversation,
        sender,
        NewMessage(text=text, external_id=external_id, payload=payload),
        now,
        turn_state=turn_state,
    )
    table = cast(Table, Message.__table__)
    stored = await execute_together(
        session, _insert_messages([values]).returning(table.c.id), _touch(conversation, now)
    )
    message = Message(id=stored.scalar_one(), **values)
    await activity.message_stored(
        session=session,
        conversation_id=conversation.id,
        channel=conversation.channel,
        sender=str(sender),
        at=now,
        also=[outbox_rows(rows)] if (rows := events(message)) else [],
    )
    return message


async def add_bot_turn(
    *,
    session: AsyncSession,
    conversation: Conversation,
    message_id: int,
    intent: str | None,
    entities: list[dict[str, Any]],
    confidence: float | None,
    replies: Sequence[NewMessage],
    events: list[dict[str, Any]],
) -> None:
    """`record_understanding` and `append_messages` of the bot's replies, with the turn's outbox rows,
    in one statement on PostgreSQL."""
    table = cast(Table, Message.__table__)
    writes: list[UpdateBase] = [
        update(table)
        .where(table.c.id == message_id)
        .values(intent=intent, entities=entities, confidence=confidence, turn_state=TurnState.answered)
    ]
    if events:
        writes.append(outbox_rows(events))
    if not replies:
        await execute_together(session, writes[0], *writes[1:])
        return
    now = utcnow()
    writes.append(
        _insert_messages([_message_values(conversation, Sender.bot, m, now, reply_to=message_id) for m in replies])
    )
    writes.append(_touch(conversation, now))
    await activity.message_stored(
        session=session,
        conversation_id=conversation.id,
        channel=conversation.channel,
        sender=str(Sender.bot),
        at=now,
        count=len(replies),
        also=writes,
    )


async def find_external(*, session: AsyncSession, channel: str, external_id: str) -> Message | None:
    """The message a channel already stored under its own id (e.g. a WhatsApp wamid), if any."""
    return await session.scalar(select(Message).where(Message.channel == channel, Message.external_id == external_id))


async def replies_to(*, session: AsyncSession, message_id: int) -> Sequence[Message]:
    """The bot's stored replies to one customer message, in order."""
    return (await session.scalars(select(Message).where(Message.reply_to == message_id).order_by(Message.id))).all()


async def set_turn_state(*, session: AsyncSession, message_id: int, state: TurnState) -> None:
    await session.execute(update(Message).where(Message.id == message_id).values(turn_state=state))


async def pending_turns(
    *, session: AsyncSession, channel: str, stored_before: datetime, limit: int = 100
) -> Sequence[tuple[int, str]]:
    """(message id, conversation id) of customer messages still waiting for the bot, oldest first."""
    rows = await session.execute(
        select(Message.id, Message.conversation_id)
        .where(
            Message.turn_state == TurnState.pending,
            Message.channel == channel,
            Message.created_at < stored_before,
        )
        .order_by(Message.id)
        .limit(limit)
    )
    return [(row[0], row[1]) for row in rows]


async def answered_after(*, session: AsyncSession, conversation_id: str, message_id: int) -> bool:
    """Whether a later customer message of the conversation was answered by the bot."""
    found = await session.scalar(
        select(Message.id)
        .where(
            Message.conversation_id == conversation_id,
            Message.id > message_id,
            Message.turn_state == TurnState.answered,
        )
        .limit(1)
    )
    return found is not None


async def record_understanding(
    *,
    session: AsyncSession,
    message_id: int,
    intent: str | None,
    entities: list[dict[str, Any]],
    confidence: float | None,
) -> None:
    await session.execute(
        update(Message).where(Message.id == message_id).values(intent=intent, entities=entities, confidence=confidence)
    )


async def history(
    *, session: AsyncSession, conversation_id: str, limit: int, before: int | None = None
) -> tuple[Sequence[Message], bool]:
    """Up to `limit` messages older than `before` (a message id), oldest first, and whether more exist."""
    query = select(Message).where(Message.conversation_id == conversation_id)
    if before is not None:
        query = query.where(Message.id < before)
    rows = (await session.scalars(query.order_by(Message.id.desc()).limit(limit + 1))).all()
    has_more = len(rows) > limit
    return list(reversed(rows[:limit])), has_more


async def list_for_user(
    *, session: AsyncSession, user_id: str, limit: int, before: datetime | None = None
) -> Sequence[Conversation]:
    """The user's conversations, most recently active first."""
    query = select(Conversation).where(Conversation.user_id == user_id)
    if before is not None:
        query = query.where(Conversation.updated_at < before)
    query = query.order_by(Conversation.updated_at.desc(), Conversation.id.desc()).limit(limit)
    return (await session.scalars(query)).all()
