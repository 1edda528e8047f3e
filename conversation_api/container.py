"""The API's composition root: the one place that reads settings and picks adapters."""

from __future__ import annotations

from dataclasses import dataclass

from redis.asyncio import Redis
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from conversation_api.auth import TokenDecoder
from conversation_api.bot import Bot
from conversation_api.channels import ChannelRegistry
from conversation_api.db import create_engine, create_session_factory
from conversation_api.gateway import MessageGateway
from conversation_api.handoff.bot_sync import TrackerSync
from conversation_api.handoff.sweeper import HandoffSweeper
from conversation_api.locks import ConversationLocks, InProcessLocks, RedisLocks
from conversation_api.settings import Settings


@dataclass
class Container:
    settings: Settings
    engine: AsyncEngine
    sessions: async_sessionmaker[AsyncSession]
    bot: Bot
    redis: Redis | None
    locks: ConversationLocks
    tokens: TokenDecoder
    gateway: MessageGateway
    channels: ChannelRegistry
    tracker_sync: TrackerSync
    handoff_sweeper: HandoffSweeper

    async def aclose(self) -> None:
        await self.handoff_sweeper.stop()
        await self.bot.aclose()
        if self.redis is not None:
            await self.redis.aclose()
        await self.engine.dispose()


def build_container(settings: Settings, *, bot: Bot | None = None) -> Container:
    from connectors.rasa.client import RasaChannelBot

    engine = create_engine(settings)
    sessions = create_session_factory(engine)
    bot = bot or RasaChannelBot(base_url=settings.rasa_url, token=settings.rasa_token, timeout=settings.rasa_timeout)
    redis = Redis.from_url(settings.redis_url) if settings.redis_url else None
    locks: ConversationLocks = RedisLocks(redis) if redis is not None else InProcessLocks()
    channels = ChannelRegistry()
    tracker_sync = TrackerSync(sessions=sessions, bot=bot)
    return Container(
        settings=settings,
        engine=engine,
        sessions=sessions,
        bot=bot,
        redis=redis,
        locks=locks,
        tokens=TokenDecoder(settings),
        gateway=MessageGateway(sessions=sessions, bot=bot, locks=locks, tracker_sync=tracker_sync),
        channels=channels,
        tracker_sync=tracker_sync,
        handoff_sweeper=HandoffSweeper(
            sessions=sessions,
            locks=locks,
            channels=channels,
            tracker_sync=tracker_sync,
            unclaimed_timeout=settings.handoff_timeout,
            idle_timeout=settings.handoff_idle_timeout,
            interval=settings.handoff_sweep_interval,
        ),
    )
