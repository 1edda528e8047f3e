"""Feedback: a 1-5 rating and an optional comment, recorded; a rating of 1 asks for a human."""

from __future__ import annotations

import re
from typing import Any, Dict, List, Optional, Text

from rasa_sdk import Action, FormValidationAction, Tracker
from rasa_sdk.events import EventType, SlotSet
from rasa_sdk.executor import CollectingDispatcher
from rasa_sdk.types import DomainDict

from actions import bootstrap
from actions.common import (
    call,
    channel,
    customer_id,
    handoff_events,
    idempotency_key,
    latest_text,
    log,
    utter_unavailable,
    workflow_event,
)
from actions.ports import CrmService, FeedbackService, ServiceError

NO_COMMENT = "-"
_WORDS = {"one": 1, "two": 2, "three": 3, "four": 4, "five": 5}
_SKIP = re.compile(r"^\s*(no|nope|nah|no thanks|no thank you|nothing|skip|none|n/?a|that'?s it|no comment)\b[\s.!]*$",
                   re.IGNORECASE)


def parse_rating(value: Any) -> Optional[int]:
    if value is None:
        return None
    text = str(value).lower()
    out_of_ten = re.search(r"\b(\d{1,2})\s*(?:/|out of)\s*10\b", text)
    if out_of_ten:
        return max(1, min(5, round(int(out_of_ten.group(1)) / 2)))
    digits = re.search(r"\b([1-5])\b", text)
    if digits:
        return int(digits.group(1))
    for word, number in _WORDS.items():
        if re.search(rf"\b{word}\b", text):
            return number
    if "⭐" in text:
        return min(5, text.count("⭐"))
    return None


class ValidateFeedbackForm(FormValidationAction):
    def name(self) -> Text:
        return "validate_feedback_form"

    def validate_rating(self, value: Any, dispatcher: CollectingDispatcher, tracker: Tracker,
                        domain: DomainDict) -> Dict[Text, Any]:
        rating = parse_rating(value) or parse_rating(latest_text(tracker))
        if rating is None:
            dispatcher.utter_message(text="Please rate us with a number from 1 (poor) to 5 (excellent).")
            return {"rating": None}
        return {"rating": str(rating)}

    def validate_feedback_comment(self, value: Any, dispatcher: CollectingDispatcher, tracker: Tracker,
                                  domain: DomainDict) -> Dict[Text, Any]:
        text = str(value or "").strip()
        if not text or _SKIP.match(text):
            return {"feedback_comment": NO_COMMENT}
        return {"feedback_comment": text[:2000]}


class ActionSubmitFeedback(Action):
    def __init__(self, feedback: Optional[FeedbackService] = None, crm: Optional[CrmService] = None) -> None:
        self._feedback = feedback
        self._crm = crm

    @property
    def feedback(self) -> FeedbackService:
        return self._feedback or bootstrap.feedback()

    @property
    def crm(self) -> CrmService:
        return self._crm or bootstrap.crm()

    def name(self) -> Text:
        return "action_submit_feedback"

    async def run(self, dispatcher: CollectingDispatcher, tracker: Tracker,
                  domain: DomainDict) -> List[EventType]:
        reset = [SlotSet("rating", None), SlotSet("feedback_comment", None)]
        rating = parse_rating(tracker.get_slot("rating"))
        comment = tracker.get_slot("feedback_comment")
        comment = None if comment in (None, NO_COMMENT) else str(comment)
        if rating is None:
            dispatcher.utter_message(text="Sorry, I didn't get a rating, so nothing was recorded.")
            return reset + [workflow_event("feedback.received", "feedback", False, reason="no_rating")]
        user = customer_id(tracker)
        try:
            await call(self.crm.get_or_create, customer_id=user, channel=channel(tracker))
            record = await call(self.feedback.record, customer_id=user, rating=rating, comment=comment,
                                conversation_id=tracker.sender_id,
                                idempotency_key=idempotency_key(tracker, self.name()))
        except ServiceError as exc:
            log.error("feedback not recorded customer_id=%s error=%s", user, exc)
            utter_unavailable(dispatcher)
            return reset + [workflow_event("feedback.received", "feedback", False, reason=exc.reason, rating=rating)]
        events = reset + [workflow_event("feedback.received", "feedback", True, feedback_id=record.id,
                                         rating=rating, has_comment=comment is not None)]
        if rating == 1:
            dispatcher.utter_message(response="utter_feedback_low")
            return events + handoff_events("low_rating")
        dispatcher.utter_message(response="utter_feedback_thanks" if rating >= 4 else "utter_feedback_noted")
        return events
