"""Request and response bodies of the conversation endpoints."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

from conversation_api.conversations.models import Conversation, HandoffState, Message, Sender
from conversation_api.params import NO_NUL

MAX_MESSAGE_CHARS = 4096


def _not_blank(value: str) -> str:
    if not value.strip():
        raise ValueError("message must not be blank")
    return value


# A message a person writes (customer or CSR): 1 to 4096 characters, not only white space.
MessageText = Annotated[
    str, Field(min_length=1, max_length=MAX_MESSAGE_CHARS, pattern=NO_NUL), AfterValidator(_not_blank)
]


def as_utc(moment: datetime) -> datetime:
    # SQLite hands back naive datetimes; everything is stored in UTC.
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


# Printable ASCII without spaces: what clients put in a UUID, a ULID or a header.
ClientMessageId = Annotated[str, Field(min_length=1, max_length=100, pattern=r"^[!-~]+$")]


class SendMessageRequest(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {"conversation_id": "", "user_id": "alice", "message": "Hi! When are you open on Saturday?"},
                {"conversation_id": "6f1c2a8e-3f7b-4d55-9a43-1b2f5b7d9e10", "user_id": "alice", "message": "thanks!"},
            ]
        },
    )

    conversation_id: str | None = Field(
        default=None, max_length=64, pattern=NO_NUL, description="Empty or missing to start a new conversation."
    )
    user_id: str = Field(min_length=1, max_length=128, pattern=NO_NUL, description="Must be the caller's own user id.")
    message: MessageText
    client_message_id: ClientMessageId | None = Field(
        default=None,
        description="The client's own id of this message (or the `Idempotency-Key` header). A retry with the "
        "same id stores nothing new: it returns the reply the message got, or, if the bot failed to answer it, "
        "sends that same stored message to the bot again.",
    )


class ReplyMessage(BaseModel):
    text: str
    buttons: list[dict[str, Any]] | None = None
    image: str | None = None
    custom: dict[str, Any] | None = None


class SendMessageResponse(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "conversation_id": "6f1c2a8e-3f7b-4d55-9a43-1b2f5b7d9e10",
                    "user_id": "alice",
                    "message": "We're open Monday to Friday 9:00-19:00 and Saturday 9:00-17:00.",
                    "messages": [{"text": "We're open Monday to Friday 9:00-19:00 and Saturday 9:00-17:00."}],
                    "handoff_state": "bot",
                }
            ]
        }
    )

    conversation_id: str
    user_id: str
    message: str = Field(
        description="The reply text; several bot messages are joined by newlines. "
        "Empty while a human handles the conversation."
    )
    messages: list[ReplyMessage] = Field(description="Each reply message, with buttons or images if any.")
    handoff_state: HandoffState = Field(
        description="`bot`, or `pending_human`/`with_human` when a CSR answers instead of the bot."
    )
    message_id: int | None = Field(default=None, description="The stored id of the customer's message.")
    replayed: bool = Field(
        default=False, description="True when this answers a retry (same `client_message_id`) from the store."
    )


class MessageOut(BaseModel):
    id: int
    sender: Sender
    text: str
    timestamp: datetime = Field(description="When the message was stored, ISO 8601 in UTC.")
    intent: str | None = None
    entities: list[dict[str, Any]] | None = None
    confidence: float | None = None
    payload: dict[str, Any] | None = None

    @classmethod
    def of(cls, message: Message) -> MessageOut:
        return cls(
            id=message.id,
            sender=message.sender,
            text=message.text,
            timestamp=as_utc(message.created_at),
            intent=message.intent,
            entities=message.entities,
            confidence=message.confidence,
            payload=message.payload,
        )


class HistoryResponse(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "conversation_id": "6f1c2a8e-3f7b-4d55-9a43-1b2f5b7d9e10",
                    "user_id": "alice",
                    "messages": [
                        {
                            "id": 1,
                            "sender": "user",
                            "text": "hi",
                            "timestamp": "2026-11-25T14:00:00Z",
                            "intent": "greet",
                            "entities": [],
                            "confidence": 0.99,
                            "payload": None,
                        },
                        {
                            "id": 2,
                            "sender": "bot",
                            "text": "Hello! How can I help you today?",
                            "timestamp": "2026-11-25T14:00:00.2Z",
                            "intent": None,
                            "entities": None,
                            "confidence": None,
                            "payload": None,
                        },
                    ],
                    "next_before": None,
                }
            ]
        }
    )

    conversation_id: str
    user_id: str
    messages: list[MessageOut] = Field(description="Oldest first.")
    next_before: int | None = Field(
        default=None, description="Pass as `before` to fetch the page of older messages; null when none remain."
    )


class ConversationOut(BaseModel):
    conversation_id: str
    channel: str
    handoff_state: HandoffState
    created_at: datetime
    updated_at: datetime

    @classmethod
    def of(cls, conversation: Conversation) -> ConversationOut:
        return cls(
            conversation_id=conversation.id,
            channel=conversation.channel,
            handoff_state=conversation.handoff_state,
            created_at=as_utc(conversation.created_at),
            updated_at=as_utc(conversation.updated_at),
        )


class ConversationListResponse(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "user_id": "alice",
                    "conversations": [
                        {
                            "conversation_id": "6f1c2a8e-3f7b-4d55-9a43-1b2f5b7d9e10",
                            "channel": "api",
                            "handoff_state": "bot",
                            "created_at": "2026-11-25T14:00:00Z",
                            "updated_at": "2026-11-25T14:05:12Z",
                        }
                    ],
                }
            ]
        }
    )

    user_id: str
    conversations: list[ConversationOut] = Field(description="Most recently active first.")
