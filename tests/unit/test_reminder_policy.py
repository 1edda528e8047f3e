"""When a reminder goes: the lead before the appointment, moved out of the quiet hours in the business time zone."""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest
from pydantic import ValidationError

from conversation_api.reminders.service import ReminderPolicy
from conversation_api.settings import Settings

LONDON = ZoneInfo("Europe/London")
POLICY = ReminderPolicy(lead=timedelta(hours=24), quiet=(time(21), time(8)), tz=LONDON)


def local(day: int, hour: int, minute: int = 0) -> datetime:
    return datetime(2026, 12, day, hour, minute, tzinfo=LONDON)


def test_a_reminder_is_due_the_lead_before_the_appointment() -> None:
    due = POLICY.due(starts_at=local(10, 11), now=local(7, 12))
    assert due == local(9, 11)


def test_a_due_time_in_the_quiet_hours_moves_back_to_the_evening_before() -> None:
    # An appointment at 07:30 would be reminded at 07:30 the day before: quiet (21:00-08:00).
    assert POLICY.due(starts_at=local(10, 7, 30), now=local(7, 12)) == local(8, 20, 59)
    # 22:00 is quiet too: back to 20:59 the same evening.
    assert POLICY.due(starts_at=local(10, 22), now=local(7, 12)) == local(9, 20, 59)


def test_when_the_evening_before_has_passed_it_goes_when_the_quiet_hours_end() -> None:
    lead2 = ReminderPolicy(lead=timedelta(hours=2), quiet=(time(21), time(8)), tz=LONDON)
    # Booked at 22:30 for 09:30 the next morning: due 07:30 is quiet, 20:59 has passed -> 08:00.
    assert lead2.due(starts_at=local(10, 9, 30), now=local(9, 22, 30)) == local(10, 8)
    # Booked at 22:30 for 08:00: 08:00 is not before the appointment -> no reminder.
    assert lead2.due(starts_at=local(10, 8), now=local(9, 22, 30)) is None


def test_an_appointment_nearer_than_the_lead_gets_no_reminder() -> None:
    assert POLICY.due(starts_at=local(8, 11), now=local(7, 12)) is None


def test_quiet_hours_are_local_time() -> None:
    assert POLICY.is_quiet(local(9, 21, 30)) and POLICY.is_quiet(local(9, 7, 59))
    assert not POLICY.is_quiet(local(9, 8)) and not POLICY.is_quiet(local(9, 20, 59))
    # 20:30 UTC is 21:30 in London in summer (BST), quiet; in winter 20:30, not quiet.
    assert POLICY.is_quiet(datetime(2026, 7, 1, 20, 30, tzinfo=UTC))
    assert not POLICY.is_quiet(datetime(2026, 12, 1, 20, 30, tzinfo=UTC))
    daytime = ReminderPolicy(quiet=(time(12), time(14)), tz=LONDON)
    assert daytime.is_quiet(local(9, 13)) and not daytime.is_quiet(local(9, 15))
    assert not ReminderPolicy(quiet=None, tz=LONDON).is_quiet(local(9, 3))


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("reminder_quiet_hours", "9pm-8am", "not HH:MM-HH:MM"),
        ("reminder_quiet_hours", "08:00-08:00", "same time"),
        ("business_timezone", "Mars/Olympus", "unknown time zone"),
    ],
)
def test_settings_refuse_what_they_cannot_read(field: str, value: str, message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        Settings(**{field: value})


def test_settings_make_the_policy() -> None:
    settings = Settings(reminder_lead_hours=2, reminder_quiet_hours="", business_timezone="America/New_York")
    policy = ReminderPolicy.of(settings)
    assert policy.lead == timedelta(hours=2) and policy.quiet is None and str(policy.tz) == "America/New_York"
