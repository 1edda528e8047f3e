"""Customer profile: created on first contact, greeted by name, updated and shown on request."""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any, Dict, List, Text

from rasa_sdk import Action, Tracker
from rasa_sdk.events import ActionExecuted, EventType, SessionStarted, SlotSet
from rasa_sdk.executor import CollectingDispatcher
from rasa_sdk.types import DomainDict

from actions.common import (
    EMAIL_RE,
    call,
    channel,
    clean_name,
    customer_id,
    idempotency_key,
    latest_entity,
    latest_text,
    log,
    normalise_email,
    normalise_phone,
    utter_unavailable,
    when,
    workflow_event,
)
from actions.ports import ServiceError
from actions.wiring import UsesPorts


class _CrmAction(UsesPorts, Action, ABC):
    @abstractmethod
    def name(self) -> Text:
        """Abstract: rasa-sdk registers only concrete actions."""


CARRIED_OVER = ("customer_name", "returning_customer", "session_started_metadata", "product")


class ActionSessionStart(_CrmAction):
    """Starts a session and makes sure the customer has a CRM record (first contact)."""

    def name(self) -> Text:
        return "action_session_start"

    async def run(self, dispatcher: CollectingDispatcher, tracker: Tracker,
                  domain: DomainDict) -> List[EventType]:
        events: List[EventType] = [SessionStarted()]
        if domain.get("session_config", {}).get("carry_over_slots_to_new_session", True):
            # Only what is worth remembering across sessions; handoff and workflow state start afresh.
            events += [SlotSet(name, value) for name, value in tracker.current_slot_values().items()
                       if value is not None and name in CARRIED_OVER]
        meta = tracker.get_slot("session_started_metadata") or {}
        user = str(meta.get("user_id") or tracker.sender_id)
        try:
            customer = await call(self.crm.get_or_create, customer_id=user, channel=meta.get("channel"))
            events.append(SlotSet("customer_name", customer.name))
            events.append(SlotSet("returning_customer", bool(customer.name)))
        except ServiceError as exc:  # the conversation goes on without the profile
            log.error("could not load the customer profile customer_id=%s error=%s", user, exc)
        events.append(ActionExecuted("action_listen"))
        return events


class ActionUpdateContact(_CrmAction):
    def name(self) -> Text:
        return "action_update_contact"

    async def run(self, dispatcher: CollectingDispatcher, tracker: Tracker,
                  domain: DomainDict) -> List[EventType]:
        text = latest_text(tracker)
        raw_email = latest_entity(tracker, "email") or (EMAIL_RE.search(text).group(0) if EMAIL_RE.search(text) else None)
        if raw_email is None and "@" in text:
            raw_email = next((w for w in text.split() if "@" in w), None)
        raw_phone = latest_entity(tracker, "phone_number")
        if raw_phone is None and raw_email is None:
            raw_phone = normalise_phone(text)
        raw_name = latest_entity(tracker, "person_name")
        changes: Dict[str, Any] = {}
        problems: List[str] = []
        if raw_email:
            email = normalise_email(raw_email)
            changes["email"] = email
            if not email:
                problems.append(f"\"{raw_email}\" doesn't look like a valid email address")
        if raw_phone:
            phone = normalise_phone(raw_phone)
            changes["phone"] = phone
            if not phone:
                problems.append(f"\"{raw_phone}\" doesn't look like a valid phone number")
        if raw_name:
            name = clean_name(raw_name)
            changes["name"] = name
            if not name:
                problems.append(f"\"{raw_name}\" doesn't look like a name")
        reset = [SlotSet("email", None), SlotSet("phone_number", None), SlotSet("person_name", None)]
        if not changes:
            dispatcher.utter_message(response="utter_ask_contact_detail")
            return reset
        if problems:
            dispatcher.utter_message(text="Sorry, " + " and ".join(problems) + ". Nothing was changed; please try again.")
            return reset + [workflow_event("contact.updated", "contact_update", False, reason="invalid_value",
                                           fields=sorted(changes))]
        user = customer_id(tracker)
        try:
            await call(self.crm.get_or_create, customer_id=user, channel=channel(tracker))
            customer = await call(self.crm.update, customer_id=user,
                                  idempotency_key=idempotency_key(tracker, self.name()), **changes)
        except ServiceError as exc:
            log.error("contact update failed customer_id=%s error=%s", user, exc)
            utter_unavailable(dispatcher)
            return reset + [workflow_event("contact.updated", "contact_update", False, reason=exc.reason,
                                           fields=sorted(changes))]
        labels = {"email": "email", "phone": "phone number", "name": "name"}
        summary = ", ".join(f"your {labels[k]} is now {v}" for k, v in changes.items())
        dispatcher.utter_message(text=f"Done, {summary}.")
        events = reset + [workflow_event("contact.updated", "contact_update", True, fields=sorted(changes))]
        if customer.name:
            events += [SlotSet("customer_name", customer.name), SlotSet("returning_customer", True)]
        return events


class ActionViewProfile(_CrmAction):
    def name(self) -> Text:
        return "action_view_profile"

    async def run(self, dispatcher: CollectingDispatcher, tracker: Tracker,
                  domain: DomainDict) -> List[EventType]:
        user = customer_id(tracker)
        try:
            customer = await call(self.crm.get_or_create, customer_id=user, channel=channel(tracker))
        except ServiceError as exc:
            log.error("view profile failed customer_id=%s error=%s", user, exc)
            utter_unavailable(dispatcher)
            return []
        lines = [
            "Here's what we have on file:",
            f"Name: {customer.name or 'not set'}",
            f"Email: {customer.email or 'not set'}",
            f"Phone: {customer.phone or 'not set'}",
        ]
        try:
            appointments = await call(self.booking.upcoming, customer_id=user)
            if appointments:
                lines.append("Upcoming appointments:")
                lines += [f"- {a.service} on {when(a.start)} with {a.staff} (ref {a.id})" for a in appointments]
            else:
                lines.append("No upcoming appointments.")
        except ServiceError as exc:
            log.error("could not list appointments for the profile: %s", exc)
        try:
            order = await call(self.commerce.last_order, customer_id=user)
            if order:
                lines.append(f"Last order: {order.id} ({order.status}, {self.biz.money(order.total)})")
        except ServiceError as exc:
            log.error("could not load the last order for the profile: %s", exc)
        lines.append("To change something, just tell me, e.g. \"my email is anna@example.com\".")
        dispatcher.utter_message(text="\n".join(lines))
        return []
