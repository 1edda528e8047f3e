"""Ask before acting: a write workflow NLU was not sure of is offered as a question, not started.

The NLU pipeline's WorkflowFallbackClassifier (connectors/rasa/nlu/workflow_fallback.py) turns a
booking, order, cancellation, contact change or feedback predicted below its workflow's bar into
`nlu_fallback`, with the workflow kept second in the intent ranking. `action_fallback` then asks
"Did you want to …?" with Yes/No buttons: Yes sends the workflow's intent with the message's
entities (`/book_appointment{"service": "haircut"}`), so the workflow starts where it would have;
a typed "yes" does the same through `action_accept_suggestion`, which puts the customer's original
message back with the confirmed intent, as Rasa's two-stage fallback does.
"""

from __future__ import annotations

import json
from typing import Any

from rasa_sdk import Action, Tracker
from rasa_sdk.events import ActionExecuted, SlotSet, UserUtteranceReverted, UserUttered
from rasa_sdk.executor import CollectingDispatcher

# The workflows that change something for the customer, and how the question names them.
WORKFLOW_QUESTIONS: dict[str, str] = {
    "book_appointment": "book an appointment",
    "reschedule_appointment": "move an appointment",
    "cancel_appointment": "cancel an appointment",
    "add_to_cart": "add something to your cart",
    "place_order": "place your order",
    "cancel_order": "cancel an order",
    "update_contact": "change your contact details",
    "give_feedback": "leave feedback about us",
}
SUGGESTION_SLOT = "suggested_intent"


def suggested_workflow(tracker: Tracker) -> dict[str, Any] | None:
    """The write workflow NLU ranked just under its fallback for the latest message, if any."""
    message = tracker.latest_message or {}
    if ((message.get("intent") or {}).get("name")) != "nlu_fallback":
        return None
    ranking = [item for item in message.get("intent_ranking") or [] if item.get("name") != "nlu_fallback"]
    if ranking and ranking[0].get("name") in WORKFLOW_QUESTIONS:
        return ranking[0]
    return None


def payload(intent: str, entities: list[dict[str, Any]]) -> str:
    """`/intent{"entity": "value"}`: the button's message, parsed by Rasa without NLU."""
    values = {e["entity"]: e.get("value") for e in entities if e.get("entity") and e.get("value") is not None}
    return f"/{intent}{json.dumps(values)}" if values else f"/{intent}"


def ask_about(dispatcher: CollectingDispatcher, tracker: Tracker, intent: str) -> list[dict[str, Any]]:
    entities = (tracker.latest_message or {}).get("entities") or []
    dispatcher.utter_message(
        response="utter_ask_workflow",
        workflow=WORKFLOW_QUESTIONS[intent],
        buttons=[{"title": "Yes", "payload": payload(intent, entities)}, {"title": "No", "payload": "/deny"}],
    )
    return [SlotSet(SUGGESTION_SLOT, intent)]


def _previous_user_event(tracker: Tracker) -> dict[str, Any] | None:
    """The user message before the latest one (the one the bot asked about)."""
    users = [event for event in tracker.events if event.get("event") == "user"]
    return users[-2] if len(users) >= 2 else None


class ActionAcceptSuggestion(Action):
    """A typed "yes" to "Did you want to …?": the asked-about message, now with the confirmed intent."""

    def name(self) -> str:
        return "action_accept_suggestion"

    async def run(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: dict[str, Any]
    ) -> list[dict[str, Any]]:
        intent = tracker.get_slot(SUGGESTION_SLOT)
        asked = _previous_user_event(tracker)
        if intent not in WORKFLOW_QUESTIONS or asked is None:
            dispatcher.utter_message(response="utter_please_rephrase")
            return [SlotSet(SUGGESTION_SLOT, None)]
        parse_data = dict(asked.get("parse_data") or {})
        parse_data["intent"] = {"name": intent, "confidence": 1.0}
        parse_data["intent_ranking"] = [parse_data["intent"]]
        # Drop the "yes" and the question's turn, then replay the original message as understood:
        # the workflow's rule starts from it as if NLU had been sure.
        return [
            UserUtteranceReverted(),
            UserUtteranceReverted(),
            SlotSet(SUGGESTION_SLOT, None),
            ActionExecuted("action_listen"),
            UserUttered(asked.get("text"), parse_data=parse_data, input_channel=asked.get("input_channel")),
        ]


class ActionDeclineSuggestion(Action):
    """"No" to "Did you want to …?": nothing happens; ask what they need instead."""

    def name(self) -> str:
        return "action_decline_suggestion"

    async def run(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: dict[str, Any]
    ) -> list[dict[str, Any]]:
        dispatcher.utter_message(response="utter_suggestion_declined")
        return [SlotSet(SUGGESTION_SLOT, None)]
