"""Ask before acting: a write workflow NLU was not sure of becomes a question (actions/clarify.py)."""

from __future__ import annotations

import json

from rasa_sdk.executor import CollectingDispatcher

from actions.clarify import ActionAcceptSuggestion, ActionDeclineSuggestion, suggested_workflow
from actions.handoff import ActionFallback
from tests.actions.fakes import make_tracker, slot_events

GATED_BOOKING = [{"name": "nlu_fallback", "confidence": 0.5}, {"name": "book_appointment", "confidence": 0.62}]


def gated_tracker(ranking=GATED_BOOKING, entities=None, events=None):
    tracker = make_tracker("could i maybe come in for a haircut", "nlu_fallback", entities=entities, events=events)
    tracker.latest_message["intent_ranking"] = ranking
    return tracker


async def test_a_doubted_booking_is_asked_about_with_buttons_that_carry_its_entities(dispatcher):
    tracker = gated_tracker(entities=[{"entity": "service", "value": "haircut"}])
    events = await ActionFallback().run(dispatcher, tracker, {})
    assert slot_events(events) == {"suggested_intent": "book_appointment"}
    (message,) = dispatcher.messages
    assert message["response"] == "utter_ask_workflow" and message["workflow"] == "book an appointment"
    yes, no = message["buttons"]
    assert yes["payload"].startswith("/book_appointment{")
    assert json.loads(yes["payload"].removeprefix("/book_appointment")) == {"service": "haircut"}
    assert no["payload"] == "/deny"


async def test_a_doubted_question_that_changes_nothing_asks_to_rephrase(dispatcher):
    tracker = gated_tracker(ranking=[{"name": "nlu_fallback", "confidence": 0.5}, {"name": "list_services"}])
    assert suggested_workflow(tracker) is None
    assert await ActionFallback().run(dispatcher, tracker, {}) == []
    assert dispatcher.messages[0]["response"] == "utter_please_rephrase"


async def test_a_second_unclear_message_in_a_row_still_hands_over(dispatcher):
    before = [
        {"event": "user", "parse_data": {"intent": {"name": "nlu_fallback"}}},
        {"event": "action", "name": "action_fallback"},
        {"event": "action", "name": "action_listen"},
    ]
    tracker = gated_tracker(events=before)
    tracker.events[-1]["parse_data"]["intent"]["name"] = "nlu_fallback"
    events = await ActionFallback().run(dispatcher, tracker, {})
    assert slot_events(events)["handoff_reason"] == "repeated_fallback"


async def test_a_typed_yes_replays_the_asked_message_with_the_confirmed_intent():
    asked = {
        "event": "user",
        "text": "could i maybe come in for a haircut",
        "parse_data": {"intent": {"name": "nlu_fallback"}, "entities": [{"entity": "service", "value": "haircut"}]},
        "input_channel": "reviewbot",
    }
    tracker = make_tracker("yes", "affirm", slots={"suggested_intent": "book_appointment"}, events=[asked])
    events = await ActionAcceptSuggestion().run(CollectingDispatcher(), tracker, {})
    kinds = [event["event"] for event in events]
    # The "yes" and the question's turn are undone, the original message comes back understood.
    assert kinds == ["rewind", "rewind", "slot", "action", "user"]
    replayed = events[-1]
    assert replayed["text"] == asked["text"]
    assert replayed["parse_data"]["intent"] == {"name": "book_appointment", "confidence": 1.0}
    assert replayed["parse_data"]["entities"] == [{"entity": "service", "value": "haircut"}]
    assert events[3]["name"] == "action_listen"


async def test_a_yes_with_nothing_asked_changes_nothing(dispatcher):
    events = await ActionAcceptSuggestion().run(dispatcher, make_tracker("yes", "affirm"), {})
    assert slot_events(events) == {"suggested_intent": None}
    assert dispatcher.messages[0]["response"] == "utter_please_rephrase"


async def test_no_clears_the_suggestion(dispatcher):
    tracker = make_tracker("no", "deny", slots={"suggested_intent": "cancel_order"})
    events = await ActionDeclineSuggestion().run(dispatcher, tracker, {})
    assert slot_events(events) == {"suggested_intent": None}
    assert dispatcher.messages[0]["response"] == "utter_suggestion_declined"
