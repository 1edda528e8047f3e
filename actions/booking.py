"""Appointments: book (form + confirmation), check availability, reschedule, cancel, list services."""

from __future__ import annotations

import json
from abc import ABC, abstractmethod
from datetime import date, datetime, time, timedelta
from typing import Any, Dict, List, Optional, Text

from rasa_sdk import Action, FormValidationAction, Tracker
from rasa_sdk.events import EventType, SlotSet
from rasa_sdk.executor import CollectingDispatcher
from rasa_sdk.types import DomainDict

from actions.business import Business
from actions.common import (
    answered_appointment,
    call,
    channel,
    clean_name,
    confirm_buttons,
    customer_id,
    day_label,
    idempotency_key,
    latest_entity,
    latest_text,
    log,
    normalise_phone,
    utter_unavailable,
    when,
    workflow_event,
)
from actions.ports import (
    Appointment,
    NotFound,
    ServiceError,
    ServiceUnavailable,
    SlotUnavailable,
)
from actions.timeparse import parse_date, parse_time
from actions.wiring import UsesPorts

RESET_BOOKING = [SlotSet("service", None), SlotSet("date", None), SlotSet("time", None)]


def _payload(intent: str, **entities: Any) -> str:
    return f"/{intent}{json.dumps(entities, separators=(',', ':'))}"


def _slot_value(tracker: Tracker, updates: Dict[str, Any], name: str) -> Any:
    return updates[name] if name in updates else tracker.get_slot(name)


def _nearest(free: List[datetime], wanted: datetime, count: int = 3) -> List[datetime]:
    return sorted(free, key=lambda s: (abs((s - wanted).total_seconds()), s))[:count]


def _next_open_days(biz: Business, start: date, count: int) -> List[date]:
    days, day = [], start
    while len(days) < count and day <= start + timedelta(days=14):
        if biz.hours_on(day):
            days.append(day)
        day += timedelta(days=1)
    return days


class _AppointmentSlots(UsesPorts, FormValidationAction, ABC):
    """Normalises service/date/time and checks the chosen time against the calendar."""

    @abstractmethod
    def name(self) -> Text:
        """Abstract: rasa-sdk registers only concrete actions."""

    # --- per-slot normalisation ---------------------------------------------
    def validate_service(self, value: Any, dispatcher: CollectingDispatcher, tracker: Tracker,
                         domain: DomainDict) -> Dict[Text, Any]:
        service = self.biz.service(str(value)) if value else None
        if service is None:
            service = self.biz.service(latest_text(tracker))
        if service is None:
            dispatcher.utter_message(
                text="Sorry, we don't offer that. We do: " + ", ".join(s.name for s in self.biz.services) + ".",
                buttons=[{"title": s.name, "payload": s.name} for s in self.biz.services])
            return {"service": None}
        return {"service": service.name}

    def validate_date(self, value: Any, dispatcher: CollectingDispatcher, tracker: Tracker,
                      domain: DomainDict) -> Dict[Text, Any]:
        day = parse_date(str(value), tz=self.biz.tz) if value else None
        if day is None and latest_text(tracker) != str(value or ""):
            day = parse_date(latest_text(tracker), tz=self.biz.tz)
        today = self.biz.now().date()
        if day is None:
            dispatcher.utter_message(text="Sorry, I didn't get the date. Try e.g. 'tomorrow', 'Friday' or '25/12'.")
            return {"date": None}
        if day < today:
            dispatcher.utter_message(text=f"{day_label(day)} is in the past. Which day would you like?")
            return {"date": None}
        if day > today + timedelta(days=self.biz.booking_horizon_days):
            dispatcher.utter_message(
                text=f"We take bookings up to {self.biz.booking_horizon_days} days ahead. Which day would you like?")
            return {"date": None}
        if self.biz.hours_on(day) is None:
            open_days = ", ".join(day_label(d) for d in _next_open_days(self.biz, day + timedelta(days=1), 2))
            dispatcher.utter_message(text=f"Sorry, we're closed on {day_label(day)}. We're open {open_days}, for example.")
            return {"date": None}
        return {"date": day.isoformat()}

    def validate_time(self, value: Any, dispatcher: CollectingDispatcher, tracker: Tracker,
                      domain: DomainDict) -> Dict[Text, Any]:
        moment = parse_time(str(value)) if value else None
        if moment is None and latest_text(tracker) != str(value or ""):
            moment = parse_time(latest_text(tracker))
        if moment is None:
            dispatcher.utter_message(text="Sorry, I didn't get the time. Try e.g. '3pm' or '10:30'.")
            return {"time": None}
        return {"time": f"{moment:%H:%M}"}

    # --- the calendar check, once service, date and time are all known ------
    def _appointment_to_ignore(self, tracker: Tracker, updates: Dict[str, Any]) -> Optional[str]:
        return None

    async def get_validation_events(self, dispatcher: CollectingDispatcher, tracker: Tracker,
                                    domain: DomainDict) -> List[EventType]:
        events = await super().get_validation_events(dispatcher, tracker, domain)
        updates = {e["name"]: e["value"] for e in events if e.get("event") == "slot"}
        names = ("service", "date", "time")
        if not any(n in updates for n in names) or not all(_slot_value(tracker, updates, n) for n in names):
            return events
        service = str(_slot_value(tracker, updates, "service"))
        day = date.fromisoformat(str(_slot_value(tracker, updates, "date")))
        hour, minute = (int(p) for p in str(_slot_value(tracker, updates, "time")).split(":"))
        wanted = datetime.combine(day, time(hour, minute), tzinfo=self.biz.tz)
        try:
            free = await call(self.booking.free_slots, service=service, day=day, limit=100,
                              ignore_appointment=self._appointment_to_ignore(tracker, updates))
        except ServiceError as exc:
            # We cannot check now; the booking itself checks again and fails politely if needed.
            log.error("availability check failed service=%s day=%s error=%s", service, day, exc)
            return events
        if wanted in free:
            return events
        tracker.slots["time"] = None
        if not free:
            dispatcher.utter_message(text=f"Sorry, we're fully booked for a {service} on {day_label(day)}. "
                                          "Which other day would suit you?")
            tracker.slots["date"] = None
            return events + [SlotSet("date", None), SlotSet("time", None)]
        options = sorted(_nearest(free, wanted))
        reason = "isn't within our opening hours" if not self.biz.within_hours(
            self.biz.service(service), wanted) else "is already taken"  # type: ignore[arg-type]
        dispatcher.utter_message(
            text=f"Sorry, {wanted:%H:%M} on {day_label(day)} {reason}. The nearest free times are "
                 + ", ".join(f"{o:%H:%M}" for o in options) + ".",
            buttons=[{"title": f"{o:%H:%M}", "payload": f"{o:%H:%M}"} for o in options])
        return events + [SlotSet("time", None)]


class ValidateAppointmentForm(_AppointmentSlots):
    def name(self) -> Text:
        return "validate_appointment_form"

    async def required_slots(self, domain_slots: List[Text], dispatcher: CollectingDispatcher,
                             tracker: Tracker, domain: DomainDict) -> List[Text]:
        cached = getattr(tracker, "_reviewbot_required_slots", None)
        if cached is not None:  # rasa-sdk asks three times per turn; ask the CRM once
            return list(cached)
        slots = ["service", "date", "time"]
        try:
            customer = await call(self.crm.get, customer_id=customer_id(tracker))
        except ServiceError as exc:
            log.error("CRM lookup failed during booking: %s", exc)
            customer = None
        else:
            if customer is None or not customer.name:
                slots.append("person_name")
            if customer is None or not customer.phone:
                slots.append("phone_number")
        setattr(tracker, "_reviewbot_required_slots", slots)
        return list(slots)

    def validate_person_name(self, value: Any, dispatcher: CollectingDispatcher, tracker: Tracker,
                             domain: DomainDict) -> Dict[Text, Any]:
        name = clean_name(value)
        if not name:
            dispatcher.utter_message(text="Sorry, what name should I put the booking under?")
        return {"person_name": name}

    def validate_phone_number(self, value: Any, dispatcher: CollectingDispatcher, tracker: Tracker,
                              domain: DomainDict) -> Dict[Text, Any]:
        phone = normalise_phone(value) or normalise_phone(latest_text(tracker))
        if not phone:
            dispatcher.utter_message(text="That doesn't look like a phone number. Please send it like +44 7700 900123.")
        return {"phone_number": phone}


class ValidateRescheduleForm(_AppointmentSlots):
    """The reschedule form asks only date and time; the service is the appointment's."""

    def name(self) -> Text:
        return "validate_reschedule_form"

    async def required_slots(self, domain_slots: List[Text], dispatcher: CollectingDispatcher,
                             tracker: Tracker, domain: DomainDict) -> List[Text]:
        if not tracker.get_slot("appointment_id"):
            return []  # nothing to move: the submit action says so
        return ["date", "time"]

    async def get_validation_events(self, dispatcher: CollectingDispatcher, tracker: Tracker,
                                    domain: DomainDict) -> List[EventType]:
        events: List[EventType] = []
        if not tracker.get_slot("appointment_id"):
            try:
                appointments = await call(self.booking.upcoming, customer_id=customer_id(tracker))
            except ServiceError as exc:
                log.error("could not list appointments: %s", exc)
                return [SlotSet("date", None), SlotSet("time", None)]
            if not appointments:
                return [SlotSet("date", None), SlotSet("time", None)]
            chosen = _choose(appointments, self.biz, tracker)
            events = [SlotSet("appointment_id", chosen.id), SlotSet("service", chosen.service)]
            tracker.slots["appointment_id"] = chosen.id
            tracker.slots["service"] = chosen.service
        return events + await super().get_validation_events(dispatcher, tracker, domain)

    def validate_service(self, value: Any, dispatcher: CollectingDispatcher, tracker: Tracker,
                         domain: DomainDict) -> Dict[Text, Any]:
        return {}  # the appointment decides the service

    def _appointment_to_ignore(self, tracker: Tracker, updates: Dict[str, Any]) -> Optional[str]:
        return _slot_value(tracker, updates, "appointment_id")


def _choose(appointments: List[Appointment], biz: Business, tracker: Tracker) -> Appointment:
    """The appointment the customer means: the one a reminder they answered was about, the one with
    the service they named, else the soonest."""
    answered = answered_appointment(tracker)
    for appointment in appointments if answered else []:
        if appointment.id == answered:
            return appointment
    named = biz.service(latest_entity(tracker, "service") or "")
    if named:
        for appointment in appointments:
            if appointment.service == named.name:
                return appointment
    return appointments[0]


class _BookingAction(UsesPorts, Action, ABC):
    @abstractmethod
    def name(self) -> Text:
        """Abstract: rasa-sdk registers only concrete actions."""

    def _start(self, tracker: Tracker) -> Optional[datetime]:
        day, moment = tracker.get_slot("date"), tracker.get_slot("time")
        if not day or not moment:
            return None
        try:
            hour, minute = (int(p) for p in str(moment).split(":"))
            return datetime.combine(date.fromisoformat(str(day)), time(hour, minute), tzinfo=self.biz.tz)
        except ValueError:
            return None


class ActionAskBookingConfirmation(_BookingAction):
    def name(self) -> Text:
        return "action_ask_booking_confirmation"

    async def run(self, dispatcher: CollectingDispatcher, tracker: Tracker,
                  domain: DomainDict) -> List[EventType]:
        service = self.biz.service(tracker.get_slot("service"))
        start = self._start(tracker)
        if service is None or start is None:
            dispatcher.utter_message(text="Sorry, I lost track of the booking. Let's start again: what would you like to book?")
            return RESET_BOOKING
        name = tracker.get_slot("person_name")
        dispatcher.utter_message(
            text=f"Shall I book a {service.name} ({service.duration_minutes} min, {self.biz.money(service.price)}) "
                 f"on {when(start)}" + (f" for {name}" if name else "") + "?",
            buttons=confirm_buttons("Yes, book it"))
        return []


class ActionBookAppointment(_BookingAction):
    def name(self) -> Text:
        return "action_book_appointment"

    async def run(self, dispatcher: CollectingDispatcher, tracker: Tracker,
                  domain: DomainDict) -> List[EventType]:
        service, start = tracker.get_slot("service"), self._start(tracker)
        if not service or start is None:
            dispatcher.utter_message(text="Sorry, I lost track of the booking. Let's start again: what would you like to book?")
            return RESET_BOOKING + [workflow_event("appointment.booked", "booking", False, reason="incomplete")]
        user = customer_id(tracker)
        try:
            appointment = await call(self.booking.book, customer_id=user, service=service, start=start,
                                     idempotency_key=idempotency_key(tracker, self.name()))
        except SlotUnavailable as exc:
            options: List[datetime] = []
            try:
                options = sorted(_nearest(await call(self.booking.free_slots, service=service, day=start.date()), start))
            except ServiceError:
                pass
            dispatcher.utter_message(
                text=f"Sorry, {when(start)} was just taken ({exc})."
                     + (" Free times that day: " + ", ".join(f"{o:%H:%M}" for o in options) + "." if options else "")
                     + " Just ask to book again with another time.")
            return RESET_BOOKING + [workflow_event("appointment.booked", "booking", False, reason="slot_unavailable")]
        except ServiceError as exc:
            log.error("booking failed customer_id=%s error=%s", user, exc)
            utter_unavailable(dispatcher)
            return RESET_BOOKING + [workflow_event("appointment.booked", "booking", False, reason=exc.reason)]
        # The appointment is booked; saving the contact details is a bonus, never a reason to fail.
        updates = {"name": tracker.get_slot("person_name"), "phone": tracker.get_slot("phone_number")}
        name = updates["name"]
        try:
            customer = await call(self.crm.get_or_create, customer_id=user, channel=channel(tracker))
            name = name or customer.name
            if any(updates.values()):
                await call(self.crm.update, customer_id=user,
                           idempotency_key=idempotency_key(tracker, f"{self.name()}.contact"), **updates)
        except ServiceError as exc:
            log.error("could not save contact details customer_id=%s error=%s", user, exc)
        dispatcher.utter_message(
            text=f"You're booked! {appointment.service.capitalize()} with {appointment.staff} on "
                 f"{when(appointment.start)}. Your booking reference is {appointment.id}. See you then!")
        return RESET_BOOKING + [
            SlotSet("appointment_id", None), SlotSet("person_name", None), SlotSet("phone_number", None),
            workflow_event("appointment.booked", "booking", True, appointment_id=appointment.id,
                           service=appointment.service, start=appointment.start.isoformat(),
                           staff=appointment.staff, customer_name=name),
        ]


class ActionBookingDeclined(_BookingAction):
    def name(self) -> Text:
        return "action_booking_declined"

    async def run(self, dispatcher: CollectingDispatcher, tracker: Tracker,
                  domain: DomainDict) -> List[EventType]:
        dispatcher.utter_message(text="No problem, I haven't booked anything. Anything else I can do for you?")
        return RESET_BOOKING


class ActionAcknowledgeYes(_BookingAction):
    """A yes the bot did not ask for: Confirm on an appointment reminder thanks the customer for that
    appointment; any other yes gets the usual "anything else?"."""

    def name(self) -> Text:
        return "action_acknowledge_yes"

    async def run(self, dispatcher: CollectingDispatcher, tracker: Tracker,
                  domain: DomainDict) -> List[EventType]:
        answered = answered_appointment(tracker)
        appointment = None
        if answered:
            try:
                appointment = next((a for a in await call(self.booking.upcoming, customer_id=customer_id(tracker))
                                    if a.id == answered), None)
            except ServiceError as exc:
                log.error("could not list appointments: %s", exc)
        if appointment is None:
            dispatcher.utter_message(response="utter_anything_else")
            return []
        dispatcher.utter_message(
            text=f"Thanks for confirming! Your {appointment.service} with {appointment.staff} is on "
                 f"{when(appointment.start)}. See you then!")
        return []


class ActionCheckAvailability(_BookingAction):
    def name(self) -> Text:
        return "action_check_availability"

    async def run(self, dispatcher: CollectingDispatcher, tracker: Tracker,
                  domain: DomainDict) -> List[EventType]:
        service = self.biz.service(latest_entity(tracker, "service") or tracker.get_slot("service") or "") \
            or self.biz.service(latest_text(tracker))
        if service is None:
            dispatcher.utter_message(
                text="Which service would you like to check?",
                buttons=[{"title": s.name, "payload": _payload("check_availability", service=s.name)}
                         for s in self.biz.services])
            return []
        text_day = latest_entity(tracker, "date") or tracker.get_slot("date")
        day = parse_date(text_day, tz=self.biz.tz) if text_day else parse_date(latest_text(tracker), tz=self.biz.tz)
        days = [day] if day else _next_open_days(self.biz, self.biz.now().date(), 3)
        try:
            for candidate in days:
                free = await call(self.booking.free_slots, service=service.name, day=candidate, limit=100)
                if free:
                    break
        except ServiceError as exc:
            log.error("availability check failed: %s", exc)
            utter_unavailable(dispatcher)
            return []
        if not free:
            if day and self.biz.hours_on(day) is None:
                dispatcher.utter_message(text=f"Sorry, we're closed on {day_label(day)}.")
            else:
                dispatcher.utter_message(text=f"Sorry, no free {service.name} slots on {day_label(days[-1])}. Try another day?")
            return [SlotSet("service", service.name)]
        wanted = parse_time(latest_entity(tracker, "time") or latest_text(tracker))
        shown = free
        if wanted:
            target = datetime.combine(candidate, wanted, tzinfo=self.biz.tz)
            shown = sorted(_nearest(free, target, 5))
            if target in free:
                dispatcher.utter_message(text=f"Good news: {target:%H:%M} on {day_label(candidate)} is free for a {service.name}.")
        else:
            step = max(1, len(free) // 6)
            shown = free[::step][:6]
        dispatcher.utter_message(
            text=f"Free times for a {service.name} on {day_label(candidate)}: "
                 + ", ".join(f"{s:%H:%M}" for s in shown) + ". Tap one to book it.",
            buttons=[{"title": f"{s:%H:%M}", "payload": _payload("book_appointment", service=service.name,
                                                                  date=candidate.isoformat(), time=f"{s:%H:%M}")}
                     for s in shown])
        return [SlotSet("service", service.name), SlotSet("date", None), SlotSet("time", None)]


class ActionListServices(_BookingAction):
    def name(self) -> Text:
        return "action_list_services"

    async def run(self, dispatcher: CollectingDispatcher, tracker: Tracker,
                  domain: DomainDict) -> List[EventType]:
        lines = [f"- {s.name.capitalize()}: {self.biz.money(s.price)}, {s.duration_minutes} min. {s.description}"
                 for s in self.biz.services]
        dispatcher.utter_message(
            text="Here's what we offer:\n" + "\n".join(lines) + "\nWould you like to book one?",
            buttons=[{"title": f"Book a {s.name}", "payload": _payload("book_appointment", service=s.name)}
                     for s in self.biz.services[:3]])
        return []


class ActionAskRescheduleFormDate(_BookingAction):
    """Asks for the new day, naming the appointment being moved."""

    def name(self) -> Text:
        return "action_ask_reschedule_form_date"

    async def run(self, dispatcher: CollectingDispatcher, tracker: Tracker,
                  domain: DomainDict) -> List[EventType]:
        appointment = await self._appointment(tracker)
        if appointment:
            dispatcher.utter_message(
                text=f"Your {appointment.service} is on {when(appointment.start)}. Which day would you like instead?")
        else:
            dispatcher.utter_message(text="Which day would you like instead?")
        return []

    async def _appointment(self, tracker: Tracker) -> Optional[Appointment]:
        wanted = tracker.get_slot("appointment_id")
        try:
            for appointment in await call(self.booking.upcoming, customer_id=customer_id(tracker)):
                if appointment.id == wanted:
                    return appointment
        except ServiceError:
            return None
        return None


class ActionRescheduleAppointment(_BookingAction):
    def name(self) -> Text:
        return "action_reschedule_appointment"

    async def run(self, dispatcher: CollectingDispatcher, tracker: Tracker,
                  domain: DomainDict) -> List[EventType]:
        reset = RESET_BOOKING + [SlotSet("appointment_id", None)]
        appointment_id, start = tracker.get_slot("appointment_id"), self._start(tracker)
        if not appointment_id:
            dispatcher.utter_message(response="utter_no_appointments")
            return reset
        if start is None:
            dispatcher.utter_message(text="Sorry, I lost track of the new time. Please ask again.")
            return reset + [workflow_event("appointment.rescheduled", "reschedule", False, reason="incomplete")]
        try:
            moved = await call(self.booking.reschedule, appointment_id=appointment_id,
                               customer_id=customer_id(tracker), start=start,
                               idempotency_key=idempotency_key(tracker, self.name()))
        except SlotUnavailable as exc:
            dispatcher.utter_message(text=f"Sorry, {when(start)} isn't available ({exc}). Your appointment is unchanged.")
            return reset + [workflow_event("appointment.rescheduled", "reschedule", False,
                                           appointment_id=appointment_id, reason=exc.reason)]
        except (NotFound, ServiceError) as exc:
            if isinstance(exc, ServiceUnavailable):
                utter_unavailable(dispatcher)
            else:
                dispatcher.utter_message(text=f"Sorry, I couldn't move that appointment ({exc}).")
            log.error("reschedule failed appointment_id=%s error=%s", appointment_id, exc)
            return reset + [workflow_event("appointment.rescheduled", "reschedule", False,
                                           appointment_id=appointment_id, reason=exc.reason)]
        dispatcher.utter_message(text=f"Done! Your {moved.service} is now on {when(moved.start)} with {moved.staff}. "
                                      f"Reference {moved.id}.")
        return reset + [workflow_event("appointment.rescheduled", "reschedule", True, appointment_id=moved.id,
                                       service=moved.service, start=moved.start.isoformat())]


class ActionAskCancelAppointment(_BookingAction):
    def name(self) -> Text:
        return "action_ask_cancel_appointment"

    async def run(self, dispatcher: CollectingDispatcher, tracker: Tracker,
                  domain: DomainDict) -> List[EventType]:
        try:
            appointments = await call(self.booking.upcoming, customer_id=customer_id(tracker))
        except ServiceError as exc:
            log.error("could not list appointments: %s", exc)
            utter_unavailable(dispatcher)
            return [SlotSet("appointment_id", None)]
        if not appointments:
            dispatcher.utter_message(response="utter_no_appointments")
            return [SlotSet("appointment_id", None)]
        chosen = _choose(appointments, self.biz, tracker)
        dispatcher.utter_message(
            text=f"Cancel your {chosen.service} on {when(chosen.start)} (ref {chosen.id})?",
            buttons=confirm_buttons("Yes, cancel it", "No, keep it"))
        return [SlotSet("appointment_id", chosen.id)]


class ActionCancelAppointment(_BookingAction):
    def name(self) -> Text:
        return "action_cancel_appointment"

    async def run(self, dispatcher: CollectingDispatcher, tracker: Tracker,
                  domain: DomainDict) -> List[EventType]:
        appointment_id = tracker.get_slot("appointment_id")
        if not appointment_id:
            dispatcher.utter_message(response="utter_no_appointments")
            return []
        try:
            cancelled = await call(self.booking.cancel, appointment_id=appointment_id, customer_id=customer_id(tracker),
                                   idempotency_key=idempotency_key(tracker, self.name()))
        except ServiceError as exc:
            log.error("cancel failed appointment_id=%s error=%s", appointment_id, exc)
            if isinstance(exc, ServiceUnavailable):
                utter_unavailable(dispatcher)
            else:
                dispatcher.utter_message(text=f"Sorry, I couldn't cancel that appointment ({exc}).")
            return [SlotSet("appointment_id", None),
                    workflow_event("appointment.cancelled", "cancel_appointment", False,
                                   appointment_id=appointment_id, reason=exc.reason)]
        dispatcher.utter_message(text=f"Your {cancelled.service} on {when(cancelled.start)} is cancelled. "
                                      "Hope to see you another time!")
        return [SlotSet("appointment_id", None),
                workflow_event("appointment.cancelled", "cancel_appointment", True, appointment_id=cancelled.id,
                               service=cancelled.service, start=cancelled.start.isoformat())]
