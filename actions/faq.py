"""FAQ answers and list of services, from the business data files."""

from __future__ import annotations

from typing import List, Optional, Text

from rasa_sdk import Action, Tracker
from rasa_sdk.events import EventType
from rasa_sdk.executor import CollectingDispatcher
from rasa_sdk.types import DomainDict

from actions import bootstrap
from actions.business import Business


def faq_key(tracker: Tracker) -> Optional[str]:
    """`opening_hours` for `faq/opening_hours`, as chosen by the ResponseSelector."""
    selector = (tracker.latest_message or {}).get("response_selector") or {}
    response = (selector.get("faq") or selector.get("default") or {}).get("response") or {}
    key = response.get("intent_response_key") or ""
    return key.split("/", 1)[1] if "/" in key else None


class ActionAnswerFaq(Action):
    def __init__(self, business: Optional[Business] = None) -> None:
        self._business = business

    @property
    def biz(self) -> Business:
        return self._business or bootstrap.business()

    def name(self) -> Text:
        return "action_answer_faq"

    async def run(self, dispatcher: CollectingDispatcher, tracker: Tracker,
                  domain: DomainDict) -> List[EventType]:
        key = faq_key(tracker)
        answer = self.biz.faq.get(key or "")
        if answer:
            dispatcher.utter_message(text=answer)
        elif key:
            dispatcher.utter_message(response=f"utter_faq/{key}")
        else:
            dispatcher.utter_message(response="utter_please_rephrase")
        return []
