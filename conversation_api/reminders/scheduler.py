"""The reminder scheduler: sends each due reminder once, from any number of replicas.

A pass (every REMINDER_POLL_SECONDS, with an injectable clock):

1. A reminder left `sending` by a sender that died (its lease ran out) becomes `interrupted`:
   its message may or may not have reached WhatsApp, and sending it again could send it twice.
2. Nothing goes out inside the quiet hours (business time zone).
3. Due reminders are claimed one by one with an optimistic `UPDATE … WHERE state = 'scheduled'
   AND the lease is free`: one replica wins each. The winner, under the conversation's lock
   (the unit of work every conversation writer uses), checks the template may go (consent,
   Meta's status), stores the message and marks the reminder `sending` in one transaction,
   then hands it to the channel and marks it `sent` (or `failed`).

Pacing: the Graph client's limiter holds each number to WHATSAPP_RATE_PER_SECOND; a customer
gets no two reminders within REMINDER_CUSTOMER_SPACING_SECONDS (Meta's 131056), the later one
waits for the next pass.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from conversation_api.background import PeriodicTask
from conversation_api.channels import ChannelRegistry, TemplatesNotSupported
from conversation_api.conversations import service as conversations
from conversation_api.conversations.models import Conversation, Sender
from conversation_api.db import utcnow
from conversation_api.errors import ApiError
from conversation_api.metrics.instruments import REMINDERS
from conversation_api.reminders.models import AppointmentReminder, ReminderState
from conversation_api.reminders.service import ReminderPolicy, as_utc
from conversation_api.unit_of_work import ConversationUnitOfWork

log = logging.getLogger(__name__)

Clock = Callable[[], datetime]


class ReminderScheduler:
    def __init__(
        self,
        *,
        sessions: async_sessionmaker[AsyncSession],
        uow: ConversationUnitOfWork,
        channels: ChannelRegistry,
        policy: ReminderPolicy,
        template: str,
        language: str | None = None,
        customer_spacing: float = 6.0,
        lease_seconds: float = 60.0,
        max_attempts: int = 5,
        poll_seconds: float = 5.0,
        batch: int = 50,
        clock: Clock = utcnow,
    ) -> None:
        self._sessions = sessions
        self._uow = uow
        self._channels = channels
        self._policy = policy
        self._template = template
        self._language = language
        self._spacing = timedelta(seconds=customer_spacing)
        self._lease = timedelta(seconds=lease_seconds)
        self._max_attempts = max_attempts
        self._batch = batch
        self._clock = clock
        self.owner = uuid.uuid4().hex
        self._task = PeriodicTask(name="appointment-reminders", every=poll_seconds, job=self.run_once)

    def start(self) -> None:
        self._task.start()

    async def stop(self) -> None:
        await self._task.stop()

    async def run_once(self) -> dict[str, int]:
        """One pass; how many reminders came to each outcome in it."""
        now = self._clock()
        tally: dict[str, int] = {}
        interrupted = await self._recover(now)
        if interrupted:
            tally["interrupted"] = interrupted
        if self._policy.is_quiet(now):
            return tally
        async with self._sessions() as session:
            due = list(
                await session.scalars(
                    select(AppointmentReminder.id)
                    .where(
                        AppointmentReminder.state == ReminderState.scheduled.value,
                        AppointmentReminder.due_at <= now,
                        or_(AppointmentReminder.locked_until.is_(None), AppointmentReminder.locked_until < now),
                    )
                    .order_by(AppointmentReminder.due_at, AppointmentReminder.id)
                    .limit(self._batch)
                )
            )
        for reminder_id in due:
            outcome = await self._claim_and_send(reminder_id, now)
            tally[outcome] = tally.get(outcome, 0) + 1
        return tally

    async def _recover(self, now: datetime) -> int:
        async with self._sessions() as session, session.begin():
            result = await session.execute(
                update(AppointmentReminder)
                .where(
                    AppointmentReminder.state == ReminderState.sending.value,
                    AppointmentReminder.locked_until < now,
                )
                .values(
                    state=ReminderState.interrupted.value,
                    last_error="the sender stopped while sending it; not sent again, so it is never sent twice "
                    "(its message's delivery record says whether WhatsApp accepted it)",
                    updated_at=now,
                )
            )
        count = int(result.rowcount or 0)  # type: ignore[attr-defined]
        if count:
            REMINDERS.labels("interrupted").inc(count)
            log.error("reminders interrupted mid-send count=%d (not re-sent)", count)
        return count

    async def _claim(self, reminder_id: int, now: datetime) -> bool:
        async with self._sessions() as session, session.begin():
            result = await session.execute(
                update(AppointmentReminder)
                .where(
                    AppointmentReminder.id == reminder_id,
                    AppointmentReminder.state == ReminderState.scheduled.value,
                    AppointmentReminder.due_at <= now,
                    or_(AppointmentReminder.locked_until.is_(None), AppointmentReminder.locked_until < now),
                )
                .values(
                    lease_owner=self.owner,
                    locked_until=now + self._lease,
                    attempts=AppointmentReminder.attempts + 1,
                    updated_at=now,
                )
            )
        return bool(result.rowcount)  # type: ignore[attr-defined]

    async def _claim_and_send(self, reminder_id: int, now: datetime) -> str:
        if not await self._claim(reminder_id, now):
            return "taken"  # another replica has it
        cid = await self._conversation_of(reminder_id)
        async with self._uow.conversation(cid) as work, work.transaction() as session:
            row = await session.get(AppointmentReminder, reminder_id, populate_existing=True)
            if row is None or row.state != ReminderState.scheduled.value or row.lease_owner != self.owner:
                return "taken"  # moved, cancelled or re-timed by the conversation meanwhile
            refusal = await self._refusal(session, row, now)
            if refusal is not None:
                return refusal
            conversation = await session.get(Conversation, row.conversation_id)
            assert conversation is not None
            channel = self._channels.for_conversation(conversation)
            try:
                prepared = await channel.prepare_template(
                    conversation=conversation,
                    name=self._template,
                    language=self._language,
                    parameters=await self._values(channel, conversation, row),
                )
            except ApiError as exc:
                outcome = ReminderState.skipped if isinstance(exc, TemplatesNotSupported) else ReminderState.failed
                self._finish(row, outcome, now, error=f"{exc.code}: {exc.detail}")
                return outcome.value
            message = await conversations.append_message(
                session=session,
                conversation=conversation,
                sender=Sender.bot,
                text=prepared.text,
                payload={
                    **prepared.payload,
                    "reminder": {"id": row.id, "appointment_id": row.appointment_id},
                },
            )
            row.state, row.message_id, row.updated_at = ReminderState.sending.value, message.id, now
        try:
            await channel.deliver(conversation=conversation, message=message)
        except Exception as exc:  # stored as failed by the channel; the reminder says why
            log.warning("reminder not delivered reminder_id=%s conversation_id=%s", reminder_id, conversation.id)
            await self._after_send(reminder_id, ReminderState.failed, now, error=str(getattr(exc, "detail", exc)))
            return ReminderState.failed.value
        await self._after_send(reminder_id, ReminderState.sent, now)
        return ReminderState.sent.value

    async def _conversation_of(self, reminder_id: int) -> str:
        async with self._sessions() as session:
            cid = await session.scalar(
                select(AppointmentReminder.conversation_id).where(AppointmentReminder.id == reminder_id)
            )
        assert cid is not None
        return str(cid)

    async def _refusal(self, session: AsyncSession, row: AppointmentReminder, now: datetime) -> str | None:
        """Why this claimed reminder does not go now (its outcome), or None."""
        if as_utc(row.starts_at) <= now:
            self._finish(row, ReminderState.skipped, now, error="the appointment has begun")
            return ReminderState.skipped.value
        if row.attempts > self._max_attempts:
            self._finish(row, ReminderState.failed, now, error=f"claimed {row.attempts} times without being sent")
            return ReminderState.failed.value
        recent = await session.scalar(
            select(func.count())
            .select_from(AppointmentReminder)
            .where(
                AppointmentReminder.user_id == row.user_id,
                AppointmentReminder.id != row.id,
                AppointmentReminder.state.in_((ReminderState.sending.value, ReminderState.sent.value)),
                AppointmentReminder.updated_at > now - self._spacing,
            )
        )
        if recent:
            # Meta refuses a burst to one customer (131056): this one goes in a later pass.
            row.locked_until, row.lease_owner, row.attempts = now + self._spacing, None, row.attempts - 1
            return "deferred"
        return None

    def _finish(self, row: AppointmentReminder, state: ReminderState, now: datetime, *, error: str | None) -> None:
        row.state, row.last_error, row.updated_at, row.locked_until = state.value, error, now, None
        REMINDERS.labels(state.value).inc()
        log.info("reminder %s reminder_id=%s appointment_id=%s reason=%s", state, row.id, row.appointment_id, error)

    async def _after_send(
        self, reminder_id: int, state: ReminderState, now: datetime, *, error: str | None = None
    ) -> None:
        async with self._sessions() as session, session.begin():
            await session.execute(
                update(AppointmentReminder)
                .where(
                    AppointmentReminder.id == reminder_id,
                    AppointmentReminder.lease_owner == self.owner,
                    AppointmentReminder.state.in_((ReminderState.sending.value, ReminderState.interrupted.value)),
                )
                .values(
                    state=state.value,
                    sent_at=now if state is ReminderState.sent else None,
                    last_error=error,
                    locked_until=None,
                    updated_at=now,
                )
            )
        REMINDERS.labels(state.value).inc()
        log.info("reminder %s reminder_id=%s", state, reminder_id)

    async def _values(self, channel: Any, conversation: Conversation, row: AppointmentReminder) -> dict[str, str]:
        """The template's parameters, from what the schedule knows of the appointment."""
        local = as_utc(row.starts_at).astimezone(self._policy.tz)
        known = {
            # A booking without a name (the CRM had none) still reads well: "Hi there, ...".
            "customer_name": row.customer_name or "there",
            "service": row.service or "appointment",
            "date": f"{local:%A} {local.day} {local:%B}",
            "time": f"{local:%H:%M}",
            "staff": row.staff or "our team",
            "reference": row.appointment_id,
        }
        state = await channel.state(conversation=conversation)
        wanted = next(
            (
                t.parameters
                for t in state.templates
                if t.name == self._template and (self._language is None or t.language == self._language)
            ),
            list(known),
        )
        return {name: known.get(name, "") for name in wanted}
