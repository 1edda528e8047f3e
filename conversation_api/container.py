"""The API's composition root: the one place that reads settings and picks adapters."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from redis.asyncio import Redis
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from conversation_api.auth import TokenDecoder
from conversation_api.bot import Bot
from conversation_api.channels import ChannelRegistry
from conversation_api.db import create_engine, create_session_factory
from conversation_api.gateway import MessageGateway
from conversation_api.locks import ConversationLocks, InProcessLocks, RedisLocks
from conversation_api.settings import Settings

if TYPE_CHECKING:
    from connectors.whatsapp.bootstrap import WhatsAppConnector


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
    whatsapp: WhatsAppConnector | None = None

    async def aclose(self) -> None:
        if self.whatsapp is not None:
            await self.whatsapp.aclose()
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
    container = Container(
        settings=settings,
        engine=engine,
        sessions=sessions,
        bot=bot,
        redis=redis,
        locks=locks,
        tokens=TokenDecoder(settings),
        gateway=MessageGateway(sessions=sessions, bot=bot, locks=locks),
        channels=ChannelRegistry(),
    )
    if settings.whatsapp_enabled:
        from connectors.whatsapp.bootstrap import build_whatsapp

        container.whatsapp = build_whatsapp(settings, sessions=sessions, gateway=container.gateway, locks=locks)
        container.channels.register("whatsapp", container.whatsapp.channel)
    return container
