from __future__ import annotations

from rasa_sdk.executor import CollectingDispatcher

from actions.crm import ActionSessionStart, ActionUpdateContact, ActionViewProfile
from actions.faq import ActionAnswerFaq
from actions.feedback import ActionSubmitFeedback, ValidateFeedbackForm, parse_rating
from actions.handoff import ActionRequestHuman
from actions.ports import Customer
from tests.actions.conftest import at
from tests.actions.fakes import Broken, make_tracker, slot_events, workflow


def texts(dispatcher) -> str:
    return "\n".join(m.get("text") or m.get("response") or "" for m in dispatcher.messages)


async def test_session_start_creates_the_customer_from_metadata(crm, dispatcher):
    tracker = make_tracker(slots={"session_started_metadata": {"user_id": "447700900123", "channel": "whatsapp"}})
    events = await ActionSessionStart(crm=crm).run(dispatcher, tracker, {"session_config": {}})
    assert events[0]["event"] == "session_started" and events[-1]["name"] == "action_listen"
    assert "447700900123" in crm.customers


async def test_session_start_survives_a_broken_crm(dispatcher):
    events = await ActionSessionStart(crm=Broken()).run(dispatcher, make_tracker(), {"session_config": {}})
    assert events[-1]["name"] == "action_listen"


async def test_session_start_recognises_a_returning_customer(crm, dispatcher):
    crm.customers["user-1"] = Customer(id="user-1", name="Anna Smith")
    tracker = make_tracker(slots={"session_started_metadata": {"user_id": "user-1", "channel": "api"}})
    events = await ActionSessionStart(crm=crm).run(dispatcher, tracker, {"session_config": {}})
    assert slot_events(events)["customer_name"] == "Anna Smith"
    assert slot_events(events)["returning_customer"] is True


async def test_update_email(crm, dispatcher):
    events = await ActionUpdateContact(crm=crm).run(
        dispatcher,
        make_tracker("my email is Anna@Example.com", "update_contact", entities={"email": "Anna@Example.com"}),
        {},
    )
    assert crm.customers["user-1"].email == "anna@example.com"
    assert workflow(events) == {
        "type": "contact.updated",
        "workflow": "contact_update",
        "success": True,
        "data": {"fields": ["email"]},
    }


async def test_update_phone_and_name(crm, dispatcher):
    await ActionUpdateContact(crm=crm).run(
        dispatcher,
        make_tracker(
            "I'm anna, number 07700 900123",
            "update_contact",
            entities={"person_name": "anna", "phone_number": "07700 900123"},
        ),
        {},
    )
    assert crm.customers["user-1"].phone == "+447700900123" and crm.customers["user-1"].name == "Anna"


async def test_invalid_email_changes_nothing(crm, dispatcher):
    events = await ActionUpdateContact(crm=crm).run(
        dispatcher, make_tracker("my email is anna@nowhere", "update_contact", entities={"email": "anna@nowhere"}), {}
    )
    assert "doesn't look like a valid email" in texts(dispatcher)
    assert workflow(events)["success"] is False and "user-1" not in crm.customers


async def test_update_without_a_value_asks_for_it(crm, dispatcher):
    events = await ActionUpdateContact(crm=crm).run(dispatcher, make_tracker("update my details", "update_contact"), {})
    assert dispatcher.messages[0]["response"] == "utter_ask_contact_detail" and workflow(events) is None


async def test_update_when_the_crm_is_down(dispatcher):
    events = await ActionUpdateContact(crm=Broken()).run(
        dispatcher, make_tracker("a@b.com", "update_contact", entities={"email": "a@b.com"}), {}
    )
    assert workflow(events)["success"] is False
    assert dispatcher.messages[0]["response"] == "utter_service_unavailable"


async def test_view_profile_lists_details_and_appointments(crm, booking, commerce, business, dispatcher, open_day):
    crm.customers["user-1"] = Customer(id="user-1", name="Anna", email="anna@example.com")
    booking.book(customer_id="user-1", service="facial", start=at(business, open_day, 11))
    await ActionViewProfile(crm=crm, booking=booking, commerce=commerce, business=business).run(
        dispatcher, make_tracker("my profile", "view_profile"), {}
    )
    text = texts(dispatcher)
    assert "Name: Anna" in text and "anna@example.com" in text and "facial on" in text


def test_rating_parsing():
    assert [parse_rating(v) for v in ("5", "4 stars", "three", "8/10", "⭐⭐", "meh")] == [5, 4, 3, 4, 2, None]


async def test_feedback_form_validates_rating_and_comment(dispatcher):
    form = ValidateFeedbackForm()
    assert form.validate_rating("5 stars", dispatcher, make_tracker(), {}) == {"rating": "5"}
    assert form.validate_rating("great", dispatcher, make_tracker("great"), {}) == {"rating": None}
    assert form.validate_feedback_comment("no thanks", dispatcher, make_tracker(), {}) == {"feedback_comment": "-"}
    assert form.validate_feedback_comment("Lovely staff", dispatcher, make_tracker(), {}) == {
        "feedback_comment": "Lovely staff"
    }


async def test_feedback_is_recorded(feedback, crm, dispatcher):
    events = await ActionSubmitFeedback(feedback=feedback, crm=crm).run(
        dispatcher, make_tracker(slots={"rating": "5", "feedback_comment": "Lovely staff"}), {}
    )
    [record] = feedback.records
    assert (record.customer_id, record.rating, record.comment, record.conversation_id) == (
        "user-1",
        5,
        "Lovely staff",
        "conv-1",
    )
    assert workflow(events)["type"] == "feedback.received" and workflow(events)["success"]
    assert "handoff_requested" not in slot_events(events)


async def test_a_rating_of_one_asks_for_a_human(feedback, crm, dispatcher):
    events = await ActionSubmitFeedback(feedback=feedback, crm=crm).run(
        dispatcher, make_tracker(slots={"rating": "1", "feedback_comment": "-"}), {}
    )
    assert feedback.records[0].comment is None
    slots = slot_events(events)
    assert slots["handoff_requested"] is True and slots["handoff_reason"] == "low_rating"


async def test_feedback_when_the_service_is_down(crm, dispatcher):
    events = await ActionSubmitFeedback(feedback=Broken(), crm=crm).run(
        dispatcher, make_tracker(slots={"rating": "4", "feedback_comment": "-"}), {}
    )
    assert workflow(events)["success"] is False


async def test_faq_answers_from_the_business_data(business, dispatcher):
    selector = {"faq": {"response": {"intent_response_key": "faq/opening_hours"}}}
    await ActionAnswerFaq(business=business).run(
        dispatcher, make_tracker("hours?", "faq", response_selector=selector), {}
    )
    assert "Saturday 09:00-17:00" in texts(dispatcher) and "Sunday closed" in texts(dispatcher)


async def test_every_faq_topic_has_an_answer(business):
    for topic in ("opening_hours", "location", "shipping", "returns", "payment_methods", "pricing"):
        assert business.faq[topic]


async def test_request_human(dispatcher):
    events = await ActionRequestHuman().run(dispatcher, make_tracker("a human please", "request_human"), {})
    assert slot_events(events) == {"handoff_requested": True, "handoff_reason": "customer_request"}


async def test_first_fallback_asks_to_rephrase_second_hands_over(dispatcher):
    from actions.handoff import ActionFallback

    once = [{"event": "user", "parse_data": {"intent": {"name": "greet"}}}]
    events = await ActionFallback().run(dispatcher, make_tracker("asdf", "nlu_fallback", events=once), {})
    assert events == [] and dispatcher.messages[0]["response"] == "utter_please_rephrase"
    twice = [
        {"event": "user", "parse_data": {"intent": {"name": "nlu_fallback"}}},
        {"event": "action", "name": "action_fallback"},
        {"event": "action", "name": "action_listen"},
    ]
    tracker = make_tracker("qwer", "nlu_fallback", events=twice)
    tracker.events[-1]["parse_data"]["intent"]["name"] = "nlu_fallback"
    second = CollectingDispatcher()
    events = await ActionFallback().run(second, tracker, {})
    assert slot_events(events) == {"handoff_requested": True, "handoff_reason": "repeated_fallback"}
    assert second.messages[0]["response"] == "utter_handoff_after_fallback"
