"""Bodies of the feedback endpoint."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field, field_validator

from conversation_api.conversations.schemas import as_utc
from conversation_api.feedback.models import Feedback
from conversation_api.params import NO_NUL

MAX_COMMENT_CHARS = 2000


class FeedbackRequest(BaseModel):
    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{"rating": 5, "comment": "Quick!"}]})

    rating: int = Field(ge=1, le=5, description="1 (very unhappy) to 5 (very happy).")
    comment: str | None = Field(default=None, max_length=MAX_COMMENT_CHARS, pattern=NO_NUL)

    @field_validator("comment")
    @classmethod
    def _blank_is_none(cls, value: str | None) -> str | None:
        return value.strip() or None if value is not None else None


class FeedbackOut(BaseModel):
    conversation_id: str
    rating: int
    comment: str | None
    source: str = Field(description="`api` (this endpoint) or `bot` (the bot's feedback flow).")
    created_at: datetime

    @classmethod
    def of(cls, feedback: Feedback) -> FeedbackOut:
        return cls(
            conversation_id=feedback.conversation_id,
            rating=feedback.rating,
            comment=feedback.comment,
            source=feedback.source,
            created_at=as_utc(feedback.created_at),
        )
