"""Typed errors raised at boundaries, and their one mapping to HTTP responses."""

from __future__ import annotations

import json
import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from redis.exceptions import RedisError
from sqlalchemy import exc as sa_exc
from starlette.exceptions import HTTPException

log = logging.getLogger(__name__)


class ApiError(Exception):
    status_code = 400
    code = "bad_request"
    headers: dict[str, str] | None = None

    def __init__(self, detail: str, **extra: Any) -> None:
        super().__init__(detail)
        self.detail = detail
        self.extra = extra


class InvalidRequest(ApiError):
    status_code = 422
    code = "invalid_request"


class NotAuthenticated(ApiError):
    status_code = 401
    code = "not_authenticated"


class Forbidden(ApiError):
    status_code = 403
    code = "forbidden"


class ConversationNotFound(ApiError):
    status_code = 404
    code = "conversation_not_found"

    def __init__(self, conversation_id: str) -> None:
        super().__init__(f"conversation {conversation_id!r} not found", conversation_id=conversation_id)


class Conflict(ApiError):
    status_code = 409
    code = "conflict"


class RateLimited(ApiError):
    status_code = 429
    code = "rate_limited"

    def __init__(self, detail: str, *, retry_after: int) -> None:
        super().__init__(detail, retry_after=retry_after)
        self.headers = {"Retry-After": str(retry_after)}


class BotUnavailableError(ApiError):
    """The message was stored but the bot could not answer it."""

    status_code = 503
    code = "bot_unavailable"


class DatabaseUnavailable(ApiError):
    status_code = 503
    code = "database_unavailable"


class ConversationBusy(ApiError):
    """The conversation's lock was not granted in time: turns ahead of this one are still running."""

    status_code = 503
    code = "conversation_busy"

    def __init__(self, key: str, **extra: Any) -> None:
        super().__init__("the conversation is busy with earlier messages; try again shortly", **extra)
        self.key = key


# What a 503 tells clients to wait: a Rasa restart or a database failover takes seconds.
RETRY_AFTER_SECONDS = 5


def error_body(code: str, detail: str, **extra: Any) -> dict[str, Any]:
    return {"code": code, "detail": detail, **extra}


# Echoed inputs are cut to this many characters: a 422 must not send a large body back.
MAX_ECHOED_INPUT = 200

# Starlette's own errors (unknown route, wrong method, unparseable or oversized body) in the same shape.
HTTP_CODES = {400: "malformed_body", 404: "not_found", 405: "method_not_allowed", 413: "payload_too_large"}


async def _api_error(_: Request, error: Exception) -> JSONResponse:
    assert isinstance(error, ApiError)
    headers = dict(error.headers or {})
    if error.status_code == 401:
        headers["WWW-Authenticate"] = "Bearer"
    if error.status_code == 503:
        headers.setdefault("Retry-After", str(RETRY_AFTER_SECONDS))
    return JSONResponse(error_body(error.code, error.detail, **error.extra), error.status_code, headers=headers)


async def _http_error(_: Request, error: Exception) -> JSONResponse:
    assert isinstance(error, HTTPException)
    code = HTTP_CODES.get(error.status_code, "http_error")
    return JSONResponse(error_body(code, str(error.detail)), error.status_code, headers=error.headers)


def _clipped(value: Any) -> Any:
    if isinstance(value, str | bytes):
        text = value if isinstance(value, str) else value.decode(errors="replace")
        return text if len(text) <= MAX_ECHOED_INPUT else text[:MAX_ECHOED_INPUT] + "…"
    encoded = jsonable_encoder(value)
    if isinstance(encoded, dict | list):
        text = json.dumps(encoded, ensure_ascii=False)
        if len(text) > MAX_ECHOED_INPUT:
            return text[:MAX_ECHOED_INPUT] + "…"
    return encoded


async def _invalid_request(_: Request, error: Exception) -> JSONResponse:
    """FastAPI's 422 (`detail` lists the errors, each naming its field), with every echoed input clipped."""
    assert isinstance(error, RequestValidationError)
    errors = [{**e, "input": _clipped(e["input"])} if "input" in e else e for e in error.errors()]
    return JSONResponse({"code": "invalid_request", "detail": jsonable_encoder(errors)}, 422)


async def _database_down(request: Request, error: Exception) -> JSONResponse:
    log.error("database unavailable path=%s error=%s", request.url.path, type(error).__name__)
    body = error_body(DatabaseUnavailable.code, "the database is unavailable; try again shortly")
    return JSONResponse(body, 503, headers={"Retry-After": str(RETRY_AFTER_SECONDS)})


async def _redis_down(request: Request, error: Exception) -> JSONResponse:
    # Nothing on a message's path needs Redis (locks are in PostgreSQL, the limiter falls back);
    # should a Redis call ever escape, the client still gets a clear, retryable answer.
    log.error("redis unavailable path=%s error=%s", request.url.path, type(error).__name__)
    body = error_body("redis_unavailable", "a backing service (Redis) is unavailable; try again shortly")
    return JSONResponse(body, 503, headers={"Retry-After": str(RETRY_AFTER_SECONDS)})


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(ApiError, _api_error)
    app.add_exception_handler(HTTPException, _http_error)
    app.add_exception_handler(RequestValidationError, _invalid_request)
    for error in (sa_exc.OperationalError, sa_exc.InterfaceError, sa_exc.TimeoutError, ConnectionError):
        app.add_exception_handler(error, _database_down)
    app.add_exception_handler(RedisError, _redis_down)
