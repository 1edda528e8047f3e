"""Appointment reminders end to end: a WhatsApp customer books through the real Rasa and action
server (the API as a server process, the Graph API stand-in), two schedulers in this process on an
injectable clock send each reminder once at its time, and the reminder's buttons land in the bot's
flows for that appointment."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import psycopg
import pytest

from conversation_api.container import Container, build_container
from conversation_api.reminders.scheduler import ReminderScheduler
from conversation_api.reminders.service import ReminderPolicy
from conversation_api.settings import Settings
from tests.support.database import POSTGRES_URL, plain_dsn
from tests.support.fake_graph import FakeGraph
from tests.support.stack import BotStack, api_server
from tests.support.whatsapp import (
    WEBHOOK,
    button_payload,
    new_wa_id,
    new_wamid,
    reminder_graph,
    signed,
    text_payload,
    wait_until,
    whatsapp_env,
    whatsapp_settings,
    write_reminder_templates,
)

pytestmark = pytest.mark.e2e

TZ = ZoneInfo("Europe/London")


@pytest.fixture(scope="module")
def graph() -> Iterator[FakeGraph]:
    fake = reminder_graph()
    yield fake
    fake.stop()


@pytest.fixture(scope="module")
def templates_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_reminder_templates(tmp_path_factory.mktemp("reminders-e2e"))


@pytest.fixture(scope="module")
def api(stack_settings: Settings, real_bot: BotStack, graph: FakeGraph, templates_file: Path) -> Iterator[str]:
    env = whatsapp_env(graph, WHATSAPP_TEMPLATES_FILE=str(templates_file), REMINDER_QUIET_HOURS="")
    with api_server(stack_settings, real_bot.rasa_url, extra_env=env) as server:
        yield server.url


def rows(settings: Settings, sql: str, *params: Any) -> list[tuple]:
    with psycopg.connect(plain_dsn(POSTGRES_URL), options=f"-csearch_path={settings.database_schema}") as conn:
        return conn.execute(sql, params).fetchall()


def open_weekdays(count: int) -> list[date]:
    """Tuesday-Friday dates at least two days ahead (open 09:00-19:00 in salon.yml)."""
    days, day = [], datetime.now(TZ).date() + timedelta(days=2)
    while len(days) < count:
        if day.weekday() in (1, 2, 3, 4):
            days.append(day)
        day += timedelta(days=1)
    return days


class WhatsAppCustomer:
    def __init__(self, api: str, graph: FakeGraph, settings: Settings) -> None:
        self.api, self.graph, self.settings = api, graph, settings
        self.wa_id = new_wa_id()

    def send(self, payload: dict[str, Any]) -> str:
        """Deliver a notification and return what the bot answered to it (every reply, joined)."""
        wamid = payload["entry"][0]["changes"][0]["value"]["messages"][0]["id"]
        before = len(self.graph.texts(self.wa_id))
        body, headers = signed(payload)
        assert httpx.post(f"{self.api}{WEBHOOK}", content=body, headers=headers, timeout=30).status_code == 200
        wait_until(lambda: rows(self.settings, "SELECT 1 FROM whatsapp_inbound WHERE wamid=%s AND state='done'", wamid))
        return "\n".join(self.graph.texts(self.wa_id)[before:])

    def say(self, text: str) -> str:
        return self.send(text_payload(self.wa_id, text, wamid=new_wamid()))

    def press(self, text: str, payload: str, *, on: str) -> str:
        """Tap a quick reply of the template message whose wamid is `on`."""
        message = button_payload(self.wa_id, text, payload)
        message["entry"][0]["changes"][0]["value"]["messages"][0]["context"]["id"] = on
        return self.send(message)

    def book(self, service: str, day: date, at: str, first: bool) -> str:
        assert "Which day" in self.say(f"I'd like to book a {service}")
        assert "What time" in self.say(f"{day.day}/{day.month}")
        answer = self.say(at)
        if first:
            assert "name" in answer.lower()
            assert "phone" in self.say("Maria Lopez").lower()
            answer = self.say("07700 900123")
        assert f"Shall I book a {service}" in answer, answer
        booked = self.say("yes")
        assert "You're booked" in booked, booked
        return booked


class Clock:
    def __init__(self) -> None:
        self.now = datetime.now(UTC)

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
async def schedulers(
    stack_settings: Settings, graph: FakeGraph, templates_file: Path
) -> AsyncIterator[tuple[ReminderScheduler, ReminderScheduler, Clock]]:
    settings = whatsapp_settings(stack_settings, graph, whatsapp_templates_file=str(templates_file))
    clock = Clock()
    containers: list[Container] = [build_container(settings) for _ in range(2)]
    policy = ReminderPolicy(lead=timedelta(hours=24), quiet=(time(21), time(8)), tz=TZ)
    made = [
        ReminderScheduler(
            sessions=c.sessions,
            uow=c.uow,
            channels=c.channels,
            policy=policy,
            template="appointment_reminder",
            clock=clock,
        )
        for c in containers
    ]
    try:
        yield made[0], made[1], clock
    finally:
        for container in containers:
            await container.aclose()


def templates_to(graph: FakeGraph, wa_id: str) -> list[dict[str, Any]]:
    return [b for b in graph.sends(wa_id) if b["type"] == "template"]


async def both(a: ReminderScheduler, b: ReminderScheduler) -> None:
    await asyncio.gather(a.run_once(), b.run_once())


async def test_a_booking_gets_one_reminder_at_its_time_and_its_buttons_reach_that_appointment(
    api: str,
    graph: FakeGraph,
    stack_settings: Settings,
    schedulers: tuple[ReminderScheduler, ReminderScheduler, Clock],
) -> None:
    a, b, clock = schedulers
    maria = WhatsAppCustomer(api, graph, stack_settings)
    first_day, second_day, new_day = open_weekdays(3)
    # Two bookings; the reminder answered below is of the later one (the flows' default is the soonest).
    await asyncio.to_thread(maria.book, "manicure", first_day, "10am", True)
    await asyncio.to_thread(maria.book, "haircut", second_day, "11am", False)

    booked = dict(
        rows(
            stack_settings,
            "SELECT service, id FROM biz_appointments WHERE customer_id = %s",
            f"whatsapp:{maria.wa_id}",
        )
    )
    reminders = {
        r[0]: r[1:]
        for r in rows(
            stack_settings,
            "SELECT appointment_id, state, starts_at, due_at FROM appointment_reminder WHERE user_id = %s",
            f"whatsapp:{maria.wa_id}",
        )
    }
    assert set(reminders) == set(booked.values())
    haircut_start = datetime.combine(second_day, time(11), tzinfo=TZ)
    assert reminders[booked["haircut"]] == ("scheduled", haircut_start, haircut_start - timedelta(hours=24))
    manicure_due = reminders[booked["manicure"]][2]

    clock.now = manicure_due - timedelta(minutes=1)
    await both(a, b)
    assert templates_to(graph, maria.wa_id) == []
    clock.now = manicure_due + timedelta(seconds=1)
    await both(a, b)
    clock.now = haircut_start - timedelta(hours=24, minutes=1)
    await both(a, b)
    assert len(templates_to(graph, maria.wa_id)) == 1  # the manicure's, and not yet the haircut's
    clock.now = haircut_start - timedelta(hours=24) + timedelta(seconds=1)
    await both(a, b)
    clock.now += timedelta(minutes=10)
    await both(a, b)
    sent = templates_to(graph, maria.wa_id)
    assert len(sent) == 2
    haircut_body = next(c for c in sent[1]["template"]["components"] if c["type"] == "body")
    assert [p["text"] for p in haircut_body["parameters"]][::2] == ["haircut", "11:00"]

    [(message_id, state)] = rows(
        stack_settings,
        "SELECT message_id, state FROM appointment_reminder WHERE appointment_id = %s",
        booked["haircut"],
    )
    assert state == "sent"
    [(reminder_wamid,)] = rows(stack_settings, "SELECT wamid FROM whatsapp_outbound WHERE message_id = %s", message_id)

    # Reschedule on the haircut's reminder: the reschedule flow, about the haircut.
    answer = await asyncio.to_thread(maria.press, "Reschedule", "/reschedule_appointment", on=reminder_wamid)
    assert "Your haircut is on" in answer and "Which day would you like instead" in answer, answer
    assert "What time" in await asyncio.to_thread(maria.say, f"{new_day.day}/{new_day.month}")
    done = await asyncio.to_thread(maria.say, "3pm")
    assert "Your haircut is now on" in done and "15:00" in done, done

    new_start = datetime.combine(new_day, time(15), tzinfo=TZ)
    [(state, starts_at, due_at, response)] = rows(
        stack_settings,
        "SELECT state, starts_at, due_at, response FROM appointment_reminder WHERE appointment_id = %s",
        booked["haircut"],
    )
    # The reminder moved with the appointment (to be sent again before the new time), and counts as answered.
    assert (state, starts_at, due_at, response) == (
        "scheduled",
        new_start,
        new_start - timedelta(hours=24),
        "rescheduled",
    )
    [(manicure_at,)] = rows(stack_settings, "SELECT start_at FROM biz_appointments WHERE id = %s", booked["manicure"])
    assert manicure_at.replace(tzinfo=UTC) == datetime.combine(first_day, time(10), tzinfo=TZ)  # untouched

    # Confirm, then Cancel, on the manicure's reminder.
    [(manicure_message,)] = rows(
        stack_settings, "SELECT message_id FROM appointment_reminder WHERE appointment_id = %s", booked["manicure"]
    )
    [(manicure_wamid,)] = rows(
        stack_settings, "SELECT wamid FROM whatsapp_outbound WHERE message_id = %s", manicure_message
    )
    thanks = await asyncio.to_thread(maria.press, "Confirm", "/affirm", on=manicure_wamid)
    assert thanks.startswith("Thanks for confirming! Your manicure") and "10:00" in thanks, thanks
    assert rows(
        stack_settings, "SELECT response FROM appointment_reminder WHERE appointment_id = %s", booked["manicure"]
    ) == [("confirmed",)]
    ask = await asyncio.to_thread(maria.press, "Cancel", "/cancel_appointment", on=manicure_wamid)
    assert "Cancel your manicure" in ask and booked["manicure"] in ask, ask
    assert "is cancelled" in await asyncio.to_thread(maria.say, "yes")
    assert rows(stack_settings, "SELECT status FROM biz_appointments WHERE id = %s", booked["manicure"]) == [
        ("cancelled",)
    ]
