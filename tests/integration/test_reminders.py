"""Appointment reminders against PostgreSQL and the Graph API stand-in, with an injectable clock.

Two schedulers (two containers: their own engines, Graph clients and owner tokens, as two API
replicas) share a schema; each reminder goes out once, at its time, as the registry's utility
template. A scheduler process killed with SIGKILL while the Graph API holds its request, then
started again, sends nothing twice.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from prometheus_client import REGISTRY
from sqlalchemy import select

from connectors.whatsapp.store import upsert_contact
from conversation_api.bot import WorkflowOutcome
from conversation_api.container import Container, build_container
from conversation_api.conversations.models import Conversation, Message
from conversation_api.db import utcnow
from conversation_api.reminders import service as reminders
from conversation_api.reminders.models import AppointmentReminder
from conversation_api.reminders.scheduler import ReminderScheduler
from conversation_api.reminders.service import ReminderPolicy
from conversation_api.settings import Settings
from tests.support.database import migrated_schema
from tests.support.fake_graph import FakeGraph
from tests.support.stack import ROOT, database_env
from tests.support.whatsapp import (
    new_wa_id,
    reminder_graph,
    wait_until,
    whatsapp_env,
    whatsapp_settings,
    write_reminder_templates,
)

LONDON = ZoneInfo("Europe/London")
POLICY = ReminderPolicy(lead=timedelta(hours=24), quiet=(time(21), time(8)), tz=LONDON)


def local(day: int, hour: int, minute: int = 0, second: int = 0) -> datetime:
    return datetime(2026, 12, day, hour, minute, second, tzinfo=LONDON)


@dataclass
class Clock:
    now: datetime

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture(scope="module")
def schema() -> Iterator[Settings]:
    # Its own schema: a pass takes every due reminder, so no other test's rows may be in it.
    with migrated_schema() as settings:
        yield settings


@pytest.fixture(scope="module")
def graph() -> Iterator[FakeGraph]:
    fake = reminder_graph()
    yield fake
    fake.stop()


@pytest.fixture(scope="module")
def templates_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_reminder_templates(tmp_path_factory.mktemp("reminders"))


@pytest.fixture
def settings(schema: Settings, graph: FakeGraph, templates_file: Path) -> Settings:
    return whatsapp_settings(schema, graph, whatsapp_templates_file=str(templates_file))


@dataclass
class Replica:
    container: Container
    scheduler: ReminderScheduler


@pytest.fixture
async def replicas(settings: Settings) -> AsyncIterator[tuple[Replica, Replica, Clock]]:
    clock = Clock(local(8, 12))
    made: list[Replica] = []
    for _ in range(2):
        container = build_container(settings)
        scheduler = ReminderScheduler(
            sessions=container.sessions,
            uow=container.uow,
            channels=container.channels,
            policy=POLICY,
            template="appointment_reminder",
            customer_spacing=6,
            lease_seconds=60,
            clock=clock,
        )
        made.append(Replica(container, scheduler))
    try:
        yield made[0], made[1], clock
    finally:
        for replica in made:
            await replica.container.aclose()


async def customer(container: Container, wa_id: str) -> Conversation:
    """A WhatsApp customer with a conversation, as the connector leaves one after their first message."""
    async with container.sessions() as session, session.begin():
        await upsert_contact(session=session, wa_id=wa_id, profile_name="Maria", last_inbound_at=utcnow())
    conversation = await container.gateway.open_conversation(
        user_id=f"whatsapp:{wa_id}", channel="whatsapp", conversation_id=None
    )
    return conversation


async def outcome(
    container: Container,
    conversation: Conversation,
    kind: str,
    appointment_id: str,
    start: datetime | None,
    now: datetime,
) -> None:
    """The bot reported an appointment outcome: recorded as the gateway records a turn's, under the lock."""
    workflow = {"appointment.booked": "booking", "appointment.rescheduled": "reschedule"}.get(
        kind, "cancel_appointment"
    )
    data = {"appointment_id": appointment_id, "service": "haircut", "staff": "Sam"}
    if start is not None:
        data["start"] = start.isoformat()
    async with container.uow.conversation(conversation.id) as work, work.transaction() as session:
        await reminders.apply_outcomes(
            session,
            conversation=conversation,
            outcomes=[WorkflowOutcome(type=kind, workflow=workflow, success=True, data=data)],
            policy=POLICY,
            now=now,
        )


async def reminder(container: Container, appointment_id: str) -> AppointmentReminder:
    async with container.sessions() as session:
        row = await session.scalar(
            select(AppointmentReminder).where(AppointmentReminder.appointment_id == appointment_id)
        )
    assert row is not None
    return row


def templates_to(graph: FakeGraph, wa_id: str) -> list[dict]:
    return [r.body for r in graph.attempts(wa_id) if r.body and r.body.get("type") == "template"]


async def test_two_replicas_send_each_reminder_once_at_its_time(
    replicas: tuple[Replica, Replica, Clock], graph: FakeGraph
) -> None:
    a, b, clock = replicas
    customers = [new_wa_id() for _ in range(8)]
    for n, wa_id in enumerate(customers):
        conversation = await customer(a.container, wa_id)
        await outcome(a.container, conversation, "appointment.booked", f"APT-two-{n}", local(10, 11), now=clock.now)
    assert (await reminder(a.container, "APT-two-0")).due_at == local(9, 11)

    clock.now = local(9, 10, 59)  # a minute early: nothing
    assert await a.scheduler.run_once() == {} and await b.scheduler.run_once() == {}
    assert all(templates_to(graph, wa_id) == [] for wa_id in customers)

    clock.now = local(9, 11, 0, 1)
    sent_before = counted("sent")
    tallies = await asyncio.gather(a.scheduler.run_once(), b.scheduler.run_once())
    assert sum(t.get("sent", 0) for t in tallies) == 8
    assert counted("sent") - sent_before == 8
    clock.now = local(9, 11, 30)  # later passes find nothing left to send
    assert await a.scheduler.run_once() == {} and await b.scheduler.run_once() == {}

    for n, wa_id in enumerate(customers):
        [sent] = templates_to(graph, wa_id)
        assert sent["template"]["name"] == "appointment_reminder"
        body = next(c for c in sent["template"]["components"] if c["type"] == "body")
        assert [p["text"] for p in body["parameters"]] == ["haircut", "Thursday 10 December", "11:00"]
        buttons = [c for c in sent["template"]["components"] if c["type"] == "button"]
        assert [b["parameters"][0]["payload"] for b in buttons] == [
            "/affirm",
            "/reschedule_appointment",
            "/cancel_appointment",
        ]
        row = await reminder(a.container, f"APT-two-{n}")
        assert row.state == "sent" and row.sent_at == local(9, 11, 0, 1) and row.message_id is not None
        async with a.container.sessions() as session:
            message = await session.get(Message, row.message_id)
        assert message is not None and message.text.startswith("Reminder: your haircut on Thursday 10 December")
        assert message.payload["reminder"] == {"id": row.id, "appointment_id": f"APT-two-{n}"}


def counted(outcome: str) -> float:
    return REGISTRY.get_sample_value("reviewbot_appointment_reminders_total", {"outcome": outcome}) or 0.0


async def test_on_sqlite_two_schedulers_of_one_process_send_once(
    sqlite_db_settings: Settings, graph: FakeGraph, templates_file: Path
) -> None:
    container = build_container(
        whatsapp_settings(sqlite_db_settings, graph, whatsapp_templates_file=str(templates_file))
    )
    clock = Clock(local(8, 12))

    def scheduler() -> ReminderScheduler:
        return ReminderScheduler(
            sessions=container.sessions,
            uow=container.uow,
            channels=container.channels,
            policy=POLICY,
            template="appointment_reminder",
            clock=clock,
        )

    try:
        first, second = scheduler(), scheduler()
        wa_id = new_wa_id()
        conversation = await customer(container, wa_id)
        await outcome(container, conversation, "appointment.booked", "APT-lite", local(10, 11), now=clock.now)
        clock.now = local(9, 11, 0, 1)
        tallies = await asyncio.gather(first.run_once(), second.run_once())
        assert sum(t.get("sent", 0) for t in tallies) == 1
        assert len(templates_to(graph, wa_id)) == 1
        assert (await reminder(container, "APT-lite")).state == "sent"
    finally:
        await container.aclose()


async def test_quiet_hours_hold_reminders_until_they_end(
    replicas: tuple[Replica, Replica, Clock], graph: FakeGraph
) -> None:
    a, _, clock = replicas
    wa_id = new_wa_id()
    conversation = await customer(a.container, wa_id)
    await outcome(a.container, conversation, "appointment.booked", "APT-quiet", local(12, 11), now=local(9, 12))
    clock.now = local(11, 22)  # due at 11:00, but the schedulers were down until the evening
    assert await a.scheduler.run_once() == {}
    clock.now = local(12, 7, 59)
    assert await a.scheduler.run_once() == {}
    assert templates_to(graph, wa_id) == []
    clock.now = local(12, 8)
    assert await a.scheduler.run_once() == {"sent": 1}
    assert len(templates_to(graph, wa_id)) == 1


async def test_one_customer_gets_no_two_reminders_within_six_seconds(
    replicas: tuple[Replica, Replica, Clock], graph: FakeGraph
) -> None:
    a, b, clock = replicas
    wa_id = new_wa_id()
    conversation = await customer(a.container, wa_id)
    await outcome(a.container, conversation, "appointment.booked", "APT-pace-1", local(15, 11), now=clock.now)
    await outcome(a.container, conversation, "appointment.booked", "APT-pace-2", local(15, 11), now=clock.now)
    clock.now = local(14, 11, 0, 0)
    tallies = await asyncio.gather(a.scheduler.run_once(), b.scheduler.run_once())
    assert sum(t.get("sent", 0) for t in tallies) == 1 and sum(t.get("deferred", 0) for t in tallies) == 1
    clock.now = local(14, 11, 0, 3)
    assert await a.scheduler.run_once() == {} and await b.scheduler.run_once() == {}
    clock.now = local(14, 11, 0, 7)
    assert await b.scheduler.run_once() == {"sent": 1}
    assert len(templates_to(graph, wa_id)) == 2
    assert {(await reminder(a.container, f"APT-pace-{n}")).state for n in (1, 2)} == {"sent"}


async def test_a_rescheduled_appointment_moves_its_reminder_and_a_cancelled_one_drops_it(
    replicas: tuple[Replica, Replica, Clock], graph: FakeGraph
) -> None:
    a, _, clock = replicas
    wa_id = new_wa_id()
    conversation = await customer(a.container, wa_id)
    await outcome(a.container, conversation, "appointment.booked", "APT-move", local(17, 11), now=local(9, 12))
    await outcome(a.container, conversation, "appointment.booked", "APT-drop", local(17, 15), now=local(9, 12))
    await outcome(a.container, conversation, "appointment.rescheduled", "APT-move", local(18, 16), now=local(10, 9))
    await outcome(a.container, conversation, "appointment.cancelled", "APT-drop", None, now=local(10, 9))
    moved, dropped = await reminder(a.container, "APT-move"), await reminder(a.container, "APT-drop")
    assert (moved.state, moved.due_at) == ("scheduled", local(17, 16))
    assert dropped.state == "cancelled"

    clock.now = local(16, 15, 30)  # both old due times have passed
    assert await a.scheduler.run_once() == {}
    assert templates_to(graph, wa_id) == []
    clock.now = local(17, 16)
    assert await a.scheduler.run_once() == {"sent": 1}
    [sent] = templates_to(graph, wa_id)
    body = next(c for c in sent["template"]["components"] if c["type"] == "body")
    assert [p["text"] for p in body["parameters"]] == ["haircut", "Friday 18 December", "16:00"]


async def test_an_opted_out_customer_gets_no_reminder(
    replicas: tuple[Replica, Replica, Clock], graph: FakeGraph
) -> None:
    from connectors.whatsapp.consent import Source
    from connectors.whatsapp.consent import record as record_consent
    from connectors.whatsapp.models import ConsentScope

    a, _, clock = replicas
    wa_id = new_wa_id()
    conversation = await customer(a.container, wa_id)
    await outcome(a.container, conversation, "appointment.booked", "APT-stop", local(21, 11), now=local(9, 12))
    async with a.container.sessions() as session, session.begin():
        await record_consent(
            session=session,
            wa_id=wa_id,
            action="opt_out",
            scope=ConsentScope.all,
            source=Source.keyword,
            reference="wamid.stop-1",
            at=utcnow(),
            detail="STOP",
        )
    clock.now = local(20, 11)
    assert await a.scheduler.run_once() == {"failed": 1}
    row = await reminder(a.container, "APT-stop")
    assert row.state == "failed" and "customer_opted_out" in (row.last_error or "")
    assert templates_to(graph, wa_id) == []


def scheduler_process(settings: Settings, graph: FakeGraph, templates_file: Path, log: Path) -> subprocess.Popen:
    env = {
        **os.environ,
        **database_env(settings),
        **whatsapp_env(graph),
        "ENVIRONMENT": "test",
        "JWT_SECRET": settings.jwt_secret,
        "REDIS_URL": "",
        "WHATSAPP_TEMPLATES_FILE": str(templates_file),
        "WHATSAPP_SEND_TIMEOUT": "60",
        "REMINDER_QUIET_HOURS": "",  # the real clock may be at night
        "REMINDER_POLL_SECONDS": "0.2",
        "REMINDER_LEASE_SECONDS": "2",
    }
    return subprocess.Popen(
        [sys.executable, "-m", "conversation_api.reminders", "run"],
        cwd=ROOT,
        env=env,
        stdout=log.open("ab"),
        stderr=subprocess.STDOUT,
    )


async def test_a_scheduler_killed_mid_send_and_restarted_sends_no_duplicate(
    settings: Settings, graph: FakeGraph, templates_file: Path, tmp_path: Path
) -> None:
    container = build_container(settings)
    log = tmp_path / "scheduler.log"
    processes: list[subprocess.Popen] = []
    try:
        first, second = new_wa_id(), new_wa_id()
        now = datetime.now(UTC)
        conversation = await customer(container, first)
        # Due 30 s ago (booked a minute ago for a day minus 30 s ahead).
        start = now + timedelta(hours=24) - timedelta(seconds=30)
        await outcome(
            container, conversation, "appointment.booked", "APT-kill-1", start, now=now - timedelta(minutes=1)
        )
        graph.time_out_next(delay=120)  # WhatsApp holds the request: the process dies in the middle of it

        processes.append(scheduler_process(settings, graph, templates_file, log))
        wait_until(lambda: templates_to_any(graph, first), within=60)
        assert (await reminder(container, "APT-kill-1")).state == "sending"
        processes[0].send_signal(signal.SIGKILL)
        processes[0].wait(timeout=10)

        processes.append(scheduler_process(settings, graph, templates_file, log))
        other = await customer(container, second)
        await outcome(container, other, "appointment.booked", "APT-kill-2", start, now=now - timedelta(minutes=1))
        # The restarted scheduler works: it sends the other customer's reminder ...
        wait_until(lambda: templates_to(graph, second), within=60)
        for _ in range(50):
            if (await reminder(container, "APT-kill-1")).state == "interrupted":
                break
            await asyncio.sleep(0.1)
        row = await reminder(container, "APT-kill-1")
        # ... and not the one it may already have sent.
        assert row.state == "interrupted", log.read_text()[-3000:]
        assert "never sent twice" in (row.last_error or "")
        assert len(templates_to_any(graph, first)) == 1
        assert (await reminder(container, "APT-kill-2")).state == "sent"
    finally:
        for process in processes:
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
                process.wait(timeout=20)
        await container.aclose()


def templates_to_any(graph: FakeGraph, wa_id: str) -> list[dict]:
    """Template requests to `wa_id`, answered or not (one still held counts)."""
    return [r.body for r in graph.attempts(wa_id) if r.body and r.body.get("type") == "template"]
