"""Fixtures shared by every test: databases, tokens, in-process apps and the real stack."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI

from conversation_api.auth import mint_token
from conversation_api.bot import Bot
from conversation_api.main import create_app
from conversation_api.settings import Settings
from tests.support.database import (
    TEST_JWT_SECRET,
    drop_schema,
    migrate,
    migrated_schema,
    new_schema_name,
    postgres_settings,
    sqlite_settings,
)
from tests.support.fake_graph import FakeGraph
from tests.support.stack import BotStack, api_server, bot_stack

TokenFactory = Callable[..., str]


@pytest.fixture(scope="session")
def pg_schema() -> Iterator[str]:
    """A fresh, migrated schema in the real PostgreSQL `test` database, dropped afterwards.

    It belongs to the apps a test runs in-process (`running_app`), one at a time and
    stopped with their test, so each test's app is the only API replica on it. An API
    process that outlives a test runs on a schema of its own (`stack_settings`,
    `migrated_schema`): its background sweepers work on every conversation of their
    schema, with their own bot.
    """
    schema = new_schema_name()
    migrate(postgres_settings(schema))
    try:
        yield schema
    finally:
        drop_schema(schema)


@pytest.fixture(scope="session")
def pg_settings(pg_schema: str) -> Settings:
    return postgres_settings(pg_schema)


@pytest.fixture
def sqlite_db_settings(tmp_path: Path) -> Settings:
    settings = sqlite_settings(tmp_path / "reviewbot.db")
    migrate(settings)
    return settings


@pytest.fixture(params=["postgresql", "sqlite"])
def db_settings(request: pytest.FixtureRequest, tmp_path: Path) -> Settings:
    """Each test using this runs once on PostgreSQL and once on the embedded SQLite default."""
    if request.param == "postgresql":
        settings: Settings = request.getfixturevalue("pg_settings")
        return settings
    settings = sqlite_settings(tmp_path / "reviewbot.db")
    migrate(settings)
    return settings


@pytest.fixture
def token() -> TokenFactory:
    def make(user_id: str, role: str = "client", ttl: int = 600, secret: str = TEST_JWT_SECRET) -> str:
        return mint_token(secret=secret, user_id=user_id, role=role, ttl_seconds=ttl)

    return make


def auth(token_value: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token_value}"}


async def running_app(settings: Settings, bot: Bot | None = None) -> AsyncIterator[tuple[FastAPI, httpx.AsyncClient]]:
    """The app in-process with its lifespan running, and an HTTP client bound to it."""
    app = create_app(settings, bot=bot)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://api.test") as client:
            yield app, client


@pytest.fixture(scope="session")
def stack_settings() -> Iterator[Settings]:
    """The schema of the real stack (action server, Rasa, API processes) and of the e2e tests that read it.

    The stack's API process lives for the whole run and, like every replica, its
    handoff sweeper delivers any pending pause/resume of its schema to its own bot (the
    real Rasa), and its re-driver and outbox relay take any conversation's pending work.
    On the in-process tests' schema it would be a second replica with another bot: a
    resume a test expects its fake bot to get went to Rasa instead.
    """
    with migrated_schema() as settings:
        yield settings


@pytest.fixture(scope="session")
def real_bot(stack_settings: Settings) -> Iterator[BotStack]:
    """The real action server and Rasa server with the trained model (started once per run)."""
    with bot_stack(stack_settings) as stack:
        yield stack


@pytest.fixture(scope="session")
def api_url(stack_settings: Settings, real_bot: BotStack) -> Iterator[str]:
    """The conversation API as a real HTTP server on PostgreSQL, talking to the real Rasa."""
    with api_server(stack_settings, real_bot.rasa_url) as server:
        yield server.url


@pytest.fixture
def api(api_url: str) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=api_url, timeout=30) as client:
        yield client


@pytest.fixture
def fake_graph() -> Iterator[FakeGraph]:
    """A local fake of Meta's Graph API (a real HTTP server) recording what the WhatsApp connector sends."""
    graph = FakeGraph().start()
    try:
        yield graph
    finally:
        graph.stop()
