"""Hand the conversation to a human customer service representative."""

from __future__ import annotations

from typing import Any, Dict, List, Text

from rasa_sdk import Action, Tracker
from rasa_sdk.events import SlotSet
from rasa_sdk.executor import CollectingDispatcher


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
