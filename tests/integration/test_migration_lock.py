"""Migrators of one schema queue behind a PostgreSQL advisory lock (migrations/env.py).

On Kubernetes the migrate Job runs `alembic upgrade` once per release, but a re-run Job, an
operator's manual upgrade or an older release's pods may meet it: the second waits, then finds
the schema at heads.
"""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from pathlib import Path

import psycopg
import pytest

from tests.support.database import POSTGRES_URL, drop_schema, migrate, new_schema_name, plain_dsn, postgres_settings

MIGRATION_LOCK = 0x72626D67  # migrations/env.py
ROOT = Path(__file__).resolve().parents[2]


def has_version_table(schema: str) -> bool:
    with psycopg.connect(plain_dsn(POSTGRES_URL), autocommit=True) as connection:
        row = connection.execute("SELECT to_regclass(%s)", (f'"{schema}".alembic_version',)).fetchone()
    return row is not None and row[0] is not None


def migrate_in_thread(schema: str, errors: list[BaseException]) -> threading.Thread:
    def run() -> None:
        try:
            migrate(postgres_settings(schema))
        except BaseException as error:  # reported by the test
            errors.append(error)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread


@pytest.fixture
def schema():
    name = new_schema_name()
    yield name
    drop_schema(name)


def test_a_migrator_waits_while_another_holds_the_schemas_lock(schema: str) -> None:
    errors: list[BaseException] = []
    with psycopg.connect(plain_dsn(POSTGRES_URL), autocommit=True) as holder:
        holder.execute("SELECT pg_advisory_lock(%s, hashtext(%s))", (MIGRATION_LOCK, schema))
        thread = migrate_in_thread(schema, errors)
        time.sleep(2)
        assert thread.is_alive() and not errors, errors
        assert not has_version_table(schema)
        holder.execute("SELECT pg_advisory_unlock(%s, hashtext(%s))", (MIGRATION_LOCK, schema))
        thread.join(timeout=120)
    assert not thread.is_alive() and not errors, errors
    assert has_version_table(schema)


def test_concurrent_migrators_of_one_schema_all_succeed(schema: str) -> None:
    # Separate processes, as two pods would be (alembic's context is one per process).
    script = (
        "import sys; from tests.support.database import migrate, postgres_settings; "
        "migrate(postgres_settings(sys.argv[1]))"
    )
    processes = [
        subprocess.Popen([sys.executable, "-c", script, schema], cwd=ROOT, stderr=subprocess.PIPE, text=True)
        for _ in range(3)
    ]
    failures = []
    for process in processes:
        _, stderr = process.communicate(timeout=180)
        if process.returncode != 0:
            failures.append(stderr[-2000:])
    assert not failures, failures
    assert has_version_table(schema)


def test_the_lock_is_let_go_after_migrating(schema: str) -> None:
    migrate(postgres_settings(schema))
    with psycopg.connect(plain_dsn(POSTGRES_URL), autocommit=True) as other:
        [(taken,)] = other.execute("SELECT pg_try_advisory_lock(%s, hashtext(%s))", (MIGRATION_LOCK, schema)).fetchall()
        assert taken
        other.execute("SELECT pg_advisory_unlock(%s, hashtext(%s))", (MIGRATION_LOCK, schema))
