"""Hand the conversation to a human customer service representative."""

from __future__ import annotations

from typing import Any, Dict, List, Text

from rasa_sdk import Action, Tracker
from rasa_sdk.events import SlotSet
from rasa_sdk.executor import CollectingDispatcher

from actions.clarify import ask_about, suggested_workflow


class ActionRequestHuman(Action):
    """Tells the customer a person will answer and asks the gateway to route there.

    The gateway reads `SlotSet("handoff_requested", True)` from the turn's events and
    stops asking the bot from the next message on.
    """

    def name(self) -> Text:
        return "action_request_human"

    async def run(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: Dict[Text, Any]
    ) -> List[Dict[Text, Any]]:
        dispatcher.utter_message(response="utter_handoff")
        return [SlotSet("handoff_requested", True), SlotSet("handoff_reason", "customer_request")]


def consecutive_fallbacks(tracker: Tracker) -> int:
    """How many of the latest user messages in a row NLU could not understand."""
    count = 0
    for event in reversed(tracker.events):
        if event.get("event") != "user":
            continue
        intent = ((event.get("parse_data") or {}).get("intent") or {}).get("name")
        if intent != "nlu_fallback":
            break
        count += 1
    return count


class ActionFallback(Action):
    """Low NLU confidence: ask to rephrase; the second time in a row, hand over to a person.

    A write workflow NLU was not sure enough of (actions/clarify.py) is asked about instead:
    "Did you want to book an appointment?" with Yes/No buttons.

    The handover is direct (no "would you like...?" question): the same turn sets
    handoff_requested with reason "repeated_fallback", which is also what the gateway
    does on its own when it counts two nlu_fallback turns in a row (docs/handoff.md).
    """

    def name(self) -> Text:
        return "action_fallback"

    async def run(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: Dict[Text, Any]
    ) -> List[Dict[Text, Any]]:
        if consecutive_fallbacks(tracker) >= 2:
            dispatcher.utter_message(response="utter_handoff_after_fallback")
            return [SlotSet("handoff_requested", True), SlotSet("handoff_reason", "repeated_fallback")]
        suggestion = suggested_workflow(tracker)
        if suggestion is not None:
            return ask_about(dispatcher, tracker, suggestion["name"])
        dispatcher.utter_message(response="utter_please_rephrase")
        return []
