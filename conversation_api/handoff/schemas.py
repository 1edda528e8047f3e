"""Request and response bodies of the CSR API."""

from __future__ import annotations

from dataclasses import asdict
from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from conversation_api.channels import DeliveryState
from conversation_api.conversations.models import HandoffState
from conversation_api.conversations.schemas import MessageOut, MessageText, as_utc
from conversation_api.handoff import service
from conversation_api.handoff.models import ConversationHandoff, HandoffTransition
from conversation_api.params import NO_NUL


def _utc(moment: datetime | None) -> datetime | None:
    return as_utc(moment) if moment is not None else None


class Handling(BaseModel):
    """Who has a conversation and since when."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "conversation_id": "6f1c2a8e-3f7b-4d55-9a43-1b2f5b7d9e10",
                    "user_id": "alice",
                    "channel": "api",
                    "handoff_state": "with_human",
                    "reason": "customer_request",
                    "waiting_since": "2026-11-25T14:00:00Z",
                    "claimed_by": "csr-lena",
                    "claimed_at": "2026-11-25T14:01:10Z",
                    "bot_in_step": True,
                }
            ]
        }
    )

    conversation_id: str
    user_id: str = Field(description="The customer.")
    channel: str
    handoff_state: HandoffState
    reason: str | None = Field(default=None, description="Why it was handed off, while it is.")
    waiting_since: datetime | None = Field(default=None, description="When it was handed off, while it is.")
    claimed_by: str | None = None
    claimed_at: datetime | None = None
    bot_in_step: bool = Field(
        default=True, description="False while the bot has not yet acknowledged the pause/resume (retried)."
    )

    @classmethod
    def of(cls, conversation: Any, handoff: ConversationHandoff | None) -> Handling:
        return cls(
            conversation_id=conversation.id,
            user_id=conversation.user_id,
            channel=conversation.channel,
            handoff_state=conversation.handoff_state,
            reason=handoff.reason if handoff else None,
            waiting_since=_utc(handoff.requested_at) if handoff else None,
            claimed_by=handoff.claimed_by if handoff else None,
            claimed_at=_utc(handoff.claimed_at) if handoff else None,
            bot_in_step=handoff is None or handoff.bot_sync is None,
        )


class LastMessage(BaseModel):
    sender: str
    text: str
    timestamp: datetime


class QueueItem(Handling):
    last_message: LastMessage | None
    message_count: int
    intents: list[str] = Field(description="Distinct intents of the customer's messages, first seen first.")
    entities: list[dict[str, Any]] = Field(description="Distinct `{entity, value}` pairs NLU extracted.")

    @classmethod
    def of_entry(cls, entry: service.QueueEntry) -> QueueItem:
        last = entry.last_message
        return cls(
            **Handling.of(entry.conversation, entry.handoff).model_dump(),
            last_message=LastMessage(sender=last.sender.value, text=last.text, timestamp=as_utc(last.created_at))
            if last
            else None,
            message_count=entry.message_count,
            intents=entry.understanding.intents,
            entities=entry.understanding.entities,
        )


class QueueResponse(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "items": [
                        {
                            "conversation_id": "6f1c2a8e-3f7b-4d55-9a43-1b2f5b7d9e10",
                            "user_id": "alice",
                            "channel": "whatsapp",
                            "handoff_state": "pending_human",
                            "reason": "customer_request",
                            "waiting_since": "2026-11-25T14:03:00Z",
                            "claimed_by": None,
                            "claimed_at": None,
                            "bot_in_step": True,
                            "last_message": {
                                "sender": "user",
                                "text": "is anyone there?",
                                "timestamp": "2026-11-25T14:04:10Z",
                            },
                            "message_count": 5,
                            "intents": ["greet", "faq", "request_human"],
                            "entities": [],
                        }
                    ]
                }
            ]
        }
    )

    items: list[QueueItem] = Field(description="Longest waiting first.")


class TransitionOut(BaseModel):
    from_state: HandoffState
    to_state: HandoffState
    actor: str
    reason: str
    note: str | None
    timestamp: datetime

    @classmethod
    def of(cls, row: HandoffTransition) -> TransitionOut:
        return cls(
            from_state=row.from_state,
            to_state=row.to_state,
            actor=row.actor,
            reason=row.reason,
            note=row.note,
            timestamp=as_utc(row.created_at),
        )


class TemplateOptionOut(BaseModel):
    name: str
    language: str
    category: str = Field(description="`utility`, `marketing` or `authentication`.")
    body: str = Field(description="The approved text with its placeholders.")
    parameters: list[str] = Field(description="The values a send needs, by name, in placeholder order.")
    buttons: list[str] = Field(description="Its quick-reply buttons.")
    usable: bool = Field(description="False when it may not be sent to this customer now; `reason` says why.")
    reason: str | None = None
    status: str | None = Field(default=None, description="Meta's last review status (APPROVED, PAUSED...), if any.")
    quality: str | None = None


class DeliveryOut(BaseModel):
    """What may be sent to the customer now (WhatsApp: the 24-hour window, consent, templates)."""

    channel: str
    free_text: bool = Field(description="A free-text reply would be delivered now; otherwise only a template.")
    window_closes_at: datetime | None = Field(
        default=None, description="WhatsApp: when the customer service window closes (24 h after their last message)."
    )
    last_inbound_at: datetime | None = None
    sends_from: str | None = Field(default=None, description="The business number replies go out from.")
    opted_out: bool = Field(default=False, description="The customer opted out (STOP); see `reason` of templates.")
    opted_out_of: str | None = Field(default=None, description="`marketing` (Meta's stop) or `all` (STOP).")
    opted_out_at: datetime | None = None
    templates: list[TemplateOptionOut] = Field(default_factory=list)

    @classmethod
    def of(cls, state: DeliveryState) -> DeliveryOut:
        return cls(
            channel=state.channel,
            free_text=state.free_text,
            window_closes_at=_utc(state.window_closes_at),
            last_inbound_at=_utc(state.last_inbound_at),
            sends_from=state.sends_from,
            opted_out=state.opted_out,
            opted_out_of=state.opted_out_of,
            opted_out_at=_utc(state.opted_out_at),
            templates=[TemplateOptionOut(**asdict(t)) for t in state.templates],
        )


class CsrTemplateRequest(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "name": "appointment_reminder",
                    "language": "en_US",
                    "parameters": {"customer_name": "Alice", "date": "Monday 8 December", "time": "10:30"},
                }
            ]
        },
    )

    name: str = Field(min_length=1, max_length=512, pattern=NO_NUL, description="The template's name.")
    language: str | None = Field(
        default=None, max_length=16, pattern=NO_NUL, description="Its language code; needed when it has several."
    )
    parameters: dict[str, str] = Field(
        default_factory=dict, max_length=50, description="A value for each of the template's parameters, by name."
    )


class TranscriptResponse(Handling):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "conversation_id": "6f1c2a8e-3f7b-4d55-9a43-1b2f5b7d9e10",
                    "user_id": "alice",
                    "channel": "whatsapp",
                    "handoff_state": "pending_human",
                    "reason": "customer_request",
                    "waiting_since": "2026-11-25T14:00:00Z",
                    "claimed_by": None,
                    "claimed_at": None,
                    "bot_in_step": True,
                    "messages": [
                        {
                            "id": 7,
                            "sender": "user",
                            "text": "can i talk to a person",
                            "timestamp": "2026-11-25T14:00:00Z",
                            "intent": "request_human",
                            "entities": [],
                            "confidence": 0.98,
                            "payload": None,
                        },
                        {
                            "id": 8,
                            "sender": "bot",
                            "text": "A member of our team will reply here shortly.",
                            "timestamp": "2026-11-25T14:00:00.3Z",
                            "intent": None,
                            "entities": None,
                            "confidence": None,
                            "payload": None,
                        },
                    ],
                    "intents": ["request_human"],
                    "entities": [],
                    "transitions": [
                        {
                            "from_state": "bot",
                            "to_state": "pending_human",
                            "actor": "bot",
                            "reason": "customer_request",
                            "note": None,
                            "timestamp": "2026-11-25T14:00:00.3Z",
                        }
                    ],
                }
            ]
        }
    )

    messages: list[MessageOut] = Field(description="Oldest first, with senders user, bot and csr.")
    intents: list[str]
    entities: list[dict[str, Any]]
    transitions: list[TransitionOut] = Field(description="The state history, oldest first.")
    delivery: DeliveryOut | None = Field(
        default=None, description="What may be sent to the customer now: free text, or only a template."
    )

    @classmethod
    def of_transcript(cls, transcript: service.Transcript, delivery: DeliveryState | None = None) -> TranscriptResponse:
        return cls(
            **Handling.of(transcript.conversation, transcript.handoff).model_dump(),
            delivery=DeliveryOut.of(delivery) if delivery else None,
            messages=[MessageOut.of(m) for m in transcript.messages],
            intents=transcript.understanding.intents,
            entities=transcript.understanding.entities,
            transitions=[TransitionOut.of(t) for t in transcript.transitions],
        )


class CsrMessageRequest(BaseModel):
    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{"message": "Hi Alice, Sam here."}]})

    message: MessageText


class CsrMessageResponse(BaseModel):
    conversation_id: str
    message: MessageOut
    delivered_via: str = Field(description="The customer's channel the reply went out on.")


class ResolveRequest(BaseModel):
    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{"note": "Booking moved to Monday."}]})

    note: str | None = Field(
        default=None, max_length=2000, pattern=NO_NUL, description="Why or how it was resolved (audit)."
    )
