"""Keep the bot's own state (Rasa's tracker pause) in step with the handoff state.

The database is the source of truth: a state change commits first, with the pause
or resume the bot still has to hear about in `conversation_handoff.bot_sync`. Then
`TrackerSync.apply` tells the bot, retrying briefly; if the bot stays down the
marker stays, the sweeper retries it every sweep, and the gateway applies a
pending resume before it next asks the bot anything. So an unreachable Rasa never
loses a state change and never leaves a resolved conversation muted.

Callers hold the conversation's lock, so pauses and resumes reach the bot in order.
"""

from __future__ import annotations

import logging

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from tenacity import AsyncRetrying, retry_if_exception_type, stop_after_attempt, wait_exponential

from conversation_api.bot import Bot, BotUnavailable
from conversation_api.handoff.models import BotSync, ConversationHandoff
from conversation_api.locks import ConversationLocks

log = logging.getLogger(__name__)


class TrackerSync:
    def __init__(
        self,
        *,
        sessions: async_sessionmaker[AsyncSession],
        bot: Bot,
        attempts: int = 3,
        first_wait: float = 0.2,
    ) -> None:
        self._sessions = sessions
        self._bot = bot
        self._attempts = attempts
        self._first_wait = first_wait

    async def pending(self, conversation_id: str) -> BotSync | None:
        async with self._sessions() as session:
            return await session.scalar(
                select(ConversationHandoff.bot_sync).where(ConversationHandoff.conversation_id == conversation_id)
            )

    async def apply(self, conversation_id: str) -> bool:
        """Send the conversation's pending pause/resume to the bot; True when the bot is in step."""
        wanted = await self.pending(conversation_id)
        if wanted is None:
            return True
        call = self._bot.pause if wanted is BotSync.pause else self._bot.resume
        try:
            async for attempt in AsyncRetrying(
                stop=stop_after_attempt(self._attempts),
                wait=wait_exponential(multiplier=self._first_wait, max=2.0),
                retry=retry_if_exception_type(BotUnavailable),
                reraise=True,
            ):
                with attempt:
                    await call(conversation_id)
        except BotUnavailable as exc:
            log.warning(
                "bot %s not delivered conversation_id=%s reason=%s; retried at the next sweep",
                wanted.value,
                conversation_id,
                exc.reason,
            )
            return False
        async with self._sessions() as session, session.begin():
            # Only clear what we sent: a resolve racing a pause leaves its resume pending.
            await session.execute(
                update(ConversationHandoff)
                .where(ConversationHandoff.conversation_id == conversation_id, ConversationHandoff.bot_sync == wanted)
                .values(bot_sync=None)
            )
        log.info("bot %s applied conversation_id=%s", wanted.value, conversation_id)
        return True

    async def reconcile(self, locks: ConversationLocks, limit: int = 100) -> int:
        """Retry every pause/resume the bot missed; the number still out of step."""
        async with self._sessions() as session:
            ids = (
                await session.scalars(
                    select(ConversationHandoff.conversation_id)
                    .where(ConversationHandoff.bot_sync.is_not(None))
                    .limit(limit)
                )
            ).all()
        behind = 0
        for conversation_id in ids:
            async with locks.hold(conversation_id):
                if not await self.apply(conversation_id):
                    behind += 1
        return behind
