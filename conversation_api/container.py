"""The API's composition root: the one place that reads settings and picks adapters."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from limits.aio.storage import RedisStorage
from redis.asyncio import ConnectionPool, Redis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from conversation_api.auth import TokenDecoder
from conversation_api.background import PeriodicTask
from conversation_api.bot import Bot
from conversation_api.channels import ChannelRegistry
from conversation_api.db import create_engine, create_session_factory
from conversation_api.events.bus import EventBus
from conversation_api.events.in_process import InProcessBus
from conversation_api.events.redis_streams import RedisStreamsBus
from conversation_api.events.relay import OutboxRelay
from conversation_api.gateway import MessageGateway
from conversation_api.handoff.bot_sync import TrackerSync
from conversation_api.handoff.sweeper import HandoffSweeper
from conversation_api.locks import ConversationLocks, InProcessLocks, PostgresLocks
from conversation_api.metrics import sessions as session_metrics
from conversation_api.ratelimit import MessageRateLimiter
from conversation_api.redrive import Redriver
from conversation_api.reminders.scheduler import ReminderScheduler
from conversation_api.reminders.service import ReminderPolicy
from conversation_api.review.backlog import backlog_task
from conversation_api.settings import Settings
from conversation_api.unit_of_work import ConversationUnitOfWork

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
    tracker_sync: TrackerSync
    handoff_sweeper: HandoffSweeper
    bus: EventBus
    relay: OutboxRelay
    session_sweeper: session_metrics.SessionSweeper
    uow: ConversationUnitOfWork
    redriver: Redriver
    rate_limiter: MessageRateLimiter
    review_backlog: PeriodicTask
    rate_limit_pool: ConnectionPool | None = None
    whatsapp: WhatsAppConnector | None = None
    reminders: ReminderScheduler | None = None

    def start(self) -> None:
        """Start the background tasks (handoff sweeper, outbox relay, session sweeper)."""
        self.handoff_sweeper.start()
        self.relay.start()
        self.session_sweeper.start()
        self.redriver.start()
        self.review_backlog.start()
        if self.reminders is not None:
            self.reminders.start()

    async def aclose(self) -> None:
        if self.reminders is not None:
            await self.reminders.stop()
        if self.whatsapp is not None:
            await self.whatsapp.aclose()
        await self.redriver.stop()
        await self.review_backlog.stop()
        await self.handoff_sweeper.stop()
        await self.session_sweeper.stop()
        await self.relay.stop()
        await self.bus.aclose()
        await self.bot.aclose()
        if self.redis is not None:
            await self.redis.aclose()
        if self.rate_limit_pool is not None:
            await self.rate_limit_pool.aclose()
        await self.engine.dispose()


def build_container(settings: Settings, *, bot: Bot | None = None) -> Container:
    from connectors.rasa.client import RasaChannelBot

    engine = create_engine(settings)
    sessions = create_session_factory(engine)
    bot = bot or RasaChannelBot(
        base_url=settings.rasa_replicas, token=settings.rasa_token, timeout=settings.rasa_timeout
    )
    redis = redis_client(settings.redis_url, socket_timeout=2) if settings.redis_url else None
    # PostgreSQL's advisory locks hold across workers and replicas; SQLite serves one process (settings check).
    locks: ConversationLocks = (
        InProcessLocks(wait=settings.conversation_lock_wait)
        if settings.is_sqlite
        else PostgresLocks(engine, wait=settings.conversation_lock_wait)
    )
    channels = ChannelRegistry()
    tracker_sync = TrackerSync(sessions=sessions, bot=bot)
    bus = build_bus(settings)
    session_metrics.configure(idle_gap_seconds=settings.session_idle_gap_seconds)
    reminder_policy = ReminderPolicy.of(settings) if settings.reminder_template else None
    gateway = MessageGateway(
        sessions=sessions, bot=bot, locks=locks, tracker_sync=tracker_sync, reminders=reminder_policy
    )
    rate_limiter, rate_limit_pool = build_rate_limiter(settings)
    container = Container(
        settings=settings,
        engine=engine,
        sessions=sessions,
        bot=bot,
        redis=redis,
        locks=locks,
        tokens=TokenDecoder(settings),
        gateway=gateway,
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
        bus=bus,
        relay=OutboxRelay(
            sessions=sessions,
            bus=bus,
            lock_rows=not settings.is_sqlite,
            batch_size=settings.event_relay_batch,
            interval=settings.event_relay_interval,
        ),
        session_sweeper=session_metrics.SessionSweeper(
            sessions=sessions, every=min(60.0, settings.session_idle_gap_seconds / 2)
        ),
        uow=ConversationUnitOfWork(sessions=sessions, locks=locks),
        redriver=Redriver(
            sessions=sessions,
            gateway=gateway,
            bot=bot,
            interval=settings.bot_redrive_interval_seconds,
            min_age=settings.bot_redrive_min_age_seconds,
            max_age=settings.bot_redrive_max_age_seconds,
        ),
        rate_limiter=rate_limiter,
        review_backlog=backlog_task(sessions, settings),
        rate_limit_pool=rate_limit_pool,
    )
    if settings.whatsapp_enabled:
        from connectors.whatsapp.bootstrap import build_whatsapp

        container.whatsapp = build_whatsapp(settings, sessions=sessions, gateway=container.gateway, locks=locks)
        container.channels.register("whatsapp", container.whatsapp.channel)
    if reminder_policy is not None:
        container.reminders = build_reminders(settings, container, reminder_policy)
    return container


def build_reminders(settings: Settings, container: Container, policy: ReminderPolicy) -> ReminderScheduler:
    """The appointment reminder scheduler (every replica runs one; they share the table)."""
    return ReminderScheduler(
        sessions=container.sessions,
        uow=container.uow,
        channels=container.channels,
        policy=policy,
        template=settings.reminder_template,
        language=settings.reminder_template_language,
        customer_spacing=settings.reminder_customer_spacing_seconds,
        lease_seconds=settings.reminder_lease_seconds,
        max_attempts=settings.reminder_max_attempts,
        poll_seconds=settings.reminder_poll_seconds,
    )


def redis_client(url: str, *, socket_timeout: float) -> Redis:
    """A Redis client that fails a call within seconds when Redis hangs, and retries once on a fresh
    connection, so the connections a Redis restart closed are replaced instead of failing a call."""
    return Redis.from_url(
        url,
        socket_connect_timeout=2,
        socket_timeout=socket_timeout,
        retry=Retry(NoBackoff(), 1),
        retry_on_error=[RedisConnectionError, RedisTimeoutError],
    )


def build_bus(settings: Settings) -> EventBus:
    """Redis Streams when EVENTS_REDIS_URL or REDIS_URL is set, otherwise in this process."""
    url = settings.event_bus_url
    if url is None:
        return InProcessBus()
    # Its own client with timeouts: a hung Redis must not hold the relay's database transaction.
    client = redis_client(url, socket_timeout=5)
    return RedisStreamsBus(client, prefix=settings.events_stream_prefix, maxlen=settings.events_stream_maxlen)


def build_rate_limiter(settings: Settings) -> tuple[MessageRateLimiter, ConnectionPool | None]:
    """RATE_LIMIT_MESSAGES per user, in Redis when RATE_LIMIT_REDIS_URL or REDIS_URL is set (shared by
    replicas), otherwise in this process."""
    url = settings.rate_limit_store_url
    if not settings.rate_limit_messages or not url:
        return MessageRateLimiter(settings.rate_limit_messages), None
    # Short timeouts: a hung Redis costs one message half a second, then the limiter falls back for a while.
    pool = ConnectionPool.from_url(url, socket_connect_timeout=0.5, socket_timeout=0.5)
    storage = RedisStorage(
        "async+" + url,
        implementation="redispy",
        wrap_exceptions=True,
        key_prefix="reviewbot:ratelimit",
        connection_pool=pool,  # type: ignore[arg-type]
    )
    return MessageRateLimiter(settings.rate_limit_messages, shared=storage), pool
