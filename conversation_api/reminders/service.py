"""The schedule's writers: the bot's appointment outcomes put, move and drop reminders; a customer's
answer to a sent one is recorded. Each runs in its caller's transaction (the conversation's unit of work).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from conversation_api.bot import WorkflowOutcome
from conversation_api.conversations.models import Channel, Conversation
from conversation_api.events.envelope import EventType
from conversation_api.metrics.instruments import REMINDERS
from conversation_api.reminders.models import AppointmentReminder, ReminderResponse, ReminderState
from conversation_api.settings import Settings, parse_quiet_hours

log = logging.getLogger(__name__)

# States in which the reminder has not gone out yet (a move re-times it, a cancel drops it).
WAITING = (ReminderState.scheduled.value, ReminderState.skipped.value)


def as_utc(moment: datetime) -> datetime:
    # SQLite hands back naive datetimes; everything is stored in UTC.
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment


@dataclass(frozen=True, slots=True)
class ReminderPolicy:
    """When reminders go: `lead` before the appointment, never inside the quiet hours (local time)."""

    lead: timedelta = timedelta(hours=24)
    quiet: tuple[time, time] | None = (time(21), time(8))
    tz: ZoneInfo = ZoneInfo("Europe/London")

    @classmethod
    def of(cls, settings: Settings) -> ReminderPolicy:
        return cls(
            lead=timedelta(hours=settings.reminder_lead_hours),
            quiet=parse_quiet_hours(settings.reminder_quiet_hours),
            tz=ZoneInfo(settings.business_timezone),
        )

    def is_quiet(self, moment: datetime) -> bool:
        if self.quiet is None:
            return False
        start, end = self.quiet
        local = as_utc(moment).astimezone(self.tz).time()
        return start <= local < end if start < end else (local >= start or local < end)

    def due(self, *, starts_at: datetime, now: datetime) -> datetime | None:
        """When the reminder of an appointment at `starts_at`, booked at `now`, goes; None: too late for one.

        Due `lead` before the appointment; a due time in the quiet hours moves back to the minute
        before they begin (the evening before), or, when that has passed already, forward to their
        end if that is still before the appointment.
        """
        due = starts_at - self.lead
        if due <= now:
            return None  # booked within the lead time: the customer has just talked about it
        if not self.is_quiet(due) or self.quiet is None:
            return due
        start, end = self.quiet
        local = due.astimezone(self.tz)
        begin_day = local.date() if start <= local.time() else local.date() - timedelta(days=1)
        before = datetime.combine(begin_day, start, tzinfo=self.tz) - timedelta(minutes=1)
        if before > now:
            return before.astimezone(UTC)
        after = datetime.combine(begin_day if start < end else begin_day + timedelta(days=1), end, tzinfo=self.tz)
        return after.astimezone(UTC) if now < after < starts_at else None


def _start_of(outcome: WorkflowOutcome) -> datetime | None:
    raw = outcome.data.get("start")
    try:
        start = datetime.fromisoformat(str(raw)) if raw else None
    except ValueError:
        return None
    return start if start is None or start.tzinfo is not None else None


async def apply_outcomes(
    session: AsyncSession,
    *,
    conversation: Conversation,
    outcomes: Sequence[WorkflowOutcome],
    policy: ReminderPolicy,
    now: datetime,
) -> list[str]:
    """Put, move or drop the reminders of this turn's appointment outcomes; what happened, for the log.

    Called in the transaction that stores the bot's reply, so a reminder exists exactly when the
    booking the customer was told about was recorded. A replayed turn changes nothing twice.
    """
    done: list[str] = []
    if conversation.channel == Channel.api.value:
        return done  # API clients poll their history: there is nothing to push a reminder through
    for outcome in outcomes:
        appointment_id = outcome.data.get("appointment_id")
        if not outcome.success or not appointment_id:
            continue
        appointment_id = str(appointment_id)
        row = await session.scalar(
            select(AppointmentReminder).where(AppointmentReminder.appointment_id == appointment_id)
        )
        if outcome.type == EventType.appointment_cancelled:
            if row is None:
                continue
            if row.state == ReminderState.sent.value and row.response is None:
                row.response = ReminderResponse.cancelled.value
                REMINDERS.labels("cancelled_by_customer").inc()
            if row.state in WAITING:
                row.state = ReminderState.cancelled.value
                REMINDERS.labels("cancelled").inc()
            row.updated_at = now
            done.append(f"{appointment_id}:cancelled")
            continue
        if outcome.type not in (EventType.appointment_booked, EventType.appointment_rescheduled):
            continue
        starts_at = _start_of(outcome)
        if starts_at is None:
            log.warning("appointment outcome without a start conversation_id=%s data=%r", conversation.id, outcome.data)
            continue
        due = policy.due(starts_at=starts_at, now=now)
        if row is None:
            row = AppointmentReminder(
                appointment_id=appointment_id,
                conversation_id=conversation.id,
                user_id=conversation.user_id,
                attempts=0,
                created_at=now,
            )
            session.add(row)
        elif as_utc(row.starts_at) == starts_at.astimezone(UTC):
            continue  # the same booking reported again (a replayed turn)
        elif row.state == ReminderState.sent.value and row.response is None:
            row.response = ReminderResponse.rescheduled.value
            REMINDERS.labels("rescheduled").inc()
        if row.state in (ReminderState.sending.value,):
            # Being sent right now for the old time: leave it; the customer is rebooking anyway.
            continue
        row.service = str(outcome.data.get("service") or row.service or "") or None
        row.staff = str(outcome.data.get("staff") or row.staff or "") or None
        row.customer_name = str(outcome.data.get("customer_name") or row.customer_name or "") or None
        row.starts_at = starts_at.astimezone(UTC)
        row.due_at = (due or now).astimezone(UTC)
        row.state = ReminderState.scheduled.value if due else ReminderState.skipped.value
        row.last_error = None if due else "the appointment is nearer than the reminder lead time"
        row.message_id, row.sent_at, row.lease_owner, row.locked_until, row.attempts = None, None, None, None, 0
        row.updated_at = now
        REMINDERS.labels("scheduled" if due else "skipped").inc()
        done.append(f"{appointment_id}:{row.state}@{row.due_at.isoformat()}")
    if done:
        log.info("reminders conversation_id=%s %s", conversation.id, " ".join(done))
    return done


async def reminder_of_message(session: AsyncSession, *, message_id: int) -> AppointmentReminder | None:
    """The reminder a stored message was (a customer's button press answers it)."""
    return await session.scalar(select(AppointmentReminder).where(AppointmentReminder.message_id == message_id))


async def record_confirmation(session: AsyncSession, *, reminder_id: int, now: datetime) -> bool:
    """The customer pressed Confirm on the reminder; True the first time."""
    row = await session.get(AppointmentReminder, reminder_id)
    if row is None or row.response is not None:
        return False
    row.response, row.updated_at = ReminderResponse.confirmed.value, now
    REMINDERS.labels("confirmed").inc()
    return True
