"""Test databases: an isolated schema on the real PostgreSQL, or a SQLite file."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import psycopg
from alembic import command
from alembic.config import Config

from conversation_api.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
POSTGRES_URL = os.environ.get("TEST_DATABASE_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
TEST_JWT_SECRET = "test-secret-that-is-long-enough-for-hs256-0123456789"


def alembic_config(settings: Settings) -> Config:
    config = Config(str(ROOT / "alembic.ini"))
    config.attributes["settings"] = settings
    config.attributes["configure_logging"] = False
    return config


def migrate(settings: Settings, revision: str = "heads") -> None:
    command.upgrade(alembic_config(settings), revision)


def plain_dsn(url: str) -> str:
    return url.replace("postgresql+psycopg://", "postgresql://")


def new_schema_name() -> str:
    return f"t_{uuid.uuid4().hex[:12]}"


def drop_schema(schema: str) -> None:
    with psycopg.connect(plain_dsn(POSTGRES_URL), autocommit=True) as connection:
        connection.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


@contextmanager
def migrated_schema(**overrides: object) -> Iterator[Settings]:
    """Settings for a new, migrated PostgreSQL schema of the caller's own, dropped afterwards."""
    schema = new_schema_name()
    settings = postgres_settings(schema, **overrides)
    migrate(settings)
    try:
        yield settings
    finally:
        drop_schema(schema)


def postgres_settings(schema: str, **overrides: object) -> Settings:
    values: dict[str, object] = {
        "environment": "test",
        "database_url": POSTGRES_URL,
        "database_schema": schema,
        "jwt_secret": TEST_JWT_SECRET,
        "redis_url": None,
    }
    values.update(overrides)
    return Settings(_env_file=None, **values)  # type: ignore[arg-type]


def sqlite_settings(path: Path, **overrides: object) -> Settings:
    values: dict[str, object] = {
        "environment": "test",
        "database_url": f"sqlite+aiosqlite:///{path}",
        "jwt_secret": TEST_JWT_SECRET,
        "redis_url": None,
    }
    values.update(overrides)
    return Settings(_env_file=None, **values)  # type: ignore[arg-type]
