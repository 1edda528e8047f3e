"""Database engine, session factory and the declarative base."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import BigInteger, Executable, Integer, MetaData, Result, UpdateBase, event
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker, create_async_engine
from sqlalchemy.orm import DeclarativeBase

from conversation_api.settings import Settings

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


# SQLite only auto-increments INTEGER PRIMARY KEY; PostgreSQL gets a BIGINT identity.
BigIntId = BigInteger().with_variant(Integer(), "sqlite")


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


def utcnow() -> datetime:
    return datetime.now(UTC)


def engine_options(settings: Settings) -> dict[str, Any]:
    if settings.is_sqlite:
        return {"connect_args": {"timeout": 30}}
    # pre_ping: a connection that died with a database restart is replaced on checkout instead of
    # failing a request with a 503 (one "SELECT 1"-like round trip per checkout).
    options: dict[str, Any] = {
        "pool_size": settings.database_pool_size,
        "max_overflow": settings.database_max_overflow,
        "pool_pre_ping": True,
    }
    if settings.database_schema:
        options["connect_args"] = {"options": f"-csearch_path={settings.database_schema}"}
    return options


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.close()


def create_engine(settings: Settings) -> AsyncEngine:
    engine = create_async_engine(settings.database_url, **engine_options(settings))
    if settings.is_sqlite:
        event.listen(engine.sync_engine, "connect", _sqlite_pragmas)
    return engine


def create_session_factory(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return async_sessionmaker(engine, expire_on_commit=False)


async def execute_together(session: AsyncSession, main: Executable, *also: UpdateBase) -> Result[Any]:
    """Run `main` and the writes `also` in one statement where the database allows it; return `main`'s result.

    PostgreSQL takes the writes as data-modifying CTEs of `main`: one statement, one
    round trip. Elsewhere (SQLite) they run one by one before `main`. Either way the
    statements must not depend on each other: in one statement they share one snapshot.
    """
    if also and session.get_bind().dialect.name == "postgresql":
        main = main.add_cte(*(write.cte(f"write_{n}") for n, write in enumerate(also)))  # type: ignore[attr-defined]
    else:
        for write in also:
            await session.execute(write)
    return await session.execute(main)
