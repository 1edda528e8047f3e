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
  conversation's turn costs what its current session holds, not its whole life. A long
  session is cut down further: a turn works on its last `TRACKER_SESSION_WINDOW` events
  (default 40, six to eight turns, more than the policies' memory of 4 turns)
  behind a snapshot of the session's state before them (slots, active form, pause), so
  turn 200 of a session costs about what turn 20 does. The database keeps every event.
- Locks are Redis ticket locks when `REDIS_URL` is set (several Rasa processes serialise
  one conversation between them), in-process otherwise (one Rasa process only).
"""

from __future__ import annotations

import itertools
import json
import logging
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import sqlalchemy as sa
from rasa.core.brokers.broker import EventBroker
from rasa.core.lock import TicketLock
from rasa.core.lock_store import InMemoryLockStore, LockStore, RedisLockStore
from rasa.core.tracker_store import SQLTrackerStore, TrackerStore
from rasa.shared.core.constants import ACTION_LISTEN_NAME, ACTION_SESSION_START_NAME
from rasa.shared.core.domain import Domain
from rasa.shared.core.events import (
    ActionExecuted,
    ActiveLoop,
    ConversationPaused,
    Event,
    SessionStarted,
    SlotSet,
)
from rasa.shared.core.trackers import DialogueStateTracker
from sqlalchemy.orm import declarative_base

from actions.settings import DEFAULT_DATABASE_URL, normalise_database_url

log = logging.getLogger(__name__)

TRACKER_TABLE = "rasa_tracker_events"
LOCK_KEY_PREFIX = "reviewbot"
CONNECT_ATTEMPTS = 30
DEFAULT_SESSION_WINDOW = 40
CREATE_LOCK_KEY = 0x7265766965776274  # "reviewbt": serialises table creation between replicas


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
        self.window = int(os.environ.get("TRACKER_SESSION_WINDOW") or DEFAULT_SESSION_WINDOW)
        log.info("tracker store ready url=%r table=%s window=%d", self.engine.url, TRACKER_TABLE, self.window)
        TrackerStore.__init__(self, domain, event_broker, **kwargs)

    async def retrieve(self, sender_id: str) -> DialogueStateTracker | None:
        """The current session, its older events folded into a snapshot when it is long."""
        with self.session_scope() as session:
            query = self._event_query(session, sender_id, fetch_events_from_all_sessions=False)
            rows: list[tuple[str, str]] = query.with_entities(self.SQLEvent.type_name, self.SQLEvent.data).all()
        if not self.domain or not rows:
            return None
        if len(rows) <= self.window:
            tracker = DialogueStateTracker.from_dict(sender_id, [json.loads(d) for _, d in rows], self.domain.slots)
        else:
            tracker = windowed_tracker(sender_id, rows, self.domain, self.window)
        # The conversation lock is held from here to `save`, so nobody else adds events meanwhile:
        # remembering how many are stored spares `save` Rasa's COUNT query.
        setattr(tracker, STORED_ATTRIBUTE, len(rows))
        return tracker

    async def save(self, tracker: DialogueStateTracker) -> None:
        """Append the turn's new events in one INSERT (Rasa's store adds them one ORM object at a time)."""
        await self.stream_events(tracker)
        with self.session_scope() as session:
            rows = []
            for event in self._additional_events(session, tracker):
                data = event.as_dict()
                rows.append(
                    {
                        "sender_id": tracker.sender_id,
                        "type_name": event.type_name,
                        "timestamp": data.get("timestamp"),
                        "intent_name": (data.get("parse_data") or {}).get("intent", {}).get("name"),
                        "action_name": data.get("name"),
                        "data": json.dumps(data),
                    }
                )
            if rows:
                session.execute(sa.insert(self.SQLEvent.__table__), rows)
            session.commit()

    def _additional_events(self, session: Any, tracker: DialogueStateTracker) -> Iterator[Event]:
        """The tracker's events not stored yet (a windowed tracker holds fewer events than the store)."""
        stored = getattr(tracker, STORED_ATTRIBUTE, None)
        if stored is None:  # a tracker this store did not load (a new conversation)
            stored = self._event_query(session, tracker.sender_id, fetch_events_from_all_sessions=False).count()
        start = stored - getattr(tracker, FOLDED_ATTRIBUTE, 0)
        new = list(itertools.islice(tracker.events, start, len(tracker.events)))
        setattr(tracker, STORED_ATTRIBUTE, stored + len(new))
        return iter(new)

    def _create_table(self, schema: str) -> None:
        """Create the schema, table and indexes if missing; several replicas may start at once."""
        # The database may still be starting (docker-compose, Kubernetes): retry, then fail loudly.
        for attempt in range(1, CONNECT_ATTEMPTS + 1):
            try:
                with self.engine.begin() as connection:
                    if self.engine.dialect.name == "postgresql":
                        # One replica at a time: CREATE … IF NOT EXISTS still races on PostgreSQL's catalogue.
                        connection.execute(sa.text("SELECT pg_advisory_xact_lock(:key)"), {"key": CREATE_LOCK_KEY})
                        if schema:
                            connection.execute(sa.text(f'CREATE SCHEMA IF NOT EXISTS "{schema}"'))
                    self.Base.metadata.create_all(connection)
                return
            except (sa.exc.IntegrityError, sa.exc.ProgrammingError) as exc:
                # Another replica created it between our check and our CREATE (SQLite): it exists now.
                log.info("tracker table created concurrently (attempt %d): %s", attempt, exc)
                time.sleep(0.5)
            except sa.exc.OperationalError as exc:
                if "already exists" in str(exc):
                    continue
                if attempt == CONNECT_ATTEMPTS:
                    raise
                log.warning("tracker database not reachable (attempt %d): %s", attempt, exc)
                time.sleep(2)
        raise RuntimeError(f"could not create the tracker table {TRACKER_TABLE} after {CONNECT_ATTEMPTS} attempts")


FOLDED_ATTRIBUTE = "reviewbot_folded_events"
STORED_ATTRIBUTE = "reviewbot_stored_events"


def windowed_tracker(sender_id: str, rows: list[tuple[str, str]], domain: Domain, window: int) -> DialogueStateTracker:
    """A tracker of the last `window` events (from a turn boundary) behind a snapshot of what came before.

    `rows` are the session's stored events as (type name, JSON), oldest first.
    The snapshot has the shape of a session start (`action_session_start`, `session_started`,
    the slots, the active form, a pause, `action_listen`), so policies and actions see an
    ordinary session whose recent turns are intact. The number of stored events the tracker
    no longer holds is kept on it, so `save` appends only what the turn added.
    """
    cut = len(rows) - window
    # Start the kept part with a user message, so no turn is split between snapshot and window.
    while cut < len(rows) and rows[cut][0] != "user":
        cut += 1
    if cut >= len(rows):
        return DialogueStateTracker.from_dict(sender_id, [json.loads(d) for _, d in rows], domain.slots)
    # Messages say nothing about slots, forms or pauses: the bulky ones are not even parsed.
    state_events = [json.loads(d) for kind, d in rows[:cut] if kind not in ("user", "bot", "user_featurization")]
    before = DialogueStateTracker.from_dict(sender_id, state_events, domain.slots)
    at = json.loads(rows[cut - 1][1]).get("timestamp")
    snapshot: list[Event] = [ActionExecuted(ACTION_SESSION_START_NAME, timestamp=at), SessionStarted(timestamp=at)]
    changed = [slot for slot in before.slots.values() if slot.value != slot.initial_value]
    snapshot += [SlotSet(slot.name, slot.value, timestamp=at) for slot in changed]
    if before.active_loop_name:
        snapshot.append(ActiveLoop(before.active_loop_name, timestamp=at))
    if before.is_paused():
        snapshot.append(ConversationPaused(timestamp=at))
    snapshot.append(ActionExecuted(ACTION_LISTEN_NAME, timestamp=at))
    kept = [Event.from_parameters(json.loads(d)) for _, d in rows[cut:]]
    tracker = DialogueStateTracker.from_events(sender_id, snapshot + [e for e in kept if e], domain.slots)
    setattr(tracker, FOLDED_ATTRIBUTE, len(rows) - len(tracker.events))
    return tracker


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
    """Rasa's Redis lock store when REDIS_URL is set, its in-memory one otherwise.

    A ticket outlives the turn that holds it by `TICKET_LOCK_LIFETIME` (default 15 s,
    above the API's 10 s bot timeout; Rasa's own default is 60 s): when a replica is
    killed mid-turn, its ticket blocks that conversation on the other replicas only
    that long. The API serialises each conversation anyway, so a turn rarely waits;
    when one does, it polls every 50 ms rather than Rasa's full second.
    """

    def __init__(self, endpoint_config: Any = None) -> None:
        url = (os.environ.get("REDIS_URL") or "").strip()
        self._store: LockStore = _redis_lock_store(url) if url else InMemoryLockStore()
        self.lifetime = float(os.environ.get("TICKET_LOCK_LIFETIME") or 15)
        log.info("lock store ready kind=%s lifetime=%ss", type(self._store).__name__, self.lifetime)
        super().__init__()

    def lock(  # type: ignore[override]
        self, conversation_id: str, lock_lifetime: float | None = None, wait_time_in_seconds: float = 0.05
    ) -> Any:
        return super().lock(conversation_id, lock_lifetime or self.lifetime, wait_time_in_seconds)

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
