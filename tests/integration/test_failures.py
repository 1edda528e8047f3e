"""Failing dependencies: the real Rasa client pointed at nothing, and a database that is not there."""

from collections.abc import AsyncIterator

import httpx
import pytest
from sqlalchemy import select

from conversation_api.conversations.models import Message
from conversation_api.db import create_engine, create_session_factory
from conversation_api.settings import Settings
from tests.conftest import TokenFactory, auth, running_app
from tests.support.fakes import FakeBot
from tests.support.processes import free_port


@pytest.fixture
async def bot_down(db_settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    settings = db_settings.model_copy(update={"rasa_url": f"http://127.0.0.1:{free_port()}", "rasa_timeout": 2.0})
    async for _, http in running_app(settings):
        yield http


async def test_bot_down_is_503_and_the_message_is_kept(
    bot_down: httpx.AsyncClient, db_settings: Settings, token: TokenFactory
) -> None:
    response = await bot_down.post(
        "/api/v1/messages", headers=auth(token("gina")), json={"user_id": "gina", "message": "is anybody there?"}
    )
    assert response.status_code == 503
    body = response.json()
    assert body["code"] == "bot_unavailable"
    assert "saved" in body["detail"]

    engine = create_engine(db_settings)
    async with create_session_factory(engine)() as session:
        stored = (
            await session.scalars(select(Message).where(Message.conversation_id == body["conversation_id"]))
        ).all()
    await engine.dispose()
    assert [(m.id, m.text) for m in stored] == [(body["message_id"], "is anybody there?")]

    # The conversation goes on once the client retries: history shows the saved message.
    history = await bot_down.get(f"/api/v1/user/gina/messages/{body['conversation_id']}", headers=auth(token("gina")))
    assert [m["text"] for m in history.json()["messages"]] == ["is anybody there?"]


async def test_readyz_reports_the_bot_down_but_stays_ready(bot_down: httpx.AsyncClient) -> None:
    # History, the CSR console and the WhatsApp webhook still work without Rasa: the API stays in service.
    response = await bot_down.get("/readyz")
    assert response.status_code == 200 and response.json()["status"] == "ready"
    body = response.json()
    assert body["checks"]["database"] == "ok" and body["checks"]["bot"].startswith("error")
    [(url, state)] = body["bot_replicas"].items()
    assert url.startswith("http://127.0.0.1:") and state.startswith("error: unreachable")


@pytest.fixture
async def database_down() -> AsyncIterator[httpx.AsyncClient]:
    settings = Settings(
        _env_file=None,
        environment="test",
        jwt_secret="test-secret-that-is-long-enough-for-hs256-0123456789",
        database_url=f"postgresql+psycopg://postgres@127.0.0.1:{free_port()}/test",
    )
    async for _, http in running_app(settings, bot=FakeBot()):
        yield http


async def test_database_down_is_503_everywhere(database_down: httpx.AsyncClient, token: TokenFactory) -> None:
    post = await database_down.post(
        "/api/v1/messages", headers=auth(token("hank")), json={"user_id": "hank", "message": "hello"}
    )
    assert post.status_code == 503 and post.json()["code"] == "database_unavailable"
    get = await database_down.get("/api/v1/user/hank/conversations", headers=auth(token("hank")))
    assert get.status_code == 503
    ready = await database_down.get("/readyz")
    assert ready.status_code == 503 and ready.json()["checks"]["database"].startswith("error")
    assert (await database_down.get("/healthz")).status_code == 200
