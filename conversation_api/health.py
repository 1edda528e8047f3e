"""Liveness and readiness probes."""

from __future__ import annotations

import asyncio

from fastapi import APIRouter
from fastapi.responses import JSONResponse
from sqlalchemy import text

from conversation_api.bot import BotUnavailable
from conversation_api.deps import ContainerDep

router = APIRouter(tags=["health"])


@router.get("/healthz", responses={200: {"content": {"application/json": {"example": {"status": "ok"}}}}})
async def healthz() -> dict[str, str]:
    """The process is up."""
    return {"status": "ok"}


@router.get(
    "/readyz",
    responses={
        200: {
            "description": "The database answers. The bot's and Redis's states (Redis when configured) are "
            "reported but do not gate readiness.",
            "content": {
                "application/json": {
                    "example": {
                        "status": "ready",
                        "checks": {"database": "ok", "bot": "ok", "redis": "ok"},
                        "bot_replicas": {"http://rasa-0:5005": "ok", "http://rasa-1:5005": "error: HTTP 503"},
                    }
                }
            },
        },
        503: {
            "description": "The database is not answering.",
            "content": {
                "application/json": {
                    "example": {
                        "status": "not ready",
                        "checks": {"database": "error: OperationalError", "bot": "ok"},
                        "bot_replicas": {"http://127.0.0.1:5005": "ok"},
                    }
                }
            },
        },
    },
)
async def readyz(container: ContainerDep) -> JSONResponse:
    """Ready when the database answers; the bot (each replica) is reported but does not gate.

    A Rasa outage must not take the API out of its load balancer: history, the CSR
    console and the WhatsApp webhook keep working, and messages get a clear 503 with
    the message stored.
    """

    async def database() -> str:
        try:
            async with asyncio.timeout(3):
                async with container.engine.connect() as connection:
                    await connection.execute(text("SELECT 1"))
        except Exception as exc:  # any failure means not ready; report it, don't raise
            return f"error: {type(exc).__name__}"
        return "ok"

    async def bot() -> tuple[str, dict[str, str] | None]:
        replica_states = getattr(container.bot, "replica_states", None)
        if replica_states is not None:
            replicas: dict[str, str] = await replica_states()
            return ("ok" if "ok" in replicas.values() else "error: no replica answers"), replicas
        try:
            await container.bot.ping()
        except BotUnavailable as exc:
            return f"error: {exc.reason}", None
        return "ok", None

    async def redis() -> str | None:
        if container.redis is None:
            return None
        try:
            async with asyncio.timeout(2):
                await container.redis.ping()
        except Exception as exc:  # reported, not raised
            return f"error: {type(exc).__name__}"
        return "ok"

    database_state, (bot_state, replicas), redis_state = await asyncio.gather(database(), bot(), redis())
    ready = database_state == "ok"
    checks = {"database": database_state, "bot": bot_state}
    if redis_state is not None:
        # Reported, not gating: conversation locks live in PostgreSQL, the outbox holds events while
        # Redis is away, and the rate limiter falls back to this process.
        checks["redis"] = redis_state
    body: dict[str, object] = {"status": "ready" if ready else "not ready", "checks": checks}
    if replicas is not None:
        body["bot_replicas"] = replicas
    return JSONResponse(body, 200 if ready else 503)
