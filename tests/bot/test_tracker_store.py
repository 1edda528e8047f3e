"""The Rasa tracker and lock stores (connectors/rasa/stores.py) on Rasa's Python, against real databases."""

from __future__ import annotations

import asyncio
import os
import uuid
from pathlib import Path
from typing import Any

import psycopg2
import pytest
import redis

os.environ.setdefault("RASA_TELEMETRY_ENABLED", "false")

from rasa.core.lock_store import InMemoryLockStore, RedisLockStore  # noqa: E402
from rasa.shared.core.domain import Domain  # noqa: E402
from rasa.shared.core.events import (  # noqa: E402
    ActionExecuted,
    ActiveLoop,
    BotUttered,
    ConversationPaused,
    Event,
    SessionStarted,
    SlotSet,
    UserUttered,
)
from rasa.shared.core.trackers import DialogueStateTracker  # noqa: E402

from connectors.rasa.stores import (  # noqa: E402
    ReviewBotLockStore,
    ReviewBotTrackerStore,
    tracker_database_url,
)

ROOT = Path(__file__).resolve().parents[2]
POSTGRES = "postgresql://postgres@127.0.0.1:5432/test"


@pytest.fixture(scope="module")
def domain() -> Domain:
    return Domain.load(str(ROOT / "domain.yml"))


@pytest.fixture(params=["sqlite", "postgresql"])
def store(request: pytest.FixtureRequest, tmp_path: Path, domain: Domain, monkeypatch: pytest.MonkeyPatch) -> Any:
    if request.param == "sqlite":
        monkeypatch.setenv("DATABASE_URL", f"sqlite+aiosqlite:///{tmp_path / 'reviewbot.db'}")
        monkeypatch.delenv("DATABASE_SCHEMA", raising=False)
        yield ReviewBotTrackerStore(domain=domain)
        assert (tmp_path / "reviewbot-tracker.db").exists()  # its own file beside the API's
        return
    schema = f"t_{uuid.uuid4().hex[:12]}"
    monkeypatch.setenv("DATABASE_URL", POSTGRES)
    monkeypatch.setenv("DATABASE_SCHEMA", schema)
    tracker_store = ReviewBotTrackerStore(domain=domain)
    yield tracker_store
    tracker_store.engine.dispose()
    with psycopg2.connect(POSTGRES) as connection, connection.cursor() as cursor:
        cursor.execute(f'DROP SCHEMA "{schema}" CASCADE')


def turn(text: str, intent: str, reply: str) -> list[Event]:
    return [
        UserUttered(text, {"name": intent, "confidence": 0.99}),
        ActionExecuted("utter_" + intent),
        BotUttered(reply),
        ActionExecuted("action_listen"),
    ]


def session_start(**slots: Any) -> list[Event]:
    return [
        ActionExecuted("action_session_start"),
        SessionStarted(),
        *[SlotSet(k, v) for k, v in slots.items()],
        ActionExecuted("action_listen"),
    ]


def run(coroutine: Any) -> Any:
    return asyncio.new_event_loop().run_until_complete(coroutine)


def test_only_the_current_session_is_loaded(store: ReviewBotTrackerStore, domain: Domain) -> None:
    events: list[Event] = []
    for session in range(3):
        events += session_start(customer_name="Ann")
        events += [e for i in range(5) for e in turn(f"hi {session} {i}", "greet", "Hello")]
    run(store.save(DialogueStateTracker.from_events("c1", events, domain.slots)))

    current = run(store.retrieve("c1"))
    assert [e.text for e in current.events if isinstance(e, UserUttered)] == [f"hi 2 {i}" for i in range(5)]
    assert current.get_slot("customer_name") == "Ann"
    full = run(store.retrieve_full_tracker("c1"))
    assert len(full.events) == len(events)


def test_a_long_session_is_windowed_with_its_state_kept(
    store: ReviewBotTrackerStore, domain: Domain, monkeypatch: pytest.MonkeyPatch
) -> None:
    events = session_start(customer_name="Ann")
    events += [SlotSet("service", "haircut"), ActiveLoop("appointment_form"), SlotSet("requested_slot", "date")]
    events += [ConversationPaused()]
    events += [e for i in range(100) for e in turn(f"message {i}", "thank", "You're welcome")]
    run(store.save(DialogueStateTracker.from_events("c2", events, domain.slots)))

    tracker = run(store.retrieve("c2"))
    assert len(tracker.events) <= store.window + 10  # the window and a small snapshot, not 400 events
    assert tracker.get_slot("customer_name") == "Ann" and tracker.get_slot("service") == "haircut"
    assert tracker.active_loop_name == "appointment_form" and tracker.get_slot("requested_slot") == "date"
    assert tracker.is_paused()
    kept = [e.text for e in tracker.events if isinstance(e, UserUttered)]
    assert kept[-1] == "message 99" and kept == [f"message {i}" for i in range(100 - len(kept), 100)]

    # A turn on the windowed tracker stores exactly its own events, after everything stored before.
    for event in turn("one more", "thank", "You're welcome"):
        tracker.update(event)
    run(store.save(tracker))
    full = run(store.retrieve_full_tracker("c2"))
    assert len(full.events) == len(events) + 4
    assert [e.text for e in full.events if isinstance(e, UserUttered)][-2:] == ["message 99", "one more"]


def test_the_tracker_database_follows_the_api_settings() -> None:
    assert tracker_database_url({"DATABASE_URL": "postgresql://u@db:5432/app"}) == "postgresql+psycopg2://u@db:5432/app"
    assert tracker_database_url({"DATABASE_URL": "sqlite+aiosqlite:///./reviewbot.db"}) == "sqlite:///reviewbot-tracker.db"
    assert tracker_database_url({}) == "sqlite:///reviewbot-tracker.db"
    explicit = {"DATABASE_URL": "sqlite:///x.db", "TRACKER_DATABASE_URL": "postgresql://u@other/db"}
    assert tracker_database_url(explicit) == "postgresql+psycopg2://u@other/db"
    with pytest.raises(ValueError, match="SQLite file"):
        tracker_database_url({"DATABASE_URL": "sqlite:///:memory:"})


def test_locks_are_shared_through_redis_when_it_is_configured(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("REDIS_URL", raising=False)
    assert isinstance(ReviewBotLockStore()._store, InMemoryLockStore)
    monkeypatch.setenv("REDIS_URL", "redis://127.0.0.1:6379/0")
    first, second = ReviewBotLockStore(), ReviewBotLockStore()  # two Rasa processes
    assert isinstance(first._store, RedisLockStore) and first.shared
    conversation = f"lock-{uuid.uuid4().hex}"

    async def scenario() -> list[str]:
        order: list[str] = []

        async def hold(store: ReviewBotLockStore, name: str, seconds: float) -> None:
            async with store.lock(conversation):
                order.append(f"{name} in")
                await asyncio.sleep(seconds)
                order.append(f"{name} out")

        await asyncio.gather(hold(first, "a", 0.3), asyncio.sleep(0.05))
        task = asyncio.ensure_future(hold(first, "a", 0.3))
        await asyncio.sleep(0.05)
        await asyncio.gather(task, hold(second, "b", 0.0))
        return order

    assert run(scenario())[-4:] == ["a in", "a out", "b in", "b out"]  # b waited for a across "processes"
    assert redis.Redis.from_url("redis://127.0.0.1:6379/0").get(first._store.key_prefix + conversation) is None


def test_replicas_starting_at_once_create_the_table_once(domain: Domain, monkeypatch: pytest.MonkeyPatch) -> None:
    from concurrent.futures import ThreadPoolExecutor

    schema = f"t_{uuid.uuid4().hex[:12]}"
    monkeypatch.setenv("DATABASE_URL", POSTGRES)
    monkeypatch.setenv("DATABASE_SCHEMA", schema)
    try:
        with ThreadPoolExecutor(max_workers=4) as pool:
            stores = list(pool.map(lambda _: ReviewBotTrackerStore(domain=domain), range(4)))
        run(stores[0].save(DialogueStateTracker.from_events("c3", session_start(), domain.slots)))
        # Written by one, read by another: session_started and action_listen (the session starts there).
        assert len(run(stores[3].retrieve("c3")).events) == 2
        for each in stores:
            each.engine.dispose()
    finally:
        with psycopg2.connect(POSTGRES) as connection, connection.cursor() as cursor:
            cursor.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
