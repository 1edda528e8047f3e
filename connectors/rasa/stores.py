"""Rasa's dialogue state and conversation locks, configured from the stack's own settings.

Loaded by the Rasa server (Python 3.10) from `rasa_project/endpoints.yml`:

    tracker_store: {type: connectors.rasa.stores.ReviewBotTrackerStore}
    lock_store:    {type: connectors.rasa.stores.ReviewBotLockStore}

so one endpoints file serves `make run`, the tests, docker-compose and Kubernetes.

- Trackers live in Rasa's SQL tracker store, in their own table `rasa_tracker_events`:
  on PostgreSQL in the API's database and schema (`DATABASE_URL`, `DATABASE_SCHEMA`),
  on the embedded SQLite default in a file of their own beside the API's
  (`reviewbot.db` -> `reviewbot-tracker.db`), so Rasa never waits on the API's write lock.
  `TRACKER_DATABASE_URL` points it anywhere else. A restarted or second Rasa process
  continues every conversation where it was.
- Rasa's SQL store loads only the events since the latest `session_started`, so a
  conversation's turn costs what its current session holds, not its whole life.
- Locks are Redis ticket locks when `REDIS_URL` is set (several Rasa processes serialise
  one conversation between them), in-process otherwise (one Rasa process only).
"""

from __future__ import annotations

import logging
import os
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import sqlalchemy as sa
from rasa.core.brokers.broker import EventBroker
from rasa.core.lock import TicketLock
from rasa.core.lock_store import InMemoryLockStore, LockStore, RedisLockStore
from rasa.core.tracker_store import SQLTrackerStore, TrackerStore
from rasa.shared.core.domain import Domain
from sqlalchemy.orm import declarative_base

from actions.settings import DEFAULT_DATABASE_URL, normalise_database_url

log = logging.getLogger(__name__)

TRACKER_TABLE = "rasa_tracker_events"
LOCK_KEY_PREFIX = "reviewbot"
CONNECT_ATTEMPTS = 30


def tracker_database_url(env: dict[str, str] | None = None) -> str:
    """The SQLAlchemy (sync) URL of the tracker database for these settings."""
    env = dict(os.environ) if env is None else env
    explicit = (env.get("TRACKER_DATABASE_URL") or "").strip()
    if explicit:
        return normalise_database_url(explicit)
    url = normalise_database_url(env.get("DATABASE_URL") or DEFAULT_DATABASE_URL)
    if url.startswith("sqlite:///"):
        path = url[len("sqlite:///") :]
        if path in ("", ":memory:"):
            raise ValueError("the tracker store needs a SQLite file, not an in-memory database")
        file = Path(path)
        return "sqlite:///" + str(file.with_name(f"{file.stem}-tracker{file.suffix or '.db'}"))
    return url


class ReviewBotTrackerStore(SQLTrackerStore):
    """Rasa's SQL tracker store on the stack's database, in the table `rasa_tracker_events`."""

    # Its own declarative base, so the table name is ours and nothing clashes with the API's tables.
    Base = declarative_base()

    class SQLEvent(Base):  # type: ignore[valid-type,misc]
        __tablename__ = TRACKER_TABLE
        # Every query is "this conversation's events in order" or "its latest session start".
        __table_args__ = (
            sa.Index(f"ix_{TRACKER_TABLE}_sender_id_id", "sender_id", "id"),
            sa.Index(f"ix_{TRACKER_TABLE}_sender_type_ts", "sender_id", "type_name", "timestamp"),
        )

        id = sa.Column(sa.Integer, primary_key=True, autoincrement=True)
        sender_id = sa.Column(sa.String(255), nullable=False)
        type_name = sa.Column(sa.String(255), nullable=False)
        timestamp = sa.Column(sa.Float)
        intent_name = sa.Column(sa.String(255))
        action_name = sa.Column(sa.String(255))
        data = sa.Column(sa.Text)

    def __init__(
        self,
        domain: Domain | None = None,
        host: str | None = None,
        event_broker: EventBroker | None = None,
        **kwargs: Any,
    ) -> None:
        url = host if host and "://" in host else tracker_database_url()
        schema = (os.environ.get("TRACKER_DATABASE_SCHEMA") or os.environ.get("DATABASE_SCHEMA") or "").strip()
        self.engine = sa.create_engine(url, **_engine_options(url, schema))
        self._create_table(schema)
        self.sessionmaker = sa.orm.sessionmaker(bind=self.engine)
        log.info("tracker store ready url=%r table=%s", self.engine.url, TRACKER_TABLE)
        TrackerStore.__init__(self, domain, event_broker, **kwargs)

    def _create_table(self, schema: str) -> None:
        # The database may still be starting (docker-compose, Kubernetes): retry, then fail loudly.
        for attempt in range(1, CONNECT_ATTEMPTS + 1):
            try:
                with self.engine.begin() as connection:
                    if schema and self.engine.dialect.name == "postgresql":
                        connection.execute(sa.text(f'CREATE SCHEMA IF NOT EXISTS "{schema}"'))
                self.Base.metadata.create_all(self.engine)
                return
            except sa.exc.OperationalError as exc:
                if attempt == CONNECT_ATTEMPTS:
                    raise
                log.warning("tracker database not reachable (attempt %d): %s", attempt, exc)
                time.sleep(2)
            except sa.exc.ProgrammingError as exc:  # another replica created it at the same moment
                log.info("tracker table created concurrently: %s", exc)
                return


def _engine_options(url: str, schema: str) -> dict[str, Any]:
    if url.startswith("sqlite"):
        # Several Rasa processes may share the file; wait for the writer rather than fail.
        return {"connect_args": {"timeout": 15}}
    options: dict[str, Any] = {
        "pool_size": int(os.environ.get("TRACKER_POOL_SIZE") or 5),
        "max_overflow": int(os.environ.get("TRACKER_POOL_OVERFLOW") or 5),
        "pool_pre_ping": True,
    }
    if schema:
        options["connect_args"] = {"options": f"-csearch_path={schema}"}
    return options


class ReviewBotLockStore(LockStore):
    """Rasa's Redis lock store when REDIS_URL is set, its in-memory one otherwise."""

    def __init__(self, endpoint_config: Any = None) -> None:
        url = (os.environ.get("REDIS_URL") or "").strip()
        self._store: LockStore = _redis_lock_store(url) if url else InMemoryLockStore()
        log.info("lock store ready kind=%s", type(self._store).__name__)
        super().__init__()

    @property
    def shared(self) -> bool:
        """True when other Rasa processes see the same locks."""
        return isinstance(self._store, RedisLockStore)

    def get_lock(self, conversation_id: str) -> TicketLock | None:
        return self._store.get_lock(conversation_id)

    def delete_lock(self, conversation_id: str) -> None:
        self._store.delete_lock(conversation_id)

    def save_lock(self, lock: TicketLock) -> None:
        self._store.save_lock(lock)


def _redis_lock_store(url: str) -> RedisLockStore:
    parts = urlsplit(url)
    if parts.scheme not in ("redis", "rediss"):
        raise ValueError(f"REDIS_URL must be redis:// or rediss://, got {parts.scheme or url!r}")
    db = int(parts.path.lstrip("/") or 0)
    return RedisLockStore(
        host=parts.hostname or "localhost",
        port=parts.port or 6379,
        db=db,
        username=parts.username or None,
        password=parts.password or None,
        use_ssl=parts.scheme == "rediss",
        key_prefix=LOCK_KEY_PREFIX,
        socket_timeout=5,
    )
