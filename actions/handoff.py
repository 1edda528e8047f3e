"""Hand the conversation to a human customer service representative."""

from __future__ import annotations

from typing import Any, Dict, List, Optional, Text

from rasa_sdk import Action, Tracker
from rasa_sdk.events import FollowupAction, SlotSet
from rasa_sdk.executor import CollectingDispatcher

OFFER_AFTER_FALLBACK = "utter_offer_human"


def previous_bot_action(tracker: Tracker) -> Optional[str]:
    """The last action the bot ran before the latest user message (action_listen excluded)."""
    seen_user = False
    for event in reversed(tracker.events):
        if event.get("event") == "user":
            if seen_user:
                return None
            seen_user = True
        elif seen_user and event.get("event") == "action" and event.get("name") != "action_listen":
            return event.get("name")
    return None


class ActionRequestHuman(Action):
    """Tells the customer a person will answer and asks the gateway to route there.

    The gateway reads `SlotSet("handoff_requested", True)` from the turn's events and
    stops asking the bot from the next message on. The reason is "repeated_fallback"
    when the customer accepts the offer made after two misunderstood messages in a
    row, "customer_request" otherwise.
    """

    def name(self) -> Text:
        return "action_request_human"

    async def run(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: Dict[Text, Any]
    ) -> List[Dict[Text, Any]]:
        reason = "repeated_fallback" if previous_bot_action(tracker) == OFFER_AFTER_FALLBACK else "customer_request"
        dispatcher.utter_message(response="utter_handoff")
        return [SlotSet("handoff_requested", True), SlotSet("handoff_reason", reason)]


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
    """Low NLU confidence: ask to rephrase; the second time in a row, offer a human.

    The offer is `utter_offer_human` (run as a follow-up so the rules can see it);
    accepting it runs action_request_human with reason "repeated_fallback".
    """

    def name(self) -> Text:
        return "action_fallback"

    async def run(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: Dict[Text, Any]
    ) -> List[Dict[Text, Any]]:
        if consecutive_fallbacks(tracker) >= 2 and previous_bot_action(tracker) != OFFER_AFTER_FALLBACK:
            return [FollowupAction(OFFER_AFTER_FALLBACK)]
        dispatcher.utter_message(response="utter_please_rephrase")
        return []
