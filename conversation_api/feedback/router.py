"""POST /api/v1/conversations/{conversation_id}/feedback."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, status

from conversation_api.conversations import service as conversations
from conversation_api.deps import ContainerDep, CurrentUser
from conversation_api.feedback import service
from conversation_api.feedback.schemas import FeedbackOut, FeedbackRequest
from conversation_api.metrics.instruments import observe_feedback

router = APIRouter(prefix="/api/v1", tags=["feedback"])


@router.post(
    "/conversations/{conversation_id}/feedback",
    response_model=FeedbackOut,
    status_code=status.HTTP_201_CREATED,
    responses={
        401: {"description": "Missing, expired or forged token."},
        404: {"description": "Unknown conversation, or one that belongs to someone else."},
        409: {
            "description": "The conversation already has feedback (from this endpoint or the bot's feedback flow). "
            "Feedback is given once per conversation and is not overwritten; the body names the conversation."
        },
        422: {"description": "`rating` is not an integer from 1 to 5, or `comment` is too long."},
    },
)
async def give_feedback(
    conversation_id: Annotated[str, Path(max_length=64)],
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
