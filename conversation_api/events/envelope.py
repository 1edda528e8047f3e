"""The event envelope every service sees, and the list of event types (docs/events.md describes each)."""

from __future__ import annotations

import enum
import uuid
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any

import orjson

EVENT_VERSION = 1


class EventType(enum.StrEnum):
    message_received = "message.received"
    intent_detected = "intent.detected"
    handoff_requested = "handoff.requested"
    handoff_claimed = "handoff.claimed"
    handoff_resolved = "handoff.resolved"
    appointment_booked = "appointment.booked"
    appointment_rescheduled = "appointment.rescheduled"
    appointment_cancelled = "appointment.cancelled"
    order_placed = "order.placed"
    order_cancelled = "order.cancelled"
    contact_updated = "contact.updated"
    feedback_received = "feedback.received"
    bot_unavailable = "bot.unavailable"


# What the bot's actions report in the `workflow_events` slot (the bot contract).
WORKFLOW_EVENT_TYPES = frozenset(
    {
        EventType.appointment_booked,
        EventType.appointment_rescheduled,
        EventType.appointment_cancelled,
        EventType.order_placed,
        EventType.order_cancelled,
        EventType.contact_updated,
        EventType.feedback_received,
    }
)
WORKFLOWS = frozenset(
    {"booking", "reschedule", "cancel_appointment", "order", "cancel_order", "contact_update", "feedback"}
)


def new_event_id() -> str:
    return str(uuid.uuid4())


def _utc(moment: datetime) -> datetime:
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


@dataclass(frozen=True, slots=True)
class Event:
    """One fact that happened in a conversation.

    `id` is unique per event: a consumer that sees the same id twice has been
    handed a redelivery. `sequence` is the outbox row id, increasing in commit
    order within one database; it is set when the relay publishes the event.
    """

    type: str
    conversation_id: str | None
    user_id: str | None
    channel: str | None
    payload: dict[str, Any] = field(default_factory=dict)
    id: str = field(default_factory=new_event_id)
    version: int = EVENT_VERSION
    occurred_at: datetime = field(default_factory=lambda: datetime.now(UTC))
    sequence: int | None = None

    def with_sequence(self, sequence: int) -> Event:
        return replace(self, sequence=sequence)

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "type": self.type,
            "version": self.version,
            "occurred_at": _utc(self.occurred_at).isoformat().replace("+00:00", "Z"),
            "sequence": self.sequence,
            "conversation_id": self.conversation_id,
            "user_id": self.user_id,
            "channel": self.channel,
            "payload": self.payload,
        }

    def to_json(self) -> bytes:
        return orjson.dumps(self.to_dict())

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Event:
        return cls(
            id=str(data["id"]),
            type=str(data["type"]),
            version=int(data.get("version", EVENT_VERSION)),
            occurred_at=_utc(datetime.fromisoformat(str(data["occurred_at"]).replace("Z", "+00:00"))),
            sequence=data.get("sequence"),
            conversation_id=data.get("conversation_id"),
            user_id=data.get("user_id"),
            channel=data.get("channel"),
            payload=dict(data.get("payload") or {}),
        )

    @classmethod
    def from_json(cls, raw: bytes | str) -> Event:
        return cls.from_dict(orjson.loads(raw))
