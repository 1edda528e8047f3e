"""The message gateway: store each customer message, route it to the bot, store the reply.

Every channel (the HTTP API, WhatsApp) goes through `MessageGateway.handle`, so
persistence, routing, ordering and idempotency are the same everywhere. A turn
is one conversation unit of work (`unit_of_work.py`): the conversation's lock is
held from storing the message to storing the reply.

A turn is idempotent by the message it answers. The stored message's id goes to
the bot (and on to the actions, which do each side effect once per message id),
and a message is marked `pending` until its reply is stored:

- a channel retrying a message it already handed over (a client's
  `client_message_id`, a WhatsApp wamid) gets the stored reply back when there is
  one, and otherwise re-drives that same stored message;
- `Redriver` (redrive.py) answers API messages a bot outage left pending.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC
from typing import Any

from sqlalchemy import exc as sa_exc
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from conversation_api import turns
from conversation_api.bot import Bot, BotMessage, BotTurn, BotUnavailable
from conversation_api.conversations import service
from conversation_api.conversations.models import (
    Channel,
    Conversation,
    HandoffState,
    Message,
    Sender,
    TurnState,
    new_conversation_id,
)
from conversation_api.db import utcnow
from conversation_api.errors import BotUnavailableError, Conflict, ConversationNotFound, DatabaseUnavailable
from conversation_api.handoff import service as handoff
from conversation_api.handoff.bot_sync import TrackerSync
from conversation_api.handoff.models import BotSync, ConversationHandoff, HandoffReason
from conversation_api.locks import ConversationLocks, LockSpace
from conversation_api.metrics.instruments import (
    BOT_CALL_FAILURES,
    BOT_CALLS,
    BOT_PAUSE_REPAIRED,
    IDEMPOTENT_REPLAYS,
    TURNS_REDRIVEN,
)
from conversation_api.reminders import service as reminders
from conversation_api.reminders.service import ReminderPolicy
from conversation_api.unit_of_work import ConversationUnitOfWork, ConversationWork

log = logging.getLogger(__name__)

DATABASE_ERRORS = (sa_exc.OperationalError, sa_exc.InterfaceError, sa_exc.TimeoutError, ConnectionError)


@dataclass(slots=True)
class GatewayReply:
    conversation_id: str
    user_id: str
    user_message_id: int
    messages: list[BotMessage] = field(default_factory=list)
    handoff_state: HandoffState = HandoffState.bot
    turn: BotTurn | None = None
    # This turn handed the conversation to a human (the bot is paused after the commit).
    handed_off: bool = False
    # A retry of a message answered before: `messages` are the replies stored then.
    replayed: bool = False

    @property
    def text(self) -> str:
        return "\n".join(m.text for m in self.messages if m.text)


@dataclass(frozen=True, slots=True)
class StoredAs:
    """How the conversation stores a customer message when the channel shows it otherwise than the bot gets it."""

    text: str
    payload: dict[str, Any] | None = None


def client_key(user_id: str, client_message_id: str) -> str:
    """The stored `external_id` of an API message sent with a client message id (unique per user)."""
    return f"{user_id}/{client_message_id}"


def stored_reply(message: Message) -> BotMessage:
    payload = message.payload or {}
    return BotMessage(
        text=message.text, buttons=payload.get("buttons"), image=payload.get("image"), custom=payload.get("custom")
    )


class MessageGateway:
    def __init__(
        self,
        *,
        sessions: async_sessionmaker[AsyncSession],
        bot: Bot,
        locks: ConversationLocks,
        tracker_sync: TrackerSync | None = None,
        reminders: ReminderPolicy | None = None,
    ) -> None:
        self._sessions = sessions
        self._bot = bot
        # When set, the bot's appointment outcomes put, move and drop reminders (reminders/service.py).
        self._reminders = reminders
        self._uow = ConversationUnitOfWork(sessions=sessions, locks=locks)
        self._sync = tracker_sync or TrackerSync(sessions=sessions, bot=bot)

    async def handle(
        self,
        *,
        user_id: str,
        conversation_id: str | None,
        text: str,
        channel: str = Channel.api.value,
        external_id: str | None = None,
        client_message_id: str | None = None,
        metadata: dict[str, Any] | None = None,
        shown: StoredAs | None = None,
    ) -> GatewayReply:
        """Store the message, ask the bot unless a human has the conversation, store the reply.

        `external_id` is the channel's own id of the message (a WhatsApp wamid);
        `client_message_id` an API client's. Either makes the call idempotent: a
        repeat stores nothing new. `text` is what the bot gets; `shown`, when the
        channel's customer saw something else (a button's title for its id), is what
        the conversation stores.

        Raises ConversationNotFound for an unknown or foreign conversation,
        Conflict for a client message id already used in another conversation, and
        BotUnavailableError / DatabaseUnavailable (with the stored message's id when
        it was stored) when a dependency fails.
        """
        received = time.perf_counter()
        if client_message_id is None:
            return await self._turn(user_id, conversation_id, text, channel, external_id, metadata, received, shown)
        key = client_key(user_id, client_message_id)
        # Retries of one client message queue here, even before it has a conversation.
        async with self._uow.key(key, LockSpace.client_message):
            async with self._sessions() as session:
                earlier = await service.find_external(session=session, channel=channel, external_id=key)
            if earlier is not None:
                if conversation_id and earlier.conversation_id != conversation_id:
                    raise Conflict(
                        "client_message_id was already used in another conversation",
                        conversation_id=earlier.conversation_id,
                        message_id=earlier.id,
                    )
                conversation_id = earlier.conversation_id
            return await self._turn(user_id, conversation_id, text, channel, key, metadata, received, shown)

    async def redrive(
        self, *, conversation_id: str, message_id: int, max_age_seconds: float, bot_up: bool = True
    ) -> str:
        """Answer a message a bot outage left pending; the outcome (see TURNS_REDRIVEN).

        Too old a message (the customer has waited `max_age_seconds`) is not answered
        by the bot any more: the conversation goes to a human, who sees it in the
        queue. A message overtaken by a later answered one is superseded.
        """
        received = time.perf_counter()
        async with self._uow.conversation(conversation_id) as work:
            async with work.transaction() as session:
                message = await session.get(Message, message_id)
                if message is None or message.turn_state is not TurnState.pending:
                    return "done_meanwhile"
                conversation, bookkeeping = await self._load(session, conversation_id, None)
                if conversation.handoff_state is not HandoffState.bot:
                    # A human took the conversation meanwhile and sees the message in the console.
                    await service.set_turn_state(session=session, message_id=message_id, state=TurnState.handed_off)
                    return "handed_off"
                later = await service.answered_after(
                    session=session, conversation_id=conversation_id, message_id=message_id
                )
                if later:
                    await service.set_turn_state(session=session, message_id=message_id, state=TurnState.superseded)
                    return "superseded"
                stored_at = message.created_at
                if stored_at.tzinfo is None:  # SQLite hands back naive UTC
                    stored_at = stored_at.replace(tzinfo=UTC)
                age = (utcnow() - stored_at).total_seconds()
                if age > max_age_seconds:
                    await service.set_turn_state(session=session, message_id=message_id, state=TurnState.handed_off)
                    handed = await handoff.request_human(
                        session=session,
                        conversation=conversation,
                        reason=HandoffReason.bot_unavailable.value,
                        actor="gateway",
                    )
                    if handed is not None:
                        work.after_commit(lambda: self._sync.apply(conversation_id))
                    return "handed_off"
                if not bot_up:
                    return "waiting"
                resume_pending = bookkeeping.bot_sync is BotSync.resume
            reply = GatewayReply(
                conversation_id=conversation.id, user_id=conversation.user_id, user_message_id=message.id
            )
            try:
                await self._ask_bot(work, conversation, message, resume_pending, None, reply, received)
            except (BotUnavailableError, DatabaseUnavailable):
                return "failed"
            return "answered"

    async def open_conversation(self, *, user_id: str, channel: str, conversation_id: str | None) -> Conversation:
        """The conversation a channel keeps for one customer (`conversation_id`), or a new one if it has none."""
        async with self._sessions() as session, session.begin():
            conversation = (
                await service.get(session=session, conversation_id=conversation_id) if conversation_id else None
            )
            if conversation is None or conversation.user_id != user_id:
                conversation = await service.create(session=session, user_id=user_id, channel=channel)
                handoff.start_bookkeeping(session=session, conversation_id=conversation.id)
                log.info("conversation started conversation_id=%s channel=%s", conversation.id, channel)
            return conversation

    async def record(
        self,
        *,
        user_id: str,
        conversation_id: str,
        channel: str,
        external_id: str,
        shown: StoredAs,
        replies: Sequence[StoredAs] = (),
        replies_only_with_bot: bool = False,
    ) -> int:
        """Store a customer message that is not a turn for the bot (a reaction, a type it cannot read,
        a keyword the channel answers itself), with the channel's own `replies` to it (sender `bot`).

        Idempotent by the channel's `external_id`; returns the stored message's id. The replies are
        stored with the message, once, and `replies(message_id=...)` returns them for delivery.
        `replies_only_with_bot`: store them only while the bot has the conversation (a reply in the
        bot's place, such as to a voice note); with a human, the message alone waits for them.
        """
        async with self._uow.conversation(conversation_id) as work, work.transaction() as session:
            existing = await service.find_external(session=session, channel=channel, external_id=external_id)
            if existing is not None:
                return existing.id
            conversation, _ = await self._load(session, conversation_id, user_id)
            message = await service.add_message(
                session=session,
                conversation=conversation,
                sender=Sender.user,
                text=shown.text,
                payload=shown.payload,
                external_id=external_id,
                events=lambda stored: [turns.user_message_event(conversation=conversation, message=stored)],
            )
            if replies and (not replies_only_with_bot or conversation.handoff_state is HandoffState.bot):
                await service.add_bot_turn(
                    session=session,
                    conversation=conversation,
                    message_id=message.id,
                    intent=None,
                    entities=[],
                    confidence=None,
                    replies=[service.NewMessage(text=r.text, payload=r.payload) for r in replies],
                    events=[],
                )
            return message.id

    async def reminder_answered(self, *, message_id: int, payload: str) -> str | None:
        """A customer pressed a button of the stored message `message_id`: if it was an appointment
        reminder, the appointment it was about (the bot's flow works on that one), and a Confirm
        (`/affirm`) is recorded; None otherwise."""
        async with self._sessions() as session:
            reminder = await reminders.reminder_of_message(session, message_id=message_id)
        if reminder is None:
            return None
        if payload.strip().startswith("/affirm"):
            async with self._uow.conversation(reminder.conversation_id) as work, work.transaction() as session:
                await reminders.record_confirmation(session, reminder_id=reminder.id, now=utcnow())
        log.info(
            "reminder answered conversation_id=%s appointment_id=%s payload=%s",
            reminder.conversation_id,
            reminder.appointment_id,
            payload,
        )
        return reminder.appointment_id

    async def replies(self, *, message_id: int) -> list[Message]:
        """The bot's stored replies to a customer message, in order (what a channel still has to deliver)."""
        async with self._sessions() as session:
            return list(await service.replies_to(session=session, message_id=message_id))

    async def _turn(
        self,
        user_id: str,
        conversation_id: str | None,
        text: str,
        channel: str,
        external_id: str | None,
        metadata: dict[str, Any] | None,
        received: float,
        shown: StoredAs | None = None,
    ) -> GatewayReply:
        # A new conversation gets its id now, so its first turn runs under its lock like every other.
        cid = conversation_id or new_conversation_id()
        async with self._uow.conversation(cid) as work:
            stored_id: int | None = None
            try:
                async with work.transaction() as session:
                    conversation, bookkeeping = await self._load(session, conversation_id, user_id, cid, channel)
                    existing = (
                        await service.find_external(
                            session=session, channel=conversation.channel, external_id=external_id
                        )
                        if external_id
                        else None
                    )
                    if existing is not None and existing.turn_state is not TurnState.pending:
                        return await self._replay(session, conversation, existing)
                    # The first delivery of a message records its `message.received`; a retry reuses it.
                    message = existing or await service.add_message(
                        session=session,
                        conversation=conversation,
                        sender=Sender.user,
                        text=shown.text if shown else text,
                        payload=shown.payload if shown else None,
                        external_id=external_id,
                        turn_state=TurnState.pending if conversation.handoff_state is HandoffState.bot else None,
                        events=lambda stored: [turns.user_message_event(conversation=conversation, message=stored)],
                    )
                    stored_id = message.id
                    resume_pending = bookkeeping.bot_sync is BotSync.resume
            except sa_exc.IntegrityError:
                # The same channel message stored concurrently outside this conversation's lock
                # (only possible for a new conversation): the other delivery owns it.
                raise Conflict("this message is being handled by a concurrent request; retry it") from None
            except DATABASE_ERRORS as exc:
                if stored_id is None:
                    raise
                # The connection broke at the commit: PostgreSQL may have kept the message or not,
                # and only a retry can tell. It gets the id, so a retry with its client_message_id
                # answers that very message (or stores it, if the commit was lost).
                log.error("message commit unconfirmed conversation_id=%s error=%s", cid, type(exc).__name__)
                raise DatabaseUnavailable(
                    "the database is unavailable; your message may have been saved, retry it to get the reply",
                    conversation_id=cid,
                    message_id=stored_id,
                ) from exc
            reply = GatewayReply(
                conversation_id=conversation.id,
                user_id=user_id,
                user_message_id=message.id,
                handoff_state=conversation.handoff_state,
            )
            if conversation.handoff_state is not HandoffState.bot:
                log.info(
                    "routed to human conversation_id=%s state=%s", conversation.id, conversation.handoff_state.value
                )
                if existing is not None:  # pending from the bot's time; a human answers it now
                    async with work.transaction() as session:
                        await service.set_turn_state(session=session, message_id=message.id, state=TurnState.handed_off)
                return reply
            if existing is None:
                return await self._ask_bot(
                    work, conversation, message, resume_pending, metadata, reply, received, bot_text=text
                )
            try:
                answered = await self._ask_bot(
                    work, conversation, message, resume_pending, metadata, reply, received, bot_text=text
                )
            except (BotUnavailableError, DatabaseUnavailable):
                TURNS_REDRIVEN.labels("retry", "failed").inc()
                raise
            TURNS_REDRIVEN.labels("retry", "answered").inc()
            return answered

    async def _load(
        self,
        session: AsyncSession,
        conversation_id: str | None,
        user_id: str | None,
        new_id: str | None = None,
        channel: str = Channel.api.value,
    ) -> tuple[Conversation, ConversationHandoff]:
        if conversation_id:
            # Loaded now, the bookkeeping row serves the handoff triggers after the bot call.
            if user_id is None:
                conversation = await service.get(session=session, conversation_id=conversation_id)
                if conversation is None:
                    raise ConversationNotFound(conversation_id)
                user_id = conversation.user_id
            return await handoff.owned_with_handoff(session=session, conversation_id=conversation_id, user_id=user_id)
        assert user_id is not None and new_id is not None
        conversation = await service.create(session=session, user_id=user_id, channel=channel, conversation_id=new_id)
        return conversation, handoff.start_bookkeeping(session=session, conversation_id=conversation.id)

    async def _replay(self, session: AsyncSession, conversation: Conversation, message: Message) -> GatewayReply:
        """The answer a retried message got the first time."""
        IDEMPOTENT_REPLAYS.inc()
        replies = await service.replies_to(session=session, message_id=message.id)
        log.info("retry answered from the store conversation_id=%s message_id=%s", conversation.id, message.id)
        return GatewayReply(
            conversation_id=conversation.id,
            user_id=conversation.user_id,
            user_message_id=message.id,
            messages=[stored_reply(m) for m in replies],
            handoff_state=conversation.handoff_state,
            replayed=True,
        )

    async def _ask_bot(
        self,
        work: ConversationWork,
        conversation: Conversation,
        message: Message,
        resume_pending: bool,
        metadata: dict[str, Any] | None,
        reply: GatewayReply,
        received: float,
        *,
        bot_text: str | None = None,
    ) -> GatewayReply:
        conversation_id, message_id = conversation.id, message.id
        if resume_pending and not await self._sync.apply(conversation.id):
            # Rasa would log the message but, still paused, never answer it.
            raise BotUnavailableError(
                "the bot is unavailable (it could not be resumed after a handoff); your message was saved",
                conversation_id=conversation.id,
                message_id=message.id,
            )
        called = time.perf_counter()
        try:
            turn = await self._bot.send(
                sender_id=conversation.id,
                # A re-driven API message is sent as stored; a channel passes what its customer meant.
                text=bot_text if bot_text is not None else message.text,
                metadata={
                    "user_id": conversation.user_id,
                    "channel": conversation.channel,
                    **(metadata or {}),
                    # The actions do each side effect once per message id: a re-driven turn repeats none.
                    "message_id": message.id,
                },
            )
        except BotUnavailable as exc:
            BOT_CALLS.labels("error").observe(time.perf_counter() - called)
            BOT_CALL_FAILURES.inc()
            log.warning("bot unavailable conversation_id=%s reason=%s", conversation.id, exc.reason)
            try:
                await turns.record_bot_unavailable(
                    work.session, conversation=conversation, message=message, reason=exc.reason
                )
            except Exception as record_error:  # the 503 below matters more than the event
                log.warning(
                    "bot.unavailable not recorded conversation_id=%s error=%s",
                    conversation.id,
                    type(record_error).__name__,
                )
            raise BotUnavailableError(
                f"the bot is unavailable ({exc.reason}); your message was saved",
                conversation_id=conversation.id,
                message_id=message.id,
            ) from exc
        BOT_CALLS.labels("ok").observe(time.perf_counter() - called)

        try:
            async with work.transaction() as session:
                record = turns.bot_turn_events(conversation=conversation, message=message, turn=turn)
                await service.add_bot_turn(
                    session=session,
                    conversation=conversation,
                    message_id=message.id,
                    intent=turn.intent,
                    entities=turn.entities,
                    confidence=turn.confidence,
                    replies=[
                        service.NewMessage(text=m.text or m.image or "", payload=m.payload()) for m in turn.messages
                    ],
                    events=record.events,
                )
                await turns.record_bot_feedback(session, conversation=conversation, record=record)
                if self._reminders is not None and turn.workflows:
                    policy = self._reminders
                    await reminders.apply_outcomes(
                        session, conversation=conversation, outcomes=turn.workflows, policy=policy, now=utcnow()
                    )
                outcome = record.outcome
                # Triggers take effect from the next message; this turn's reply is still the bot's.
                reply.handed_off = (
                    await handoff.after_bot_turn(session=session, conversation=conversation, turn=turn) is not None
                )
                if reply.handed_off:
                    # After the commit and under the lock, so a CSR resolving at once cannot overtake the pause.
                    work.after_commit(lambda: self._sync.apply(conversation.id))
                elif turn.paused and conversation.handoff_state is HandoffState.bot:
                    work.after_commit(lambda: self._repair_pause(conversation.id))
        except DATABASE_ERRORS as exc:
            # The bot answered but its reply was not stored: the message stays pending, and a retry
            # of it re-drives the same message (the actions repeat no side effect). The rollback
            # expired the loaded rows, so only the ids read before are used here.
            log.error("bot reply not stored conversation_id=%s error=%s", conversation_id, type(exc).__name__)
            raise DatabaseUnavailable(
                "the database is unavailable; your message was saved, retry it to get the reply",
                conversation_id=conversation_id,
                message_id=message_id,
            ) from exc
        reply.handoff_state = conversation.handoff_state
        turns.observe_bot_turn(
            channel=conversation.channel,
            turn=turn,
            outcome=outcome,
            response_seconds=time.perf_counter() - received,
        )
        reply.messages = turn.messages
        reply.turn = turn
        log.info(
            "bot replied conversation_id=%s message_id=%s intent=%s replies=%d",
            conversation.id,
            message.id,
            turn.intent,
            len(turn.messages),
        )
        return reply

    async def _repair_pause(self, conversation_id: str) -> None:
        """Rasa says paused but no human has the conversation (a resume it missed): resume it."""
        BOT_PAUSE_REPAIRED.inc()
        log.warning("bot paused while the conversation is the bot's; resuming conversation_id=%s", conversation_id)
        try:
            await self._bot.resume(conversation_id)
        except BotUnavailable as exc:
            log.warning("bot resume failed conversation_id=%s reason=%s", conversation_id, exc.reason)
