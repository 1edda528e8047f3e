from __future__ import annotations

from datetime import timedelta

from rasa_sdk.executor import CollectingDispatcher

from actions.booking import (
    ActionAcknowledgeYes,
    ActionAskBookingConfirmation,
    ActionAskCancelAppointment,
    ActionBookAppointment,
    ActionBookingDeclined,
    ActionCancelAppointment,
    ActionCheckAvailability,
    ActionListServices,
    ActionRescheduleAppointment,
    ValidateAppointmentForm,
    ValidateRescheduleForm,
)
from actions.ports import Customer
from tests.actions.conftest import at
from tests.actions.fakes import Broken, make_tracker, slot_events, workflow

DOMAIN = {
    "forms": {
        "appointment_form": {"required_slots": ["service", "date", "time", "person_name", "phone_number"]},
        "reschedule_form": {"required_slots": ["date", "time"]},
    }
}


def texts(dispatcher: CollectingDispatcher) -> str:
    return "\n".join(m.get("text") or m.get("response") or "" for m in dispatcher.messages)


async def test_form_normalises_service_date_and_time(booking, crm, business, dispatcher, open_day):
    crm.customers["user-1"] = Customer(id="user-1", name="Anna", phone="+447700900123")
    form = ValidateAppointmentForm(booking=booking, crm=crm, business=business)
    tracker = make_tracker(
        "book a hair cut",
        "book_appointment",
        slots={"service": "hair cut", "date": open_day.strftime("%d/%m/%Y"), "time": "3pm"},
        active_loop="appointment_form",
    )
    events = await form.run(dispatcher, tracker, DOMAIN)
    slots = slot_events(events)
    assert slots["service"] == "haircut"
    assert slots["date"] == open_day.isoformat()
    assert slots["time"] == "15:00"
    assert slots.get("requested_slot") is None  # known customer: nothing more to ask


async def test_form_asks_new_customers_for_name_and_phone(booking, crm, business, dispatcher, open_day):
    form = ValidateAppointmentForm(booking=booking, crm=crm, business=business)
    tracker = make_tracker("haircut", "book_appointment", slots={"service": "haircut"}, active_loop="appointment_form")
    events = await form.run(dispatcher, tracker, DOMAIN)
    assert slot_events(events) == {"service": "haircut"}  # Rasa asks the next domain slot (date)
    required = await ValidateAppointmentForm(booking=booking, crm=crm, business=business).required_slots(
        [], dispatcher, make_tracker(""), DOMAIN
    )
    assert required == ["service", "date", "time", "person_name", "phone_number"]


async def test_form_refuses_a_closed_day(booking, crm, business, dispatcher, closed_day):
    form = ValidateAppointmentForm(booking=booking, crm=crm, business=business)
    tracker = make_tracker("sunday", slots={"date": closed_day.isoformat()}, active_loop="appointment_form")
    events = await form.run(dispatcher, tracker, DOMAIN)
    assert slot_events(events)["date"] is None
    assert "closed" in texts(dispatcher)


async def test_form_offers_nearest_free_times_when_taken(booking, crm, business, dispatcher, open_day):
    crm.customers["user-1"] = Customer(id="user-1", name="Anna", phone="+447700900123")
    booking.taken.add(at(business, open_day, 15))
    form = ValidateAppointmentForm(booking=booking, crm=crm, business=business)
    tracker = make_tracker(
        "3pm",
        slots={"service": "haircut", "date": open_day.isoformat(), "time": "15:00"},
        active_loop="appointment_form",
    )
    events = await form.run(dispatcher, tracker, DOMAIN)
    assert slot_events(events)["time"] is None
    assert "already taken" in texts(dispatcher)
    buttons = [b["title"] for b in dispatcher.messages[0]["buttons"]]
    assert "14:30" in buttons and "15:30" in buttons


async def test_form_refuses_times_outside_opening_hours(booking, crm, business, dispatcher, open_day):
    form = ValidateAppointmentForm(booking=booking, crm=crm, business=business)
    tracker = make_tracker(
        "at 8pm",
        slots={"service": "massage", "date": open_day.isoformat(), "time": "8pm"},
        active_loop="appointment_form",
    )
    events = await form.run(dispatcher, tracker, DOMAIN)
    assert slot_events(events)["time"] is None
    assert "opening hours" in texts(dispatcher)


async def test_form_validates_name_and_phone(booking, crm, business, dispatcher):
    form = ValidateAppointmentForm(booking=booking, crm=crm, business=business)
    assert form.validate_person_name("my name is anna smith", dispatcher, make_tracker(), {}) == {
        "person_name": "Anna Smith"
    }
    assert form.validate_phone_number("07700 900123", dispatcher, make_tracker(), {}) == {
        "phone_number": "+447700900123"
    }
    assert form.validate_phone_number("call me maybe", dispatcher, make_tracker("call me maybe"), {}) == {
        "phone_number": None
    }


async def test_confirmation_summarises_the_booking(booking, crm, business, dispatcher, open_day):
    action = ActionAskBookingConfirmation(booking=booking, crm=crm, business=business)
    await action.run(
        dispatcher, make_tracker(slots={"service": "haircut", "date": open_day.isoformat(), "time": "15:00"}), {}
    )
    assert "haircut" in texts(dispatcher) and "15:00" in texts(dispatcher)
    assert [b["payload"] for b in dispatcher.messages[0]["buttons"]] == ["/affirm", "/deny"]


async def test_book_appointment_books_saves_contact_and_reports(booking, crm, business, dispatcher, open_day):
    action = ActionBookAppointment(booking=booking, crm=crm, business=business)
    tracker = make_tracker(
        "yes",
        "affirm",
        slots={
            "service": "haircut",
            "date": open_day.isoformat(),
            "time": "15:00",
            "person_name": "Anna Smith",
            "phone_number": "+447700900123",
        },
    )
    events = await action.run(dispatcher, tracker, {})
    [appointment] = booking.upcoming(customer_id="user-1")
    assert appointment.start == at(business, open_day, 15)
    assert crm.customers["user-1"].name == "Anna Smith"
    assert crm.customers["user-1"].phone == "+447700900123"
    outcome = workflow(events)
    assert outcome["type"] == "appointment.booked" and outcome["workflow"] == "booking" and outcome["success"]
    assert outcome["data"]["appointment_id"] == appointment.id
    assert appointment.id in texts(dispatcher)
    assert slot_events(events)["service"] is None


async def test_book_appointment_reports_a_taken_slot(booking, crm, business, dispatcher, open_day):
    booking.taken.add(at(business, open_day, 15))
    action = ActionBookAppointment(booking=booking, crm=crm, business=business)
    events = await action.run(
        dispatcher, make_tracker(slots={"service": "haircut", "date": open_day.isoformat(), "time": "15:00"}), {}
    )
    assert workflow(events) == {
        "type": "appointment.booked",
        "workflow": "booking",
        "success": False,
        "data": {"reason": "slot_unavailable"},
    }
    assert booking.appointments == {}


async def test_book_appointment_when_the_service_is_down(crm, business, dispatcher, open_day):
    action = ActionBookAppointment(booking=Broken(), crm=crm, business=business)
    events = await action.run(
        dispatcher, make_tracker(slots={"service": "haircut", "date": open_day.isoformat(), "time": "15:00"}), {}
    )
    assert workflow(events)["success"] is False
    assert workflow(events)["data"]["reason"] == "service_unavailable"
    assert dispatcher.messages[0]["response"] == "utter_service_unavailable"


async def test_declining_books_nothing(booking, crm, business, dispatcher):
    events = await ActionBookingDeclined(booking=booking, crm=crm, business=business).run(
        dispatcher, make_tracker(), {}
    )
    assert slot_events(events) == {"service": None, "date": None, "time": None}
    assert booking.appointments == {}


async def test_check_availability_lists_free_times_as_buttons(booking, crm, business, dispatcher, open_day):
    action = ActionCheckAvailability(booking=booking, crm=crm, business=business)
    tracker = make_tracker(
        "any haircut slots?", "check_availability", entities={"service": "haircut", "date": open_day.isoformat()}
    )
    await action.run(dispatcher, tracker, {})
    payload = dispatcher.messages[0]["buttons"][0]["payload"]
    assert payload.startswith('/book_appointment{"service":"haircut","date":"' + open_day.isoformat())


async def test_check_availability_asks_for_the_service(booking, crm, business, dispatcher):
    await ActionCheckAvailability(booking=booking, crm=crm, business=business).run(
        dispatcher, make_tracker("are you free tomorrow", "check_availability"), {}
    )
    assert "Which service" in texts(dispatcher)


async def test_list_services_comes_from_the_business_data(business, dispatcher):
    await ActionListServices(business=business).run(dispatcher, make_tracker(), {})
    for service in business.services:
        assert service.name.capitalize() in texts(dispatcher)


async def test_reschedule_form_picks_the_next_appointment(booking, crm, business, dispatcher, open_day):
    booked = booking.book(customer_id="user-1", service="haircut", start=at(business, open_day, 10))
    form = ValidateRescheduleForm(booking=booking, crm=crm, business=business)
    tracker = make_tracker(
        "move it to 4pm",
        "reschedule_appointment",
        slots={"date": open_day.isoformat(), "time": "4pm"},
        active_loop="reschedule_form",
    )
    events = await form.run(dispatcher, tracker, DOMAIN)
    slots = slot_events(events)
    assert slots["appointment_id"] == booked.id and slots["time"] == "16:00"


async def test_reschedule_form_ends_at_once_without_appointments(booking, crm, business, dispatcher):
    form = ValidateRescheduleForm(booking=booking, crm=crm, business=business)
    events = await form.run(
        dispatcher, make_tracker("reschedule", "reschedule_appointment", active_loop="reschedule_form"), DOMAIN
    )
    assert slot_events(events)["requested_slot"] is None


async def test_reschedule_moves_the_appointment(booking, crm, business, dispatcher, open_day):
    booked = booking.book(customer_id="user-1", service="haircut", start=at(business, open_day, 10))
    action = ActionRescheduleAppointment(booking=booking, crm=crm, business=business)
    events = await action.run(
        dispatcher, make_tracker(slots={"appointment_id": booked.id, "date": open_day.isoformat(), "time": "16:00"}), {}
    )
    assert booking.appointments[booked.id].start == at(business, open_day, 16)
    assert workflow(events)["type"] == "appointment.rescheduled" and workflow(events)["success"]


async def test_reschedule_into_a_taken_slot_changes_nothing(booking, crm, business, dispatcher, open_day):
    booked = booking.book(customer_id="user-1", service="haircut", start=at(business, open_day, 10))
    booking.taken.add(at(business, open_day, 16))
    events = await ActionRescheduleAppointment(booking=booking, crm=crm, business=business).run(
        dispatcher, make_tracker(slots={"appointment_id": booked.id, "date": open_day.isoformat(), "time": "16:00"}), {}
    )
    assert booking.appointments[booked.id].start == at(business, open_day, 10)
    assert workflow(events)["success"] is False and workflow(events)["data"]["reason"] == "slot_unavailable"


async def test_reschedule_without_appointment(booking, crm, business, dispatcher):
    events = await ActionRescheduleAppointment(booking=booking, crm=crm, business=business).run(
        dispatcher, make_tracker(), {}
    )
    assert dispatcher.messages[0]["response"] == "utter_no_appointments"
    assert workflow(events) is None


async def test_cancel_asks_first_then_cancels(booking, crm, business, dispatcher, open_day):
    booking.book(customer_id="user-1", service="massage", start=at(business, open_day, 11))
    booked = booking.book(customer_id="user-1", service="haircut", start=at(business, open_day + timedelta(days=1), 10))
    ask = ActionAskCancelAppointment(booking=booking, crm=crm, business=business)
    events = await ask.run(
        dispatcher, make_tracker("cancel my haircut", "cancel_appointment", entities={"service": "haircut"}), {}
    )
    assert slot_events(events)["appointment_id"] == booked.id
    assert booking.appointments[booked.id].status == "booked"
    events = await ActionCancelAppointment(booking=booking, crm=crm, business=business).run(
        dispatcher, make_tracker("yes", "affirm", slots={"appointment_id": booked.id}), {}
    )
    assert booking.appointments[booked.id].status == "cancelled"
    outcome = workflow(events)
    assert (outcome["type"], outcome["workflow"], outcome["success"]) == (
        "appointment.cancelled",
        "cancel_appointment",
        True,
    )


async def test_cancel_from_a_reminder_asks_about_the_reminded_appointment(booking, crm, business, dispatcher, open_day):
    booking.book(customer_id="user-1", service="massage", start=at(business, open_day, 11))
    later = booking.book(customer_id="user-1", service="haircut", start=at(business, open_day + timedelta(days=1), 10))
    tracker = make_tracker("/cancel_appointment", "cancel_appointment")
    tracker.latest_message["metadata"]["appointment_id"] = later.id  # the API: a button pressed on its reminder
    events = await ActionAskCancelAppointment(booking=booking, crm=crm, business=business).run(dispatcher, tracker, {})
    assert slot_events(events)["appointment_id"] == later.id
    assert "haircut" in texts(dispatcher)


async def test_confirm_on_a_reminder_thanks_for_that_appointment(booking, crm, business, dispatcher, open_day):
    booking.book(customer_id="user-1", service="massage", start=at(business, open_day, 11))
    later = booking.book(customer_id="user-1", service="haircut", start=at(business, open_day + timedelta(days=1), 10))
    tracker = make_tracker("/affirm", "affirm")
    tracker.latest_message["metadata"]["appointment_id"] = later.id
    await ActionAcknowledgeYes(booking=booking, crm=crm, business=business).run(dispatcher, tracker, {})
    said = texts(dispatcher)
    assert len(dispatcher.messages) == 1 and said.startswith("Thanks for confirming! Your haircut") and "10:00" in said


async def test_a_yes_out_of_context_asks_what_else(booking, crm, business, dispatcher):
    await ActionAcknowledgeYes(booking=booking, crm=crm, business=business).run(
        dispatcher, make_tracker("yes", "affirm"), {}
    )
    assert dispatcher.messages[0]["response"] == "utter_anything_else"


async def test_a_booking_reports_the_customer_s_name_for_its_reminder(booking, crm, business, dispatcher, open_day):
    crm.get_or_create(customer_id="user-1")
    crm.update(customer_id="user-1", name="Maria Lopez")
    action = ActionBookAppointment(booking=booking, crm=crm, business=business)
    events = await action.run(
        dispatcher, make_tracker(slots={"service": "haircut", "date": open_day.isoformat(), "time": "15:00"}), {}
    )
    assert workflow(events)["data"]["customer_name"] == "Maria Lopez"


async def test_cancel_with_nothing_booked(booking, crm, business, dispatcher):
    events = await ActionAskCancelAppointment(booking=booking, crm=crm, business=business).run(
        dispatcher, make_tracker("cancel my appointment", "cancel_appointment"), {}
    )
    assert dispatcher.messages[0]["response"] == "utter_no_appointments"
    assert slot_events(events)["appointment_id"] is None


async def test_cancel_when_the_service_is_down(crm, business, dispatcher):
    events = await ActionCancelAppointment(booking=Broken(), crm=crm, business=business).run(
        dispatcher, make_tracker(slots={"appointment_id": "APT-1"}), {}
    )
    assert workflow(events)["success"] is False
    assert dispatcher.messages[0]["response"] == "utter_service_unavailable"


async def test_customer_id_falls_back_to_the_sender_without_metadata(booking, crm, business, dispatcher, open_day):
    action = ActionBookAppointment(booking=booking, crm=crm, business=business)
    tracker = make_tracker(
        slots={"service": "haircut", "date": open_day.isoformat(), "time": "15:00"},
        user_id=None,
        sender_id="conversation-9",
    )
    await action.run(dispatcher, tracker, {})
    assert booking.upcoming(customer_id="conversation-9")


async def test_booking_does_not_depend_on_the_crm(booking, business, dispatcher, open_day):
    events = await ActionBookAppointment(booking=booking, crm=Broken(), business=business).run(
        dispatcher,
        make_tracker(
            slots={"service": "haircut", "date": open_day.isoformat(), "time": "15:00", "person_name": "Anna"}
        ),
        {},
    )
    assert workflow(events)["success"] is True and booking.upcoming(customer_id="user-1")
