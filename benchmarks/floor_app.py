"""The benchmark's floor: the least a FastAPI endpoint on the API's stack can do per request.

Same stack as the conversation API (FastAPI, SQLAlchemy 2 async, psycopg 3, the
same uvicorn), same database settings (DATABASE_URL, DATABASE_SCHEMA), none of
the work: `POST /floor/messages` stores one row in its own table, `GET
/floor/messages` reads the latest 20. No auth, no events, no bot. The API's
throughput divided by this one's says how much of the machine the API's own work
takes.

Usage: uvicorn --factory benchmarks.floor_app:app_factory --workers 2
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import Any

from fastapi import FastAPI
from pydantic import BaseModel, Field
from sqlalchemy import BigInteger, Column, DateTime, Identity, MetaData, String, Table, Text, insert, select, text
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from conversation_api.settings import DEFAULT_DATABASE_URL, normalise_database_url

metadata = MetaData()
floor_message = Table(
    "floor_message",
    metadata,
    Column("id", BigInteger, Identity(), primary_key=True),
    Column("user_id", String(128), nullable=False),
    Column("text", Text, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
)
# Any constant will do: it only serialises the two workers' CREATE TABLE.
CREATE_LOCK = 7_465_721


class FloorMessageIn(BaseModel):
    user_id: str = Field(min_length=1, max_length=128)
    message: str = Field(min_length=1, max_length=4096)


class FloorMessageOut(BaseModel):
    id: int
    user_id: str
    text: str
    created_at: datetime


class FloorHistory(BaseModel):
    messages: list[FloorMessageOut]


def create_engine() -> AsyncEngine:
    """The engine the API would build from the same environment (conversation_api/db.py's pool)."""
    url = normalise_database_url(os.environ.get("DATABASE_URL") or DEFAULT_DATABASE_URL)
    options: dict[str, Any] = {}
    if url.startswith("postgresql"):
        options = {"pool_size": 20, "max_overflow": 20, "pool_pre_ping": False}
        if schema := os.environ.get("DATABASE_SCHEMA"):
            options["connect_args"] = {"options": f"-csearch_path={schema}"}
    return create_async_engine(url, **options)


async def create_table(engine: AsyncEngine) -> None:
    async with engine.begin() as connection:
        if connection.dialect.name == "postgresql":
            # Both workers start at once; two concurrent CREATE TABLEs collide in pg_type.
            await connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": CREATE_LOCK})
        await connection.run_sync(metadata.create_all)


def create_app() -> FastAPI:
    engine = create_engine()

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        await create_table(engine)
        try:
            yield
        finally:
            await engine.dispose()

    app = FastAPI(title="Benchmark floor", lifespan=lifespan)

    @app.post("/floor/messages", response_model=FloorMessageOut)
    async def store(body: FloorMessageIn) -> FloorMessageOut:
        async with engine.begin() as connection:
            row = (
                await connection.execute(
                    insert(floor_message)
                    .values(user_id=body.user_id, text=body.message, created_at=datetime.now(UTC))
                    .returning(*floor_message.c)
                )
            ).one()
        return FloorMessageOut(**row._mapping)

    @app.get("/floor/messages", response_model=FloorHistory)
    async def latest() -> FloorHistory:
        async with engine.connect() as connection:
            rows = (await connection.execute(select(floor_message).order_by(floor_message.c.id.desc()).limit(20))).all()
        return FloorHistory(messages=[FloorMessageOut(**row._mapping) for row in reversed(rows)])

    @app.get("/healthz")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    return app


def app_factory() -> FastAPI:
    """Entry point for `uvicorn --factory benchmarks.floor_app:app_factory`."""
    return create_app()
