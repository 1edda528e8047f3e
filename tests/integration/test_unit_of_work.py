"""One conversation unit of work on the real PostgreSQL: ordering across app instances, idempotent
turns, re-driving what a bot outage left unanswered, and what a lost or busy lock does."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

import httpx
import psycopg
import pytest
from sqlalchemy import select

from conversation_api.bot import BotTurn
from conversation_api.conversations.models import Conversation, Message, Sender, TurnState
from conversation_api.handoff.models import ConversationHandoff
from conversation_api.main import create_app
from conversation_api.settings import Settings
from tests.conftest import auth, running_app
from tests.support.database import POSTGRES_URL, migrated_schema, plain_dsn
from tests.support.fakes import FakeBot


class SlowBot(FakeBot):
    """FakeBot that takes `delay` seconds and records the order it saw messages in."""

    def __init__(self, *, delay: float = 0.0, fail: bool = False) -> None:
        super().__init__(fail=fail)
        self.delay = delay
        self.running = 0
        self.most_at_once = 0

    async def send(self, *, sender_id: str, text: str, metadata: dict[str, Any]) -> BotTurn:
        self.running += 1
        self.most_at_once = max(self.most_at_once, self.running)
        try:
            if self.delay:
                await asyncio.sleep(self.delay)
            return await super().send(sender_id=sender_id, text=text, metadata=metadata)
        finally:
            self.running -= 1


@pytest.fixture
def schema_settings() -> AsyncIterator[Settings]:
    with migrated_schema(bot_redrive_interval_seconds=3600.0) as settings:
        yield settings


@contextlib.asynccontextmanager
async def app_client(settings: Settings, bot: FakeBot) -> AsyncIterator[tuple[Any, httpx.AsyncClient]]:
    async for app, client in running_app(settings, bot=bot):
        yield app, client


async def post(
    client: httpx.AsyncClient, token: str, user: str, text: str, cid: str = "", **extra: Any
) -> httpx.Response:
    headers = {**auth(token), **extra.pop("headers", {})}
    return await client.post(
        "/api/v1/messages",
        headers=headers,
        json={"conversation_id": cid, "user_id": user, "message": text, **extra},
        timeout=60,
    )


async def stored(app: Any, cid: str) -> list[Message]:
    async with app.state.container.sessions() as session:
        return list(await session.scalars(select(Message).where(Message.conversation_id == cid).order_by(Message.id)))


async def test_two_app_instances_serialise_one_conversation_in_arrival_order(schema_settings, token) -> None:
    """Two instances (two API workers) on one database: 20 posts interleave nowhere and run in arrival order."""
    bots = [SlowBot(delay=0.15), SlowBot(delay=0.15)]
    async with app_client(schema_settings, bots[0]) as (app, one), app_client(schema_settings, bots[1]) as (_, two):
        first = await post(one, token("ada"), "ada", "m00")
        cid = first.json()["conversation_id"]
        # Warm both pools, so no request is held back by opening a connection.
        await asyncio.gather(*(post(c, token("bea"), "bea", "warm-up") for c in (one, two) for _ in range(4)))
        for bot in bots:
            bot.most_at_once, bot.calls = 0, []

        async def send(n: int) -> httpx.Response:
            # Arrival order: m01 first, m20 last. 0.1 s apart, so that a stall of the loaded 2-core
            # machine (another process, a collection) can't swap two arrivals; each turn takes
            # 0.15 s, so waiters still queue on the lock (up to ~7 at the end).
            await asyncio.sleep(n * 0.1)
            return await post(one if n % 2 else two, token("ada"), "ada", f"m{n:02d}", cid)

        responses = await asyncio.gather(*(send(n) for n in range(1, 21)))
        assert [r.status_code for r in responses] == [200] * 20
        for n, response in enumerate(responses, start=1):
            assert response.json()["message"].startswith(f"echo: m{n:02d}")
        rows = await stored(app, cid)

    senders = "".join("U" if m.sender is Sender.user else "b" for m in rows)
    assert senders == "Ubb" * 21
    users = [m.text for m in rows if m.sender is Sender.user]
    assert users == [f"m{n:02d}" for n in range(21)]
    # Each reply right after its own message, linked to it.
    for i in range(0, len(rows), 3):
        assert rows[i + 1].text == f"echo: {rows[i].text}" and rows[i + 1].reply_to == rows[i].id
        assert rows[i].turn_state is TurnState.answered
    assert max(b.most_at_once for b in bots) == 1 and sum(len(b.calls) for b in bots) == 20


async def test_the_same_client_message_id_five_times_at_once_is_one_message_and_one_turn(
    schema_settings, token
) -> None:
    bot = SlowBot(delay=0.2)
    async with app_client(schema_settings, bot) as (app, client):
        responses = await asyncio.gather(
            *(post(client, token("bo"), "bo", "book a haircut", client_message_id="c-1") for _ in range(5))
        )
        bodies = [r.json() for r in responses]
        assert [r.status_code for r in responses] == [200] * 5
        assert len({b["conversation_id"] for b in bodies}) == 1
        assert len({b["message_id"] for b in bodies}) == 1
        assert {b["message"] for b in bodies} == {"echo: book a haircut\npick one"}
        assert sorted(b["replayed"] for b in bodies) == [False, True, True, True, True]
        assert len(bot.calls) == 1
        assert bot.calls[0]["metadata"]["message_id"] == bodies[0]["message_id"]
        rows = await stored(app, bodies[0]["conversation_id"])
        assert [m.sender for m in rows] == [Sender.user, Sender.bot, Sender.bot]
        # The replay carries the buttons as they were stored.
        assert bodies[0]["messages"][1]["buttons"] == [{"title": "Yes", "payload": "/affirm"}]
        async with app.state.container.sessions() as session:
            assert await session.scalar(select(Conversation.id).where(Conversation.user_id == "bo")) is not None
            assert len((await session.scalars(select(Conversation).where(Conversation.user_id == "bo"))).all()) == 1


async def test_a_retry_after_the_bot_failed_re_drives_the_same_stored_message(schema_settings, token) -> None:
    bot = SlowBot(fail=True)
    async with app_client(schema_settings, bot) as (app, client):
        failed = await post(client, token("cy"), "cy", "cancel my order", headers={"Idempotency-Key": "k-9"})
        assert failed.status_code == 503
        assert failed.headers["Retry-After"] == "5"
        body = failed.json()
        assert body["code"] == "bot_unavailable" and isinstance(body["message_id"], int)
        cid = body["conversation_id"]

        bot.fail = False
        retried = await post(client, token("cy"), "cy", "cancel my order", cid, headers={"Idempotency-Key": "k-9"})
        assert retried.status_code == 200
        assert retried.json()["message_id"] == body["message_id"] and retried.json()["replayed"] is False
        again = await post(client, token("cy"), "cy", "cancel my order", client_message_id="k-9")
        assert again.json()["replayed"] is True and again.json()["conversation_id"] == cid

        rows = await stored(app, cid)
        assert [m.sender for m in rows] == [Sender.user, Sender.bot, Sender.bot]
        assert rows[0].turn_state is TurnState.answered
        # Both bot calls carried the one stored message id: the actions repeat no side effect.
        assert [c["metadata"]["message_id"] for c in bot.calls] == [body["message_id"]] * 2


async def test_client_message_id_mistakes_are_clear_errors(schema_settings, token) -> None:
    async with app_client(schema_settings, SlowBot()) as (_, client):
        first = await post(client, token("di"), "di", "hello", client_message_id="same")
        other = await post(client, token("di"), "di", "hello again", "")
        reused = await post(
            client, token("di"), "di", "hello", other.json()["conversation_id"], client_message_id="same"
        )
        assert reused.status_code == 409
        assert reused.json()["conversation_id"] == first.json()["conversation_id"]
        both = await post(client, token("di"), "di", "x", client_message_id="a", headers={"Idempotency-Key": "b"})
        assert both.status_code == 422 and "differ" in both.json()["detail"]
        bad = await post(client, token("di"), "di", "x", client_message_id="has space")
        assert bad.status_code == 422
        # Another user's identical id is theirs alone.
        eve = await post(client, token("eve"), "eve", "hello", client_message_id="same")
        assert eve.status_code == 200 and eve.json()["replayed"] is False


async def test_the_re_driver_answers_what_an_outage_left_unanswered_and_hands_over_what_waited_too_long(
    schema_settings, token
) -> None:
    bot = SlowBot(fail=True)
    async with app_client(schema_settings, bot) as (app, client):
        container = app.state.container
        one = (await post(client, token("fe"), "fe", "first")).json()
        two = (await post(client, token("fe"), "fe", "second", one["conversation_id"])).json()
        old = (await post(client, token("gu"), "gu", "anyone?")).json()
        assert one["code"] == two["code"] == old["code"] == "bot_unavailable"

        redriver = container.redriver
        redriver._min_age = 0.0
        still_down = await redriver.redrive_once()
        assert still_down.count("waiting") == 2  # gu's and fe's first; fe's second waits behind it
        assert bot.calls[-1]["text"] == "anyone?"  # no call was made while down

        bot.fail = False
        async with container.sessions() as session, session.begin():
            # gu's message has waited longer than the bot may still answer it.
            message = await session.get(Message, old["message_id"])
            message.created_at = message.created_at.replace(year=2020)
        result = await redriver.redrive_once()
        assert result.count("answered") == 2 and result.count("handed_off") == 1

        fe = await stored(app, one["conversation_id"])
        assert [(m.sender, m.text) for m in fe] == [
            (Sender.user, "first"),
            (Sender.user, "second"),
            (Sender.bot, "echo: first"),
            (Sender.bot, "pick one"),
            (Sender.bot, "echo: second"),
            (Sender.bot, "pick one"),
        ]
        assert [m.reply_to for m in fe[2:]] == [fe[0].id, fe[0].id, fe[1].id, fe[1].id]
        assert {c["metadata"]["message_id"] for c in bot.calls[-2:]} == {one["message_id"], two["message_id"]}
        async with container.sessions() as session:
            gu = await session.get(Conversation, old["conversation_id"])
            handoff = await session.get(ConversationHandoff, old["conversation_id"])
            gu_message = await session.get(Message, old["message_id"])
        assert gu.handoff_state.value == "pending_human" and handoff.reason == "bot_unavailable"
        assert gu_message.turn_state is TurnState.handed_off
        assert (await redriver.redrive_once()).outcomes == {}  # nothing left pending


async def test_a_lost_lock_ends_the_turn_in_a_503_and_never_interleaves(schema_settings, token) -> None:
    """The lock's connection killed mid-turn: the reply cannot be written, the message stays and is re-drivable."""
    bot = SlowBot(delay=1.0)
    async with app_client(schema_settings, bot) as (app, client):
        first = (await post(client, token("ha"), "ha", "hello")).json()
        cid = first["conversation_id"]
        turn = asyncio.create_task(post(client, token("ha"), "ha", "slow one", cid, client_message_id="s-1"))
        await asyncio.sleep(0.5)
        with psycopg.connect(plain_dsn(POSTGRES_URL), autocommit=True) as admin:
            killed = admin.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_locks WHERE locktype = 'advisory' AND objid = "
                "(SELECT hashtext(%s)::oid) AND granted",
                (cid,),
            ).fetchall()
        assert killed == [(True,)]
        response = await turn
        assert response.status_code == 503 and response.json()["code"] == "database_unavailable"
        assert isinstance(response.json()["message_id"], int)

        retry = await post(client, token("ha"), "ha", "slow one", cid, client_message_id="s-1")
        assert retry.status_code == 200 and retry.json()["message_id"] == response.json()["message_id"]
        rows = await stored(app, cid)
    assert [(m.sender, m.text) for m in rows] == [
        (Sender.user, "hello"),
        (Sender.bot, "echo: hello"),
        (Sender.bot, "pick one"),
        (Sender.user, "slow one"),
        (Sender.bot, "echo: slow one"),
        (Sender.bot, "pick one"),
    ]


async def test_a_message_behind_a_turn_that_outlasts_the_wait_gets_a_clear_503(schema_settings, token) -> None:
    settings = schema_settings.model_copy(update={"conversation_lock_wait": 0.3})
    bot = SlowBot()
    async with app_client(settings, bot) as (app, client):
        cid = (await post(client, token("io"), "io", "hello")).json()["conversation_id"]
        bot.delay = 1.5
        slow = asyncio.create_task(post(client, token("io"), "io", "slow", cid))
        await asyncio.sleep(0.2)
        busy = await post(client, token("io"), "io", "me too", cid)
        assert busy.status_code == 503
        assert busy.json()["code"] == "conversation_busy" and busy.headers["Retry-After"] == "5"
        assert (await slow).status_code == 200
        texts = [m.text for m in await stored(app, cid) if m.sender is Sender.user]
    assert texts == ["hello", "slow"]  # the refused message was not stored: the client retries it


def test_sqlite_refuses_more_than_one_api_worker(tmp_path) -> None:
    with pytest.raises(ValueError, match="API_WORKERS > 1 needs PostgreSQL"):
        Settings(_env_file=None, database_url=f"sqlite+aiosqlite:///{tmp_path}/x.db", api_workers=2)
    assert Settings(_env_file=None, database_url=POSTGRES_URL, api_workers=4).api_workers == 4


async def test_readiness_reports_redis_without_gating_on_it(schema_settings) -> None:
    settings = schema_settings.model_copy(update={"redis_url": "redis://127.0.0.1:1/0"})
    app = create_app(settings, bot=SlowBot())
    transport = httpx.ASGITransport(app=app)
    async with app.router.lifespan_context(app), httpx.AsyncClient(transport=transport, base_url="http://x") as client:
        ready = await client.get("/readyz")
    assert ready.status_code == 200
    assert ready.json()["checks"]["redis"].startswith("error: ")
    assert ready.json()["checks"]["database"] == "ok"


async def test_a_redis_error_that_escapes_is_a_json_503_not_a_plain_500(schema_settings) -> None:
    from fastapi import APIRouter
    from redis.exceptions import ConnectionError as RedisConnectionError

    app = create_app(schema_settings, bot=SlowBot())
    probe = APIRouter()

    @probe.get("/redis-probe")
    async def redis_probe() -> None:
        raise RedisConnectionError("Connection refused")

    app.include_router(probe)
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with app.router.lifespan_context(app), httpx.AsyncClient(transport=transport, base_url="http://x") as client:
        response = await client.get("/redis-probe")
    assert response.status_code == 503 and response.headers["Retry-After"] == "5"
    assert response.json()["code"] == "redis_unavailable"
