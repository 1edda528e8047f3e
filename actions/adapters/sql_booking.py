"""BookingService on the embedded database: staff calendars from the business data."""

from __future__ import annotations

import secrets
from datetime import date, datetime, timedelta
from typing import List, Optional

from sqlalchemy import and_, select
from sqlalchemy.engine import Connection

from actions.adapters import sql_idempotency
from actions.adapters.sql_db import (
    Database,
    appointments,
    from_utc_naive,
    to_utc_naive,
    translate_errors,
    utcnow,
)
from actions.adapters.sql_idempotency import once
from actions.business import Business, ServiceInfo
from actions.ports import Appointment, InvalidState, NotFound, SlotUnavailable


class SqlBookingService:
    def __init__(self, db: Database, business: Business) -> None:
        self.db = db
        self.business = business

    # --- helpers ------------------------------------------------------------
    def _service(self, name: str) -> ServiceInfo:
        service = self.business.service(name)
        if service is None:
            raise NotFound(f"unknown service {name!r}")
        return service

    def _row(self, row) -> Appointment:
        tz = self.business.tz
        return Appointment(id=row.id, customer_id=row.customer_id, service=row.service,
                           start=from_utc_naive(row.start_at, tz), end=from_utc_naive(row.end_at, tz),
                           staff=row.staff, status=row.status)

    def _busy(self, connection: Connection, day: date, ignore: Optional[str]) -> List[tuple]:
        tz = self.business.tz
        start = to_utc_naive(datetime.combine(day, datetime.min.time(), tzinfo=tz))
        end = to_utc_naive(datetime.combine(day + timedelta(days=1), datetime.min.time(), tzinfo=tz))
        query = select(appointments.c.staff, appointments.c.start_at, appointments.c.end_at).where(and_(
            appointments.c.status == "booked", appointments.c.start_at < end, appointments.c.end_at > start))
        if ignore:
            query = query.where(appointments.c.id != ignore)
        return [(r.staff, r.start_at, r.end_at) for r in connection.execute(query)]

    def _free_staff(self, service: ServiceInfo, start: datetime, busy: List[tuple]) -> Optional[str]:
        begin = to_utc_naive(start)
        end = to_utc_naive(start + timedelta(minutes=service.duration_minutes))
        for member in self.business.staff_for(service.name):
            if not any(s == member.name and b_start < end and b_end > begin for s, b_start, b_end in busy):
                return member.name
        return None

    def _check_bookable(self, service: ServiceInfo, start: datetime) -> None:
        now = self.business.now()
        if start <= now:
            raise SlotUnavailable("that time is in the past")
        if start.date() > now.date() + timedelta(days=self.business.booking_horizon_days):
            raise SlotUnavailable("that date is too far ahead")
        if not self.business.within_hours(service, start):
            raise SlotUnavailable("we are closed then")
        minutes = start.hour * 60 + start.minute
        if minutes % self.business.slot_minutes:
            raise SlotUnavailable("appointments start on the hour or half hour")

    # --- port ---------------------------------------------------------------
    @translate_errors
    def free_slots(self, *, service: str, day: date, limit: int = 20,
                   ignore_appointment: Optional[str] = None) -> List[datetime]:
        info = self._service(service)
        candidates = self.business.candidate_starts(info, day)
        if not candidates:
            return []
        with self.db.begin() as connection:
            busy = self._busy(connection, day, ignore_appointment)
        free = [start for start in candidates if self._free_staff(info, start, busy)]
        return free[:limit]

    @translate_errors
    def book(self, *, customer_id: str, service: str, start: datetime,
             idempotency_key: str | None = None) -> Appointment:
        info = self._service(service)
        start = start.astimezone(self.business.tz)

        def work(connection: Connection) -> Appointment:
            # Checked inside: a replay of a booking whose time has passed still gets its booking back.
            self._check_bookable(info, start)
            # After the idempotency claim (once() makes it first): every booking takes the two in that order.
            self.db.lock_bookings(connection)
            staff = self._free_staff(info, start, self._busy(connection, start.date(), None))
            if staff is None:
                raise SlotUnavailable("that time is already taken")
            appointment_id = "APT-" + secrets.token_hex(3).upper()
            connection.execute(appointments.insert().values(
                id=appointment_id, customer_id=customer_id, service=info.name, staff=staff,
                start_at=to_utc_naive(start),
                end_at=to_utc_naive(start + timedelta(minutes=info.duration_minutes)),
                status="booked", created_at=utcnow()))
            row = connection.execute(select(appointments).where(appointments.c.id == appointment_id)).one()
            return self._row(row)

        with self.db.booking_lock:
            return once(self.db, operation="booking.book", key=idempotency_key, work=work,
                        decode=sql_idempotency.appointment(self.business.tz))

    @translate_errors
    def upcoming(self, *, customer_id: str) -> List[Appointment]:
        with self.db.begin() as connection:
            rows = connection.execute(
                select(appointments).where(and_(
                    appointments.c.customer_id == customer_id, appointments.c.status == "booked",
                    appointments.c.start_at > utcnow())).order_by(appointments.c.start_at))
            return [self._row(r) for r in rows]

    def _owned(self, connection: Connection, appointment_id: str, customer_id: str):
        row = connection.execute(select(appointments).where(and_(
            appointments.c.id == appointment_id, appointments.c.customer_id == customer_id))).first()
        if row is None:
            raise NotFound(f"no appointment {appointment_id}")
        if row.status != "booked":
            raise InvalidState("that appointment is already cancelled")
        if row.start_at <= utcnow():
            raise InvalidState("that appointment has already started")
        return row

    @translate_errors
    def reschedule(self, *, appointment_id: str, customer_id: str, start: datetime,
                   idempotency_key: str | None = None) -> Appointment:
        start = start.astimezone(self.business.tz)

        def work(connection: Connection) -> Appointment:
            self.db.lock_bookings(connection)
            row = self._owned(connection, appointment_id, customer_id)
            info = self._service(row.service)
            self._check_bookable(info, start)
            staff = self._free_staff(info, start, self._busy(connection, start.date(), appointment_id))
            if staff is None:
                raise SlotUnavailable("that time is already taken")
            connection.execute(appointments.update().where(appointments.c.id == appointment_id).values(
                start_at=to_utc_naive(start), staff=staff,
                end_at=to_utc_naive(start + timedelta(minutes=info.duration_minutes))))
            row = connection.execute(select(appointments).where(appointments.c.id == appointment_id)).one()
            return self._row(row)

        with self.db.booking_lock:
            return once(self.db, operation="booking.reschedule", key=idempotency_key, work=work,
                        decode=sql_idempotency.appointment(self.business.tz))

    @translate_errors
    def cancel(self, *, appointment_id: str, customer_id: str,
               idempotency_key: str | None = None) -> Appointment:
        def work(connection: Connection) -> Appointment:
            self._owned(connection, appointment_id, customer_id)
            connection.execute(appointments.update().where(appointments.c.id == appointment_id)
                               .values(status="cancelled"))
            row = connection.execute(select(appointments).where(appointments.c.id == appointment_id)).one()
            return self._row(row)

        return once(self.db, operation="booking.cancel", key=idempotency_key, work=work,
                    decode=sql_idempotency.appointment(self.business.tz))
