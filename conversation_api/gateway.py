"""The message gateway: store each customer message, route it to the bot, store the reply.

Every channel (the HTTP API, WhatsApp) goes through `MessageGateway.handle`, so
persistence, routing and ordering are the same everywhere.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from conversation_api.bot import Bot, BotMessage, BotTurn, BotUnavailable
from conversation_api.conversations import service
from conversation_api.conversations.models import Channel, HandoffState, Sender
from conversation_api.errors import BotUnavailableError
from conversation_api.events import turns
from conversation_api.handoff import service as handoff
from conversation_api.handoff.bot_sync import TrackerSync
from conversation_api.handoff.models import BotSync
from conversation_api.locks import ConversationLocks
from conversation_api.metrics.instruments import BOT_CALL_FAILURES, BOT_CALLS

log = logging.getLogger(__name__)


@dataclass(slots=True)
class GatewayReply:
    conversation_id: str
    user_id: str
    user_message_id: int
    messages: list[BotMessage] = field(default_factory=list)
    handoff_state: HandoffState = HandoffState.bot
    turn: BotTurn | None = None
    # This turn handed the conversation to a human: the bot still has to be paused.
    handed_off: bool = False

    @property
    def text(self) -> str:
        return "\n".join(m.text for m in self.messages if m.text)


class MessageGateway:
    def __init__(
        self,
        *,
        sessions: async_sessionmaker[AsyncSession],
        bot: Bot,
        locks: ConversationLocks,
        tracker_sync: TrackerSync | None = None,
    ) -> None:
        self._sessions = sessions
        self._bot = bot
        self._locks = locks
        self._sync = tracker_sync or TrackerSync(sessions=sessions, bot=bot)

    async def handle(
        self,
        *,
        user_id: str,
        conversation_id: str | None,
        text: str,
        channel: str = Channel.api.value,
        external_id: str | None = None,
        metadata: dict[str, Any] | None = None,
    ) -> GatewayReply:
        """Store the message, ask the bot unless a human has the conversation, store the reply.

        Raises ConversationNotFound for an unknown or foreign conversation and
        BotUnavailableError (after the message is stored) when the bot fails.
        """
        received = time.perf_counter()
        if conversation_id:
            async with self._locks.hold(conversation_id):
                reply = await self._handle(user_id, conversation_id, text, channel, external_id, metadata, received)
                if reply.handed_off:
                    await self._sync.apply(reply.conversation_id)
                return reply
        reply = await self._handle(user_id, None, text, channel, external_id, metadata, received)
        if reply.handed_off:
            # Under the lock, so a CSR resolving at once cannot overtake the pause.
            async with self._locks.hold(reply.conversation_id):
                await self._sync.apply(reply.conversation_id)
        return reply

    async def _handle(
        self,
        user_id: str,
        conversation_id: str | None,
        text: str,
        channel: str,
        external_id: str | None,
        metadata: dict[str, Any] | None,
        received: float,
    ) -> GatewayReply:
        async with self._sessions() as session:
            async with session.begin():
                if conversation_id:
                    # Loaded now, the bookkeeping row serves the handoff triggers after the bot call
                    # from the session, without another query.
                    conversation, bookkeeping = await handoff.owned_with_handoff(
                        session=session, conversation_id=conversation_id, user_id=user_id
                    )
                else:
                    conversation = await service.create(session=session, user_id=user_id, channel=channel)
                    bookkeeping = handoff.start_bookkeeping(session=session, conversation_id=conversation.id)
                # A channel retrying a message it already handed over (WhatsApp after a bot outage) reuses it.
                existing = (
                    await service.find_external(session=session, channel=conversation.channel, external_id=external_id)
                    if external_id
                    else None
                )
                # A retried message was recorded the first time; a new one gets its `message.received`.
                message = existing or await service.add_message(
                    session=session,
                    conversation=conversation,
                    sender=Sender.user,
                    text=text,
                    external_id=external_id,
                    events=lambda stored: [turns.user_message_event(conversation=conversation, message=stored)],
                )
                resume_pending = bookkeeping.bot_sync is BotSync.resume
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
                return reply
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
                    text=text,
                    metadata={"user_id": user_id, "channel": conversation.channel, **(metadata or {})},
                )
            except BotUnavailable as exc:
                BOT_CALLS.labels("error").observe(time.perf_counter() - called)
                BOT_CALL_FAILURES.inc()
                log.warning("bot unavailable conversation_id=%s reason=%s", conversation.id, exc.reason)
                try:
                    await turns.record_bot_unavailable(
                        session, conversation=conversation, message=message, reason=exc.reason
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

            async with session.begin():
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
                outcome = record.outcome
                # Triggers take effect from the next message; this turn's reply is still the bot's.
                reply.handed_off = (
                    await handoff.after_bot_turn(session=session, conversation=conversation, turn=turn) is not None
                )
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
                "bot replied conversation_id=%s intent=%s replies=%d", conversation.id, turn.intent, len(turn.messages)
            )
            return reply
