"""Answer the API messages a bot outage left unanswered, once the bot is back.

A customer message stays `pending` until its bot reply is stored. Every
BOT_REDRIVE_INTERVAL_SECONDS the re-driver takes pending API messages older than
BOT_REDRIVE_MIN_AGE_SECONDS (so it never races a turn still in flight; the
conversation's lock would make it wait anyway) and runs them through the gateway
again, oldest first. The reply lands in the conversation's history, where the
client reads it. A message the bot could not answer within
BOT_REDRIVE_MAX_AGE_SECONDS goes to a human instead (reason `bot_unavailable`):
nothing a customer sent is silently dropped.

WhatsApp messages are not re-driven here: the connector's inbound queue retries
them itself and delivers the reply to the phone. Every API replica may run it:
the lock and the `pending` check let exactly one answer each message.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import timedelta

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from conversation_api.background import PeriodicTask
from conversation_api.bot import Bot, BotUnavailable
from conversation_api.conversations import service
from conversation_api.conversations.models import Channel
from conversation_api.db import utcnow
from conversation_api.gateway import MessageGateway
from conversation_api.metrics.instruments import TURNS_REDRIVEN

log = logging.getLogger(__name__)


@dataclass(slots=True)
class RedriveResult:
    outcomes: dict[str, int] = field(default_factory=dict)

    def count(self, outcome: str) -> int:
        return self.outcomes.get(outcome, 0)


class Redriver:
    def __init__(
        self,
        *,
        sessions: async_sessionmaker[AsyncSession],
        gateway: MessageGateway,
        bot: Bot,
        interval: float,
        min_age: float,
        max_age: float,
        batch: int = 50,
    ) -> None:
        self._sessions = sessions
        self._gateway = gateway
        self._bot = bot
        self._min_age = min_age
        self._max_age = max_age
        self._batch = batch
        self._periodic = PeriodicTask(name="redriver", every=interval, job=self.redrive_once)

    async def redrive_once(self) -> RedriveResult:
        result = RedriveResult()
        async with self._sessions() as session:
            pending = await service.pending_turns(
                session=session,
                channel=Channel.api.value,
                stored_before=utcnow() - timedelta(seconds=self._min_age),
                limit=self._batch,
            )
        if not pending:
            return result
        try:
            await self._bot.ping()
            bot_up = True
        except BotUnavailable:
            bot_up = False  # still down: only hand over what waited too long
        stalled: set[str] = set()
        for message_id, conversation_id in pending:
            if conversation_id in stalled:
                continue  # keep a conversation's messages in order: none after one that failed
            outcome = await self._gateway.redrive(
                conversation_id=conversation_id,
                message_id=message_id,
                max_age_seconds=self._max_age,
                bot_up=bot_up,
            )
            result.outcomes[outcome] = result.outcomes.get(outcome, 0) + 1
            if outcome in ("failed", "waiting"):
                stalled.add(conversation_id)
            if outcome != "waiting":
                TURNS_REDRIVEN.labels("redriver", outcome).inc()
        if result.outcomes:
            log.info("re-driver pass %s", " ".join(f"{k}={v}" for k, v in sorted(result.outcomes.items())))
        return result

    def start(self) -> None:
        self._periodic.start()

    async def stop(self) -> None:
        await self._periodic.stop()
