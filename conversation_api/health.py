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
            "content": {"application/json": {"example": {"status": "ready", "checks": {"database": "ok", "bot": "ok"}}}}
        },
        503: {
            "description": "A dependency is not answering; the body says which.",
            "content": {
                "application/json": {
                    "example": {
                        "status": "not ready",
                        "checks": {"database": "ok", "bot": "error: the bot is unreachable"},
                    }
                }
            },
        },
    },
)
async def readyz(container: ContainerDep) -> JSONResponse:
    """Ready only when the database and the bot both answer."""

    async def database() -> str:
        try:
            async with asyncio.timeout(3):
                async with container.engine.connect() as connection:
                    await connection.execute(text("SELECT 1"))
        except Exception as exc:  # any failure means not ready; report it, don't raise
            return f"error: {type(exc).__name__}"
        return "ok"

    async def bot() -> str:
        try:
            await container.bot.ping()
        except BotUnavailable as exc:
            return f"error: {exc.reason}"
        return "ok"

    checks = dict(zip(("database", "bot"), await asyncio.gather(database(), bot()), strict=True))
    ready = all(v == "ok" for v in checks.values())
    return JSONResponse({"status": "ready" if ready else "not ready", "checks": checks}, 200 if ready else 503)
