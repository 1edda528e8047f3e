"""Restore drills: back up, destroy the database, restore, and check that nothing is missing.

On PostgreSQL with the real stack (action server, Rasa with the tracker store in the same schema,
the API): conversations, messages, a handoff, a booking, an order, a booking form left halfway and
outbox events the bus never took (its Redis is down). After `scripts/backup.py restore` every table
holds the same rows, the API answers the restored histories, the bot finishes the half-done form
and the relay publishes the events that were pending. On the embedded SQLite default the same
without Rasa: both files back, byte for byte in their rows.
"""

from __future__ import annotations

import io
import json
import os
import sqlite3
import subprocess
import tarfile
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import psycopg
import pytest

from conversation_api.settings import Settings
from tests.conftest import TokenFactory, auth, running_app
from tests.e2e.test_bot_tier import book_until_the_name_question, finish_booking
from tests.e2e.test_business_dialogues import Customer, rows
from tests.support.database import (
    POSTGRES_URL,
    drop_schema,
    migrate,
    migrated_schema,
    plain_dsn,
)
from tests.support.database import sqlite_settings as make_sqlite_settings
from tests.support.fakes import FakeBot
from tests.support.processes import ROOT, free_port
from tests.support.stack import api_server, bot_stack

pytestmark = pytest.mark.e2e

BACKUP = [str(ROOT / ".venv/bin/python"), str(ROOT / "scripts" / "backup.py")]


def run_backup(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    """`scripts/backup.py` as `make backup`/`make restore` run it, with only these settings."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("DATABASE_", "TRACKER_", "BACKUP_"))}
    return subprocess.run([*BACKUP, *args], env={**clean, **env}, cwd=ROOT, capture_output=True, text=True, timeout=120)


def backed_up(env: dict[str, str], directory: Path) -> Path:
    result = run_backup({**env, "BACKUP_DIR": str(directory)}, "backup")
    assert result.returncode == 0, result.stderr
    path = Path(result.stdout.strip())
    assert path.parent == directory and path.name.startswith("reviewbot-") and path.suffix == ".tar"
    return path


def pg_tables(settings: Settings) -> dict[str, tuple[int, str]]:
    """Every table of the schema: its row count and a digest of all its rows."""
    schema = settings.database_schema
    with psycopg.connect(plain_dsn(POSTGRES_URL), options=f"-csearch_path={schema}") as conn:
        names = [n for (n,) in conn.execute("SELECT tablename FROM pg_tables WHERE schemaname = %s", (schema,))]
        found = {}
        for name in names:
            query = f"SELECT count(*), md5(coalesce(string_agg(t::text, '|' ORDER BY t::text), '')) FROM \"{name}\" t"
            count, digest = conn.execute(query).fetchone()  # type: ignore[misc]
            found[name] = (count, digest)
        return found


def history(api: httpx.Client, token: TokenFactory, customer: Customer) -> list[tuple[str, str]]:
    response = api.get(
        f"/api/v1/user/{customer.user_id}/messages/{customer.conversation_id}",
        headers=auth(token(customer.user_id)),
        params={"limit": 100},
    )
    assert response.status_code == 200, response.text
    return [(m["sender"], m["text"]) for m in response.json()["messages"]]


@pytest.fixture
def drill_settings() -> Iterator[Settings]:
    """A schema of the drill's own: it is dropped on purpose, so never a shared one."""
    with migrated_schema() as settings:
        yield settings


def test_restore_drill_on_postgresql(drill_settings: Settings, token: TokenFactory, tmp_path: Path) -> None:
    settings = drill_settings
    env = {"DATABASE_URL": settings.database_url, "DATABASE_SCHEMA": str(settings.database_schema)}
    # The event bus's Redis is down: the relay keeps retrying and the events stay outbox rows.
    bus_down = {"EVENTS_REDIS_URL": f"redis://127.0.0.1:{free_port()}/0"}
    with (
        bot_stack(settings) as stack,
        api_server(settings, stack.rasa_url, bus_down) as server,
        httpx.Client(base_url=server.url, timeout=30) as api,
    ):
        booked = Customer(api, token, "e2e-drill-booked")
        booked.say("hi")
        book_until_the_name_question(booked, 15)
        finish_booking(booked, 15)
        halfway = Customer(api, token, "e2e-drill-halfway")
        halfway.say("hello")
        book_until_the_name_question(halfway, 14)
        shopper = Customer(api, token, "e2e-drill-order")
        assert "Added 2 x argan shampoo" in shopper.say("add 2 argan shampoo to my cart")
        assert "Shall I place it" in shopper.say("checkout")
        assert "is placed" in shopper.say("yes")
        human = Customer(api, token, "e2e-drill-human")
        assert "team" in human.say("i want to talk to a human").lower()
        customers = [booked, halfway, shopper, human]
        before_histories = [history(api, token, c) for c in customers]
    # Stopped before the backup so the counts compared below are final (a live backup is consistent
    # too: pg_dump reads one snapshot).
    before = pg_tables(settings)
    for table in ("conversation", "message", "conversation_handoff", "handoff_transition", "rasa_tracker_events"):
        assert before[table][0] > 0, table
    assert before["biz_appointments"][0] == 1 and before["biz_orders"][0] == 1
    [(pending,)] = rows(settings, "SELECT count(*) FROM outbox_event WHERE published_at IS NULL")
    assert pending > 0

    started = time.monotonic()
    path = backed_up(env, tmp_path)
    backup_seconds = time.monotonic() - started
    drop_schema(str(settings.database_schema))
    with psycopg.connect(plain_dsn(POSTGRES_URL)) as conn:
        assert not conn.execute("SELECT 1 FROM pg_namespace WHERE nspname = %s", (settings.database_schema,)).fetchall()
    started = time.monotonic()
    result = run_backup(env, "restore", str(path))
    restore_seconds = time.monotonic() - started
    assert result.returncode == 0, result.stderr
    size = path.stat().st_size
    print(f"drill backup_seconds={backup_seconds:.2f} restore_seconds={restore_seconds:.2f} bytes={size}")

    assert pg_tables(settings) == before  # every table, every row

    # The restored stack, with the bus back: it serves what was there and picks up where it was.
    started = time.monotonic()
    with (
        bot_stack(settings) as stack,
        api_server(settings, stack.rasa_url) as server,
        httpx.Client(base_url=server.url, timeout=30) as api,
    ):
        print(f"drill stack_ready_seconds={time.monotonic() - started:.1f}")
        assert [history(api, token, c) for c in customers] == before_histories
        halfway.api = api
        finish_booking(halfway, 14)  # the form's day and time came back with the tracker store
        deadline = time.monotonic() + 20
        while rows(settings, "SELECT count(*) FROM outbox_event WHERE published_at IS NULL")[0][0]:
            assert time.monotonic() < deadline, "the restored outbox was not published"
            time.sleep(0.25)
    [(appointments,)] = rows(settings, "SELECT count(*) FROM biz_appointments WHERE status = 'booked'")
    assert appointments == 2
    [(state,)] = rows(settings, "SELECT handoff_state FROM conversation WHERE id = %s", human.conversation_id)
    assert state == "pending_human"


def sqlite_tables(path: Path) -> dict[str, list[tuple[object, ...]]]:
    with sqlite3.connect(path) as conn:
        names = [n for (n,) in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
        return {name: sorted(conn.execute(f'SELECT * FROM "{name}"').fetchall(), key=repr) for name in names}


@pytest.fixture
def sqlite_files(tmp_path: Path) -> tuple[Settings, Path, Path]:
    path = tmp_path / "data" / "reviewbot.db"
    path.parent.mkdir()
    settings = make_sqlite_settings(path)
    migrate(settings)
    return settings, path, path.with_name("reviewbot-tracker.db")


async def test_restore_drill_on_sqlite(
    sqlite_files: tuple[Settings, Path, Path], token: TokenFactory, tmp_path: Path
) -> None:
    settings, path, tracker = sqlite_files
    async for _, http in running_app(settings, bot=FakeBot()):
        for user in ("sqlite-drill-a", "sqlite-drill-b"):
            response = await http.post(
                "/api/v1/messages",
                headers=auth(token(user)),
                json={"conversation_id": "", "user_id": user, "message": "hello"},
            )
            assert response.status_code == 200, response.text
    with sqlite3.connect(tracker) as conn:  # what Rasa's tracker store keeps, in its own file
        conn.execute("CREATE TABLE rasa_tracker_events (id INTEGER PRIMARY KEY, sender_id TEXT, data TEXT)")
        conn.executemany("INSERT INTO rasa_tracker_events (sender_id, data) VALUES (?, ?)", [("a", "{}")] * 3)
    before, before_tracker = sqlite_tables(path), sqlite_tables(tracker)
    assert before["message"] and before["outbox_event"] and before["alembic_version"]

    env = {"DATABASE_URL": settings.database_url}
    backups = tmp_path / "backups"
    # Taken while a writer holds the database open in WAL mode mid-transaction: only committed rows are in it.
    with sqlite3.connect(path) as writer:
        writer.execute("PRAGMA journal_mode=WAL")
        writer.execute("BEGIN IMMEDIATE")
        writer.execute("DELETE FROM message")
        archive = backed_up(env, backups)
        writer.rollback()
    with tarfile.open(archive) as tar:
        manifest = json.loads(tar.extractfile("manifest.json").read())  # type: ignore[union-attr]
    assert manifest["kind"] == "sqlite" and [s["store"] for s in manifest["stores"]] == ["api", "tracker"]

    for file in path.parent.iterdir():  # the disaster: the data directory is gone
        file.unlink()
    result = run_backup(env, "restore", str(archive))
    assert result.returncode == 0, result.stderr
    assert sqlite_tables(path) == before and sqlite_tables(tracker) == before_tracker
    async for _, http in running_app(settings, bot=FakeBot()):
        listed = await http.get("/api/v1/user/sqlite-drill-a/conversations", headers=auth(token("sqlite-drill-a")))
        assert listed.status_code == 200 and len(listed.json()["conversations"]) == 1, listed.text


def test_restore_refuses_what_it_cannot_restore(sqlite_files: tuple[Settings, Path, Path], tmp_path: Path) -> None:
    settings, path, _ = sqlite_files
    env = {"DATABASE_URL": settings.database_url}
    untouched = sqlite_tables(path)

    missing = run_backup(env, "restore", str(tmp_path / "nowhere.tar"))
    assert missing.returncode == 1 and "no backup at" in missing.stderr
    assert "which backup" in run_backup(env, "restore").stderr
    not_tar = tmp_path / "notes.tar"
    not_tar.write_text("not a backup")
    assert "not a ReviewBot backup" in run_backup(env, "restore", str(not_tar)).stderr

    other_kind = tmp_path / "reviewbot-postgresql-20260101T000000Z.tar"
    (tmp_path / "manifest.json").write_text(json.dumps({"format": 1, "kind": "postgresql", "stores": []}))
    with tarfile.open(other_kind, "w") as tar:
        tar.add(tmp_path / "manifest.json", arcname="manifest.json")
    wrong = run_backup(env, "restore", str(other_kind))
    assert wrong.returncode == 1 and "is a postgresql backup but DATABASE_URL is sqlite" in wrong.stderr
    assert sqlite_tables(path) == untouched

    nothing = run_backup({"DATABASE_URL": f"sqlite:///{tmp_path / 'absent.db'}", "BACKUP_DIR": str(tmp_path)}, "backup")
    assert nothing.returncode == 1 and "no database at" in nothing.stderr


def test_a_postgresql_restore_is_all_or_nothing(drill_settings: Settings, tmp_path: Path) -> None:
    settings = drill_settings
    env = {"DATABASE_URL": settings.database_url, "DATABASE_SCHEMA": str(settings.database_schema)}
    backed = pg_tables(settings)
    path = backed_up(env, tmp_path)
    with psycopg.connect(plain_dsn(POSTGRES_URL), options=f"-csearch_path={settings.database_schema}") as conn:
        conn.execute("CREATE TABLE added_since (id int)")  # a newer migration's table
        conn.execute("DELETE FROM alembic_version")
    changed = pg_tables(settings)

    # A damaged dump: the restore fails and the schema is as it was, not half dropped.
    damaged = tmp_path / "damaged" / path.name
    damaged.parent.mkdir()
    with tarfile.open(path) as tar, tarfile.open(damaged, "w") as out:
        for member in tar.getmembers():
            data = tar.extractfile(member).read()  # type: ignore[union-attr]
            if member.name.endswith(".dump"):
                data = data[: len(data) // 2]
            member.size = len(data)
            out.addfile(member, io.BytesIO(data))
    failed = run_backup(env, "restore", str(damaged))
    assert failed.returncode == 1 and "nothing changed" in failed.stderr, failed.stderr
    assert pg_tables(settings) == changed

    restored = run_backup(env, "restore", str(path))
    assert restored.returncode == 0, restored.stderr
    assert pg_tables(settings) == backed  # the table added since is gone, the deleted rows are back

    elsewhere = run_backup({**env, "DATABASE_SCHEMA": "some_other_schema"}, "restore", str(path))
    assert elsewhere.returncode == 1 and "set DATABASE_SCHEMA to the backup's schema" in elsewhere.stderr
