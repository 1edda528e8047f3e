"""The WhatsApp queues that end: contacts under concurrent first deliveries, leases, attempts, dead rows, re-drive.

Runs on the real PostgreSQL (and SQLite where the behaviour is not PostgreSQL's own) with the fake Graph API.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
import pytest
from prometheus_client import REGISTRY
from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from connectors.whatsapp.bootstrap import WhatsAppConnector, build_whatsapp
from connectors.whatsapp.dead_letters import redrive
from connectors.whatsapp.models import WhatsAppContact, WhatsAppInbound, WhatsAppOutbound
from connectors.whatsapp.outbound import as_utc
from connectors.whatsapp.payloads import parse_notification
from connectors.whatsapp.store import store_notification, user_id_for
from connectors.whatsapp.worker import LEASE_EXPIRED
from conversation_api.bot import BotTurn
from conversation_api.container import Container, build_container
from conversation_api.db import create_engine, create_session_factory, utcnow
from conversation_api.locks import InProcessLocks
from conversation_api.settings import Settings
from tests.support.events import app_client, fresh_database
from tests.support.fake_graph import FakeGraph
from tests.support.fakes import FakeBot
from tests.support.processes import ROOT
from tests.support.whatsapp import WEBHOOK, eventually, new_wa_id, new_wamid, signed, text_payload, whatsapp_settings


@pytest.fixture(params=["postgresql", "sqlite"])
def own_db(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Settings]:
    """A database of the test's own: the workers here claim whatever is due, so nothing else may be queued."""
    with fresh_database(request.param, tmp_path) as settings:
        yield settings


def metric(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


class PoisonBot(FakeBot):
    """A bot adapter with a bug: a message starting "poison" makes it raise (not a bot outage)."""

    poisoned = True

    async def send(self, *, sender_id: str, text: str, metadata: dict[str, Any]) -> BotTurn:
        if self.poisoned and text.startswith("poison"):
            self.calls.append({"sender_id": sender_id, "text": text, "metadata": metadata})
            raise RuntimeError("the adapter chokes on this message")
        return await super().send(sender_id=sender_id, text=text, metadata=metadata)


class SlowBot(FakeBot):
    """Takes `delay` seconds for every turn (a slow Rasa)."""

    def __init__(self, delay: float) -> None:
        super().__init__()
        self.delay = delay

    async def send(self, *, sender_id: str, text: str, metadata: dict[str, Any]) -> BotTurn:
        await asyncio.sleep(self.delay)
        return await super().send(sender_id=sender_id, text=text, metadata=metadata)


async def inbound(sessions: async_sessionmaker[AsyncSession], wamid: str) -> WhatsAppInbound:
    async with sessions() as session:
        row = await session.scalar(select(WhatsAppInbound).where(WhatsAppInbound.wamid == wamid))
    assert row is not None
    return row


async def in_state(sessions: async_sessionmaker[AsyncSession], wamid: str, state: str) -> WhatsAppInbound | None:
    row = await inbound(sessions, wamid)
    return row if row.state == state else None


async def queue(connector: WhatsAppConnector, wa_id: str, text: str) -> str:
    wamid = new_wamid()
    await connector.accept(parse_notification(orjson.dumps(text_payload(wa_id, text, wamid=wamid))))
    return wamid


@pytest.fixture
async def idle(own_db: Settings, fake_graph: FakeGraph) -> AsyncIterator[tuple[Settings, Container]]:
    """The API's components with nothing started: the tests drive workers by hand (`claim`, `process`)."""
    settings = whatsapp_settings(own_db, fake_graph, whatsapp_lease_seconds=0.3, whatsapp_max_attempts=3)
    container = build_container(settings, bot=FakeBot())
    try:
        yield settings, container
    finally:
        await container.aclose()


def replica(settings: Settings, container: Container, **locks: Any) -> WhatsAppConnector:
    """Another worker on the same database, as on another API replica."""
    return build_whatsapp(
        settings, sessions=container.sessions, gateway=container.gateway, locks=locks.get("locks", container.locks)
    )


async def test_concurrent_first_deliveries_of_new_customers_merge_into_one_contact(own_pg: Settings) -> None:
    # Meta redelivers a new customer's first message while the first delivery is still being stored.
    # Each customer's deliveries start together on their own connections, so the two unique
    # indexes of whatsapp_contact (wa_id, user_id) see concurrent inserts of the same contact.
    # (PostgreSQL only: SQLite has one writer at a time.) The upsert that raised failed this 10 runs in 10.
    engine = create_engine(own_pg)
    sessions = create_session_factory(engine)
    customers = [(new_wa_id(), new_wamid()) for _ in range(60)]
    deliveries = 8

    async def deliver(wa_id: str, wamid: str, start: asyncio.Event) -> int:
        notification = parse_notification(orjson.dumps(text_payload(wa_id, "first ever", wamid=wamid)))
        await start.wait()
        async with sessions() as session, session.begin():
            result = await store_notification(session=session, notification=notification)
        return len(result.new_messages)

    try:
        for wa_id, wamid in customers:
            start = asyncio.Event()
            tasks = [asyncio.create_task(deliver(wa_id, wamid, start)) for _ in range(deliveries)]
            await asyncio.sleep(0.02)  # every delivery has its connection and waits at the line
            start.set()
            new = await asyncio.gather(*tasks)
            assert sorted(new) == [0] * (deliveries - 1) + [1]
        async with sessions() as session:
            ids = [wa_id for wa_id, _ in customers]
            contacts = (await session.scalars(select(WhatsAppContact).where(WhatsAppContact.wa_id.in_(ids)))).all()
            queued = await session.scalar(
                select(func.count()).where(WhatsAppInbound.wamid.in_([wamid for _, wamid in customers]))
            )
        assert sorted((c.wa_id, c.user_id, c.profile_name) for c in contacts) == sorted(
            (wa_id, user_id_for(wa_id), "Maria Lopez") for wa_id in ids
        )
        assert queued == len(customers)
    finally:
        await engine.dispose()


async def test_a_worker_whose_lease_was_taken_over_cannot_flip_the_row(idle: tuple[Settings, Container]) -> None:
    settings, container = idle
    first, second = replica(settings, container), replica(settings, container)
    bot = container.bot
    assert isinstance(bot, FakeBot)
    try:
        wamid = await queue(first, new_wa_id(), "hello")
        [stale] = await first.worker.claim(10)
        await asyncio.sleep(0.4)  # its worker is not running, so nobody renews the lease: it runs out
        [taken] = await second.worker.claim(10)
        assert taken.lease_owner != stale.lease_owner
        assert (taken.attempts, taken.failed_attempts) == (2, 1)  # the lease that ran out counts as a failure
        held = await inbound(container.sessions, wamid)

        # The first worker wakes up and carries on with its copy; its bot call fails. Its retry must
        # neither release the second worker's lease nor push the message back.
        bot.fail = True
        def stale_outcomes() -> float:
            return sum(metric("whatsapp_inbound_stale_outcomes_total", outcome=o) for o in ("retry", "done"))

        before = stale_outcomes()
        await first.worker.process(stale)
        meanwhile = await inbound(container.sessions, wamid)
        assert (meanwhile.state, meanwhile.lease_owner, meanwhile.locked_until, meanwhile.next_attempt_at) == (
            "pending",
            taken.lease_owner,
            held.locked_until,
            held.next_attempt_at,
        )
        assert (meanwhile.failed_attempts, meanwhile.last_error) == (1, None)

        bot.fail = False
        await second.worker.process(taken)
        done = await inbound(container.sessions, wamid)
        assert done.state == "done" and done.message_id is not None

        # Once more, after the message was answered: without the checks this would queue it again.
        # (The gateway now answers the repeat from the store, so the stale worker tries to mark it done.)
        bot.fail = True
        await first.worker.process(stale)
        after = await inbound(container.sessions, wamid)
        assert (after.state, after.message_id, after.processed_at, after.lease_owner, after.last_error) == (
            "done",
            done.message_id,
            done.processed_at,
            None,
            None,
        )
        assert stale_outcomes() == before + 2
        assert await first.worker.claim(10) == []  # and nothing is queued again
    finally:
        await first.aclose()
        await second.aclose()


async def test_a_message_whose_lease_keeps_running_out_goes_dead(idle: tuple[Settings, Container]) -> None:
    settings, container = idle
    connector = replica(settings, container)
    try:
        wamid = await queue(connector, new_wa_id(), "I hang the worker")
        before = metric("whatsapp_inbound_dead_letters_total", reason="lease_expired")
        for attempt in (1, 2, 3):  # WHATSAPP_MAX_ATTEMPTS=3 claims, each abandoned (a crash, a hang)
            [row] = await connector.worker.claim(10)
            assert (row.attempts, row.failed_attempts) == (attempt, attempt - 1)
            await asyncio.sleep(0.35)
        assert await connector.worker.claim(10) == []
        dead = await inbound(container.sessions, wamid)
        assert (dead.state, dead.failed_attempts, dead.last_error, dead.lease_owner) == ("dead", 3, LEASE_EXPIRED, None)
        assert metric("whatsapp_inbound_dead_letters_total", reason="lease_expired") == before + 1
        assert metric("whatsapp_inbound_dead") == 1
    finally:
        await connector.aclose()


async def test_a_message_that_always_fails_goes_dead_after_n_attempts_and_is_re_driven(
    own_db: Settings, fake_graph: FakeGraph
) -> None:
    bot = PoisonBot()
    settings = whatsapp_settings(
        own_db, fake_graph, whatsapp_max_attempts=3, whatsapp_retry_base_seconds=0.05, whatsapp_retry_max_seconds=0.1
    )
    before = metric("whatsapp_inbound_dead_letters_total", reason="error")
    async with app_client(settings, bot=bot) as (app, http):
        sessions = app.state.container.sessions
        wa_id, wamid = new_wa_id(), new_wamid()
        body, headers = signed(text_payload(wa_id, "poison pill", wamid=wamid))
        assert (await http.post(WEBHOOK, content=body, headers=headers)).status_code == 200

        dead = await eventually(lambda: in_state(sessions, wamid, "dead"))
        assert (dead.attempts, dead.failed_attempts) == (3, 3)
        assert dead.last_error.startswith("RuntimeError: the adapter chokes")
        assert metric("whatsapp_inbound_dead_letters_total", reason="error") == before + 1
        await eventually(lambda: _async(metric("whatsapp_inbound_dead") == 1))
        await asyncio.sleep(0.5)
        assert [c["text"] for c in bot.calls] == ["poison pill"] * 3  # no fourth try: it stays dead
        assert fake_graph.sends(wa_id) == []

        bot.poisoned = False  # the adapter is fixed; the operator re-drives the message
        async with sessions() as session, session.begin():
            assert await redrive(session=session, wamids=[wamid]) == [wamid]
        done = await eventually(lambda: in_state(sessions, wamid, "done"))
        assert (done.attempts, done.failed_attempts) == (4, 0)
        await eventually(lambda: _async(fake_graph.texts(wa_id) == ["echo: poison pill", "pick one"]))
        await eventually(lambda: _async(metric("whatsapp_inbound_dead") == 0))


async def test_the_lease_is_renewed_while_a_slow_turn_runs(own_db: Settings, fake_graph: FakeGraph) -> None:
    # Three leases long. A lease of 0.3 s (renewed every 0.1 s) ran out once in CI on SQLite while
    # the loaded machine stalled the renewal; 1 s leaves room for that and still needs renewing.
    bot = SlowBot(delay=3.0)
    settings = whatsapp_settings(own_db, fake_graph, whatsapp_lease_seconds=1.0)
    async with app_client(settings, bot=bot) as (app, http):
        container: Container = app.state.container
        # Another replica's worker takes any message whose lease runs out.
        rival = replica(settings, container, locks=InProcessLocks())
        await rival.start()
        try:
            wa_id, wamid = new_wa_id(), new_wamid()
            body, headers = signed(text_payload(wa_id, "take your time", wamid=wamid))
            assert (await http.post(WEBHOOK, content=body, headers=headers)).status_code == 200
            await asyncio.sleep(2.0)  # two leases into the turn
            during = await inbound(container.sessions, wamid)
            assert during.state == "pending" and during.attempts == 1
            assert during.locked_until is not None and _utc(during.locked_until) > utcnow()
            done = await eventually(lambda: in_state(container.sessions, wamid, "done"))
            assert (done.attempts, done.failed_attempts) == (1, 0)
            assert [c["text"] for c in bot.calls] == ["take your time"]
            await eventually(lambda: _async(len(fake_graph.sends(wa_id)) == 2))
        finally:
            await rival.aclose()


@pytest.fixture
def own_pg(tmp_path: Path) -> Iterator[Settings]:
    with fresh_database("postgresql", tmp_path) as settings:
        yield settings


async def test_the_cli_lists_dead_messages_and_re_drives_them(own_pg: Settings, fake_graph: FakeGraph) -> None:
    settings = whatsapp_settings(own_pg, fake_graph)
    container = build_container(settings, bot=FakeBot())
    try:
        connector = replica(settings, container)
        wamid = await queue(connector, new_wa_id(), "lost in the queue")
        await connector.aclose()
        async with container.sessions() as session, session.begin():
            await session.execute(
                update(WhatsAppInbound)
                .where(WhatsAppInbound.wamid == wamid)
                .values(state="dead", attempts=8, failed_attempts=8, last_error="boom")
            )
        env = {**os.environ, "DATABASE_URL": own_pg.database_url, "DATABASE_SCHEMA": own_pg.database_schema or ""}

        def cli(*args: str) -> subprocess.CompletedProcess[str]:
            command = [sys.executable, "-m", "connectors.whatsapp", *args]
            return subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)

        listed = cli("dead")
        assert listed.returncode == 0, listed.stderr
        [line] = [json.loads(line) for line in listed.stdout.splitlines()]
        assert (line["wamid"], line["failed_attempts"], line["last_error"]) == (wamid, 8, "boom")
        assert cli("redrive").returncode == 2  # neither wamids nor --all
        assert cli("redrive", "wamid.UNKNOWN").returncode == 1
        again = cli("redrive", "--all")
        assert again.returncode == 0, again.stderr
        assert again.stdout.split() == [wamid]
        row = await inbound(container.sessions, wamid)
        assert (row.state, row.failed_attempts, row.lease_owner) == ("pending", 0, None)
        assert _utc(row.next_attempt_at) <= utcnow() + timedelta(seconds=1)
        assert cli("dead").stdout == ""
    finally:
        await container.aclose()


async def _async(value: Any) -> Any:
    return value


def _utc(moment: datetime) -> datetime:
    return as_utc(moment)


async def outbound_rows(sessions: async_sessionmaker[AsyncSession], wa_id: str) -> list[WhatsAppOutbound]:
    async with sessions() as session:
        rows = await session.scalars(
            select(WhatsAppOutbound).where(WhatsAppOutbound.wa_id == wa_id).order_by(WhatsAppOutbound.id)
        )
        return list(rows)


async def test_a_reply_the_graph_api_kept_failing_on_is_sent_again_in_order(
    own_db: Settings, fake_graph: FakeGraph
) -> None:
    bot = FakeBot()
    settings = whatsapp_settings(
        own_db, fake_graph, whatsapp_send_attempts=2, whatsapp_retry_base_seconds=0.05, whatsapp_retry_max_seconds=0.1
    )
    async with app_client(settings, bot=bot) as (app, http):
        sessions = app.state.container.sessions
        # The first attempt's requests (mark-as-read and the first reply, two tries each) are throttled.
        fake_graph.fail_next(130429, times=4)
        wa_id, wamid = new_wa_id(), new_wamid()
        body, headers = signed(text_payload(wa_id, "hi", wamid=wamid))
        assert (await http.post(WEBHOOK, content=body, headers=headers)).status_code == 200
        done = await eventually(lambda: in_state(sessions, wamid, "done"))
        assert (done.attempts, done.failed_attempts) == (2, 1)
        assert fake_graph.texts(wa_id) == ["echo: hi", "pick one"]  # the first reply first, each once
        rows = await outbound_rows(sessions, wa_id)
        assert [(r.status, r.wamid is not None, r.error_code) for r in rows] == [
            ("accepted", True, None),  # sent again in its own row
            ("accepted", True, None),
        ]
        assert [c["text"] for c in bot.calls] == ["hi"]  # the bot was not asked again


async def test_replies_that_never_go_out_leave_the_message_dead_until_re_driven(
    own_db: Settings, fake_graph: FakeGraph
) -> None:
    settings = whatsapp_settings(
        own_db,
        fake_graph,
        whatsapp_send_attempts=1,
        whatsapp_max_attempts=2,
        whatsapp_retry_base_seconds=0.05,
        whatsapp_retry_max_seconds=0.1,
    )
    async with app_client(settings, bot=FakeBot()) as (app, http):
        sessions = app.state.container.sessions
        fake_graph.fail_next(130429, times=3)  # mark-as-read and the reply, then the reply again: two attempts
        wa_id, wamid = new_wa_id(), new_wamid()
        body, headers = signed(text_payload(wa_id, "hello?", wamid=wamid))
        assert (await http.post(WEBHOOK, content=body, headers=headers)).status_code == 200
        dead = await eventually(lambda: in_state(sessions, wamid, "dead"))
        assert dead.failed_attempts == 2 and "not delivered" in (dead.last_error or "")
        [pending] = await outbound_rows(sessions, wa_id)
        assert (pending.status, pending.wamid, pending.error_code) == ("pending", None, 130429)
        assert fake_graph.texts(wa_id) == []

        async with sessions() as session, session.begin():
            assert await redrive(session=session, wamids=None) == [wamid]
        await eventually(lambda: in_state(sessions, wamid, "done"))
        assert fake_graph.texts(wa_id) == ["echo: hello?", "pick one"]
        assert [r.status for r in await outbound_rows(sessions, wa_id)] == ["accepted", "accepted"]
