"""Request and response bodies of the review API."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, model_validator

from conversation_api.conversations.models import Message
from conversation_api.conversations.schemas import as_utc
from conversation_api.params import NO_NUL
from conversation_api.review import service
from conversation_api.review.models import Decision, Reason, ReviewAnnotation, ReviewDecision

Note = Annotated[str | None, Field(max_length=2000, pattern=NO_NUL, description="Why (kept with the decision).")]


class Turn(BaseModel):
    id: int
    sender: str
    text: str
    timestamp: datetime
    intent: str | None = None
    entities: list[dict[str, Any]] | None = None
    confidence: float | None = None

    @classmethod
    def of(cls, message: Message) -> Turn:
        return cls(
            id=message.id,
            sender=message.sender.value,
            text=message.text,
            timestamp=as_utc(message.created_at),
            intent=message.intent,
            entities=message.entities,
            confidence=message.confidence,
        )


class Span(BaseModel):
    model_config = ConfigDict(extra="forbid")

    start: int = Field(ge=0, description="Character offset of the span's first character.")
    end: int = Field(gt=0, description="Character offset just after the span's last character.")
    entity: str = Field(min_length=1, max_length=128, description="One of the domain's entities.")


class SpanOut(Span):
    value: str = Field(description="The text of the span.")


class AnnotationOut(BaseModel):
    decision: Decision
    intent: str | None
    entities: list[SpanOut] | None
    predicted_intent: str | None
    note: str | None
    reviewed_by: str
    reviewed_at: datetime

    @classmethod
    def of(cls, row: ReviewAnnotation) -> AnnotationOut:
        return cls(
            decision=row.decision,
            intent=row.intent,
            entities=[SpanOut(**e) for e in row.entities] if row.entities is not None else None,
            predicted_intent=row.predicted_intent,
            note=row.note,
            reviewed_by=row.reviewed_by,
            reviewed_at=as_utc(row.reviewed_at),
        )


class FlagOut(BaseModel):
    message_id: int
    conversation_id: str
    flagged_by: str
    note: str | None
    timestamp: datetime


class ReviewItem(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "message": {
                        "id": 42,
                        "sender": "user",
                        "text": "whens my parcel coming",
                        "timestamp": "2026-12-01T10:00:00Z",
                        "intent": "nlu_fallback",
                        "entities": [],
                        "confidence": 0.5,
                    },
                    "conversation_id": "6f1c2a8e-3f7b-4d55-9a43-1b2f5b7d9e10",
                    "user_id": "alice",
                    "channel": "whatsapp",
                    "reasons": ["nlu_fallback", "before_handoff"],
                    "before": [],
                    "after": [
                        {
                            "id": 43,
                            "sender": "bot",
                            "text": "Sorry, I didn't quite understand that.",
                            "timestamp": "2026-12-01T10:00:01Z",
                        }
                    ],
                    "flag": None,
                    "annotation": None,
                }
            ]
        }
    )

    message: Turn = Field(description="The customer message, with the intent, entities and confidence predicted.")
    conversation_id: str
    user_id: str
    channel: str
    reasons: list[str] = Field(description="Why it needs review: " + ", ".join(r.value for r in Reason))
    before: list[Turn] = Field(description="The turns just before it, oldest first (REVIEW_CONTEXT_TURNS).")
    after: list[Turn] = Field(description="The turns just after it.")
    flag: FlagOut | None = None
    annotation: AnnotationOut | None = Field(default=None, description="The standing decision, once reviewed.")

    @classmethod
    def of(cls, item: service.Item) -> ReviewItem:
        flag = item.flag
        return cls(
            message=Turn.of(item.message),
            conversation_id=item.conversation.id,
            user_id=item.conversation.user_id,
            channel=item.conversation.channel,
            reasons=item.reasons,
            before=[Turn.of(m) for m in item.before],
            after=[Turn.of(m) for m in item.after],
            flag=FlagOut(
                message_id=flag.message_id,
                conversation_id=flag.conversation_id,
                flagged_by=flag.flagged_by,
                note=flag.note,
                timestamp=as_utc(flag.created_at),
            )
            if flag
            else None,
            annotation=AnnotationOut.of(item.annotation) if item.annotation else None,
        )


class QueueResponse(BaseModel):
    items: list[ReviewItem] = Field(description="Newest message first.")
    total: int = Field(description="How many messages match the filter (all pages).")
    next_before: int | None = Field(description="Pass as `before` for the next (older) page; null on the last.")


class AnnotationRequest(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {"intent": "order_status", "entities": [{"start": 18, "end": 27, "entity": "order_id"}]},
                {"ignore": True, "note": "spam"},
            ]
        },
    )

    intent: str | None = Field(
        default=None, min_length=1, max_length=128, description="The intent the customer meant (the domain's)."
    )
    entities: list[Span] = Field(
        default_factory=list, max_length=50, description="Every entity in the text; none if there is none."
    )
    ignore: bool = Field(default=False, description="Not training material (spam, personal, nonsense).")
    note: Note = None

    @model_validator(mode="after")
    def _one_decision(self) -> AnnotationRequest:
        if self.ignore and (self.intent is not None or self.entities):
            raise ValueError("an ignored message takes no intent or entities")
        if not self.ignore and self.intent is None:
            raise ValueError("give the intent (and entities), or ignore: true")
        return self


class DecisionOut(BaseModel):
    decision: Decision
    intent: str | None
    entities: list[dict[str, Any]] | None
    predicted_intent: str | None
    note: str | None
    actor: str
    timestamp: datetime

    @classmethod
    def of(cls, row: ReviewDecision) -> DecisionOut:
        return cls(
            decision=row.decision,
            intent=row.intent,
            entities=row.entities,
            predicted_intent=row.predicted_intent,
            note=row.note,
            actor=row.actor,
            timestamp=as_utc(row.created_at),
        )


class ItemDetail(ReviewItem):
    decisions: list[DecisionOut] = Field(description="Every decision on this message, oldest first.")


class FlagRequest(BaseModel):
    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{"note": "bot misread the date"}]})

    note: Note = None


class FlagResponse(FlagOut):
    created: bool = Field(description="False when the message was already flagged (the first flag is kept).")


class ReopenRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    note: Note = None


class DomainOut(BaseModel):
    intents: list[str] = Field(description="The domain's intents a reviewer may choose (nlu_fallback is not one).")
    entities: list[str]


class ExportOut(BaseModel):
    examples: int = Field(description="Examples written.")
    intents: dict[str, int] = Field(description="Examples per intent.")
    refused: list[dict[str, Any]] = Field(
        description="Reviewed messages left out, each with `message_id` and `reason`."
    )
    yaml: str = Field(description="The Rasa NLU file.")
