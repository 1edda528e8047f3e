"""POST /api/v1/conversations/{conversation_id}/feedback."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, status

from conversation_api.conversations import service as conversations
from conversation_api.deps import AuthenticatedRoute, ContainerDep, CurrentUser
from conversation_api.feedback import service
from conversation_api.feedback.schemas import FeedbackOut, FeedbackRequest
from conversation_api.metrics.instruments import observe_feedback
from conversation_api.params import NO_NUL

router = APIRouter(prefix="/api/v1", tags=["feedback"], route_class=AuthenticatedRoute)


@router.post(
    "/conversations/{conversation_id}/feedback",
    response_model=FeedbackOut,
    status_code=status.HTTP_201_CREATED,
    responses={
        400: {"description": "The body is not valid UTF-8 (`malformed_body`)."},
        401: {"description": "Missing, expired or forged token."},
        404: {"description": "Unknown conversation, or one that belongs to someone else."},
        409: {
            "description": "The conversation already has feedback (from this endpoint or the bot's feedback flow). "
            "Feedback is given once per conversation and is not overwritten; the body names the conversation."
        },
        413: {"description": "The body is over MAX_BODY_BYTES (`payload_too_large`)."},
        422: {"description": "`rating` is not an integer from 1 to 5, or `comment` is too long."},
        503: {"description": "The database is unavailable (`database_unavailable`)."},
    },
)
async def give_feedback(
    conversation_id: Annotated[str, Path(max_length=64, pattern=NO_NUL)],
    body: FeedbackRequest,
    principal: CurrentUser,
    container: ContainerDep,
) -> FeedbackOut:
    """Rate a conversation (CSAT): its owner only, once per conversation."""
    async with container.uow.conversation(conversation_id) as work, work.transaction() as session:
        conversation = await conversations.get_owned(
            session=session, conversation_id=conversation_id, user_id=principal.user_id
        )
        feedback = await service.record(
            session=session, conversation=conversation, rating=body.rating, comment=body.comment, source="api"
        )
    observe_feedback(rating=feedback.rating, channel=feedback.channel, source="api")
    return FeedbackOut.of(feedback)
