"""Alembic environment: one set of migrations for SQLite and PostgreSQL, run on the async engine."""

from __future__ import annotations

import asyncio
from logging.config import fileConfig

from alembic import context
from sqlalchemy import text
from sqlalchemy.engine import Connection

import conversation_api.models  # noqa: F401  (registers every table on Base.metadata)
from conversation_api.db import Base, create_engine
from conversation_api.settings import Settings

config = context.config
if config.config_file_name is not None and config.attributes.get("configure_logging", True):
    fileConfig(config.config_file_name, disable_existing_loggers=False)

target_metadata = Base.metadata


def _settings() -> Settings:
    return config.attributes.get("settings") or Settings()


def run_migrations_offline() -> None:
    context.configure(
        url=_settings().database_url, target_metadata=target_metadata, literal_binds=True, render_as_batch=True
    )
    with context.begin_transaction():
        context.run_migrations()


def _run(connection: Connection) -> None:
    context.configure(connection=connection, target_metadata=target_metadata, render_as_batch=True)
    with context.begin_transaction():
        context.run_migrations()


# pg_advisory_lock(MIGRATION_LOCK, hashtext(schema)): two migrators of one schema (a re-run Job,
# an operator's `alembic upgrade` during a rollout, several pods of an older release that still
# migrate at start) queue; the second finds the schema at heads and does nothing. Other schemas
# (the tests' isolated ones) do not wait. A session lock: it outlives the commits in between and
# goes with the connection if the migrator dies.
MIGRATION_LOCK = 0x72626D67  # "rbmg"


async def run_migrations_online() -> None:
    settings = _settings()
    engine = create_engine(settings)
    async with engine.connect() as connection:
        postgres = not settings.is_sqlite
        lock = {"key": MIGRATION_LOCK, "schema": settings.database_schema or "public"}
        if postgres:
            await connection.execute(text("SELECT pg_advisory_lock(:key, hashtext(:schema))"), lock)
            await connection.commit()
        try:
            if settings.database_schema and postgres:
                await connection.execute(text(f'CREATE SCHEMA IF NOT EXISTS "{settings.database_schema}"'))
                await connection.commit()
            await connection.run_sync(_run)
        finally:
            if postgres:
                await connection.rollback()
                await connection.execute(text("SELECT pg_advisory_unlock(:key, hashtext(:schema))"), lock)
                await connection.commit()
    await engine.dispose()


if context.is_offline_mode():
    run_migrations_offline()
else:
    asyncio.run(run_migrations_online())
