"""Helpers shared by the actions: who the customer is, calling ports, reporting workflows."""

from __future__ import annotations

import asyncio
import functools
import logging
import re
from datetime import datetime
from typing import Any, Callable, Dict, List, Optional, TypeVar

from rasa_sdk import Tracker
from rasa_sdk.events import SlotSet
from rasa_sdk.executor import CollectingDispatcher

log = logging.getLogger("actions")

T = TypeVar("T")

EMAIL_RE = re.compile(r"[A-Za-z0-9_][A-Za-z0-9._%+'-]*@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}")
PHONE_RE = re.compile(r"(?<![\w@])\+?\(?\d[\d\s().-]{5,18}\d(?!\w)")
# Order references as customers type them: "ORD-123456", "ord 123456", "order 10234", "order no. 10234",
# "#55871", a message or entity that is only a number, or a bare six-digit number (the stored form's digits).
ORDER_RE = re.compile(
    r"\bord(?:er)?(?:\s*(?:number|num|no|nr|ref|reference|id)\b)?[\s.#:-]*(\d{4,8})\b"
    r"|(?<![\w#])#\s?(\d{4,8})\b"
    r"|^\s*(\d{4,8})\s*$"
    r"|\b(\d{6})\b",
    re.IGNORECASE,
)
# The extractor whose value is the whole match of a pattern; DIET may tag part of an address or number.
PATTERN_EXTRACTOR = "RegexEntityExtractor"
NUMBER_WORDS = {
    "a": 1, "an": 1, "one": 1, "single": 1, "two": 2, "couple": 2, "pair": 2, "three": 3, "four": 4,
    "five": 5, "six": 6, "seven": 7, "eight": 8, "nine": 9, "ten": 10, "dozen": 12,
}


def metadata(tracker: Tracker) -> Dict[str, Any]:
    meta = (tracker.latest_message or {}).get("metadata") or {}
    if not meta:
        meta = tracker.get_slot("session_started_metadata") or {}
    return meta if isinstance(meta, dict) else {}


def customer_id(tracker: Tracker) -> str:
    """The API's user id (the WhatsApp number on WhatsApp); the conversation id when absent."""
    user = metadata(tracker).get("user_id")
    return str(user) if user else tracker.sender_id


def answered_appointment(tracker: Tracker) -> Optional[str]:
    """The appointment a reminder was about, when the latest message is a button pressed on it.

    The API puts it in the message's own metadata (`appointment_id`); only the latest message
    counts, never the session's first (a reminder answered once says nothing about later turns).
    """
    meta = (tracker.latest_message or {}).get("metadata")
    value = meta.get("appointment_id") if isinstance(meta, dict) else None
    return str(value) if value else None


def turn_key(tracker: Tracker) -> str | None:
    """`<conversation>:<message id>` of the user message this turn answers; None without one.

    The API stores every message before it calls Rasa and sends its id as
    `metadata["message_id"]`; a retried or re-driven turn carries the same id, so the
    key names the turn, not the attempt. Only the latest message's own metadata counts:
    `session_started_metadata` (what `metadata()` falls back to) holds the session's
    first message, whose id would make every later turn look like a replay of it.
    `rasa shell` and other clients send no id: their turns are not deduplicated.
    """
    meta = (tracker.latest_message or {}).get("metadata")
    message_id = meta.get("message_id") if isinstance(meta, dict) else None
    if message_id is None or isinstance(message_id, bool) or str(message_id).strip() == "":
        return None
    return f"{tracker.sender_id}:{str(message_id).strip()}"


def idempotency_key(tracker: Tracker, step: str) -> str | None:
    """The key of one side effect of this turn (`step` names it: the action, and the call when it makes several).

    Each port call gets its own key because one service may sit behind several ports
    and must not see the same key on two different requests.
    """
    turn = turn_key(tracker)
    return f"{turn}:{step}" if turn else None


def channel(tracker: Tracker) -> Optional[str]:
    value = metadata(tracker).get("channel")
    return str(value) if value else None


async def call(function: Callable[..., T], **kwargs: Any) -> T:
    """Run a (blocking) port method off the action server's event loop."""
    return await asyncio.to_thread(functools.partial(function, **kwargs))


def workflow_event(event_type: str, workflow: str, success: bool, **data: Any) -> Dict[str, Any]:
    """`SlotSet("workflow_events", [...])`: the workflow outcome the API reads (docs/bot-contract.md)."""
    outcome = {"type": event_type, "workflow": workflow, "success": success, "data": data}
    log.info("workflow type=%s workflow=%s success=%s data=%s", event_type, workflow, success, data)
    return SlotSet("workflow_events", [outcome])


def handoff_events(reason: str) -> List[Dict[str, Any]]:
    return [SlotSet("handoff_requested", True), SlotSet("handoff_reason", reason)]


def utter_unavailable(dispatcher: CollectingDispatcher) -> None:
    dispatcher.utter_message(response="utter_service_unavailable")


def confirm_buttons(yes: str, no: str = "No") -> List[Dict[str, str]]:
    """The yes/no buttons under a "Shall I ...?" question (payloads /affirm and /deny)."""
    return [{"title": yes, "payload": "/affirm"}, {"title": no, "payload": "/deny"}]


def latest_entity(tracker: Tracker, entity: str) -> Optional[str]:
    """The entity's value in the latest message; a regex pattern's match wins over DIET's tag of the same thing."""
    found = [e for e in (tracker.latest_message or {}).get("entities") or [] if e.get("entity") == entity]
    found.sort(key=lambda e: e.get("extractor") != PATTERN_EXTRACTOR)
    value = found[0].get("value") if found else None
    return str(value) if value is not None else None


def latest_text(tracker: Tracker) -> str:
    return str((tracker.latest_message or {}).get("text") or "")


def when(moment: datetime) -> str:
    return f"{moment:%a} {moment.day} {moment:%b} at {moment:%H:%M}"


def day_label(moment: Any) -> str:
    return f"{moment:%A} {moment.day} {moment:%B}"


def parse_quantity(value: Any) -> Optional[int]:
    if value is None:
        return None
    if isinstance(value, (int, float)):
        return int(value) if 1 <= int(value) <= 99 else None
    text = str(value).lower().strip()
    digits = re.search(r"\d+", text)
    if digits:
        number = int(digits.group(0))
        return number if 1 <= number <= 99 else None
    for word in re.findall(r"[a-z]+", text):
        if word in NUMBER_WORDS:
            return NUMBER_WORDS[word]
    return None


def normalise_order_id(value: Optional[str]) -> Optional[str]:
    """The stored form of an order reference ("#55871", "order 10234", "ord-123456" -> "ORD-55871", ...).

    Every order id is "ORD-" and digits (sql_commerce allocates them), so a reference typed
    without the prefix is looked up as "ORD-<digits>"; one that names no order is then
    reported as not found instead of falling back to the customer's latest order.
    """
    if not value:
        return None
    match = ORDER_RE.search(str(value))
    if not match:
        return None
    return "ORD-" + next(group for group in match.groups() if group)


def normalise_email(value: Optional[str]) -> Optional[str]:
    if not value:
        return None
    match = EMAIL_RE.search(str(value))
    return match.group(0).lower() if match else None


def normalise_phone(value: Optional[str]) -> Optional[str]:
    """E.164-like: '+' and 8-15 digits; a UK number starting 0 becomes +44."""
    if not value:
        return None
    match = PHONE_RE.search(str(value))
    if not match:
        return None
    raw = match.group(0)
    digits = re.sub(r"\D", "", raw)
    if raw.strip().startswith("+"):
        pass
    elif digits.startswith("00"):
        digits = digits[2:]
    elif digits.startswith("0"):
        digits = "44" + digits[1:]
    if not 8 <= len(digits) <= 15:
        return None
    return "+" + digits


def clean_name(value: Optional[str]) -> Optional[str]:
    if not value:
        return None
    text = str(value).strip()
    text = re.sub(r"^(?:hi|hello|hey)[,!. ]+", "", text, flags=re.IGNORECASE)
    text = re.sub(r"^(?:my name is|my name's|name is|i am|i'm|im|it's|its|this is|call me|name:)\s+", "",
                  text, flags=re.IGNORECASE)
    text = re.sub(r"[.!,]+$", "", text).strip()
    if not text or len(text) > 60 or re.search(r"\d|@", text) or len(text.split()) > 4:
        return None
    return " ".join(part[:1].upper() + part[1:] for part in text.split())
