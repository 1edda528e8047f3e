"""HTTP routes of the seed API."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Header, Path, Query

from conversation_api.conversations import service
from conversation_api.conversations.schemas import (
    ClientMessageId,
    ConversationListResponse,
    ConversationOut,
    HistoryResponse,
    MessageOut,
    ReplyMessage,
    SendMessageRequest,
    SendMessageResponse,
)
from conversation_api.deps import (
    AuthenticatedRoute,
    CurrentUser,
    GatewayDep,
    MessageRate,
    SessionDep,
    may_act_as,
    may_read_user,
)
from conversation_api.errors import InvalidRequest
from conversation_api.params import BIGINT_MAX, NO_NUL, IsoDateTime

router = APIRouter(prefix="/api/v1", tags=["conversations"], route_class=AuthenticatedRoute)

ERRORS: dict[int | str, dict[str, Any]] = {
    401: {"description": "Missing, expired or forged token."},
    403: {"description": "The token may not act for this user."},
    404: {"description": "Unknown conversation, or one that belongs to someone else."},
    422: {"description": "Invalid body or parameters; `detail` names the field."},
    503: {
        "description": "The database or the bot is unavailable. A user message that reached the "
        "database stays stored; the body carries `conversation_id` and `message_id`."
    },
}
SEND_ERRORS: dict[int | str, dict[str, Any]] = {
    **ERRORS,
    400: {"description": "The body is not valid UTF-8 (`malformed_body`)."},
    413: {"description": "The body is over MAX_BODY_BYTES (`payload_too_large`)."},
    409: {"description": "`client_message_id` was used before for a message in another conversation."},
    429: {"description": "Over RATE_LIMIT_MESSAGES for this user (`rate_limited`); `Retry-After` says when to retry."},
    503: {
        "description": "The database or the bot is unavailable, or earlier messages of the conversation "
        "are still being answered (`conversation_busy`); see `Retry-After`. A user message that reached the "
        "database stays stored: the body carries `conversation_id` and `message_id`, and retrying with the "
        "same `client_message_id` answers that message without storing it again."
    },
}

UserIdPath = Annotated[str, Path(min_length=1, max_length=128, pattern=NO_NUL)]


@router.post("/messages", response_model=SendMessageResponse, responses=SEND_ERRORS, dependencies=[MessageRate])
async def send_message(
    body: SendMessageRequest,
    principal: CurrentUser,
    gateway: GatewayDep,
    idempotency_key: Annotated[
        ClientMessageId | None,
        Header(alias="Idempotency-Key", description="The same as `client_message_id`; give one or the other."),
    ] = None,
) -> SendMessageResponse:
    """Send a customer message; the bot's reply (or, after a handoff, an empty one) comes back.

    With a `client_message_id` (or `Idempotency-Key`), retrying after a timeout or a 503 is safe:
    the message is stored once and answered once.
    """
    may_act_as(principal, body.user_id)
    if idempotency_key and body.client_message_id and idempotency_key != body.client_message_id:
        raise InvalidRequest("Idempotency-Key and client_message_id differ; give one of them")
    reply = await gateway.handle(
        user_id=body.user_id,
        conversation_id=body.conversation_id or None,
        text=body.message,
        client_message_id=body.client_message_id or idempotency_key,
    )
    return SendMessageResponse(
        message_id=reply.user_message_id,
        replayed=reply.replayed,
        conversation_id=reply.conversation_id,
        user_id=reply.user_id,
        message=reply.text,
        messages=[ReplyMessage(text=m.text, buttons=m.buttons, image=m.image, custom=m.custom) for m in reply.messages],
        handoff_state=reply.handoff_state,
    )


@router.get("/user/{user_id}/messages/{conversation_id}", response_model=HistoryResponse, responses=ERRORS)
async def conversation_history(
    user_id: UserIdPath,
    conversation_id: Annotated[str, Path(max_length=64, pattern=NO_NUL)],
    principal: CurrentUser,
    session: SessionDep,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
    before: Annotated[int | None, Query(ge=1, le=BIGINT_MAX, description="Only messages with a smaller id.")] = None,
) -> HistoryResponse:
    """The conversation's messages, oldest first, a page at a time."""
    may_read_user(principal, user_id)
    await service.get_owned(session=session, conversation_id=conversation_id, user_id=user_id)
    messages, has_more = await service.history(
        session=session, conversation_id=conversation_id, limit=limit, before=before
    )
    return HistoryResponse(
        conversation_id=conversation_id,
        user_id=user_id,
        messages=[MessageOut.of(m) for m in messages],
        next_before=messages[0].id if has_more and messages else None,
    )


@router.get("/user/{user_id}/conversations", response_model=ConversationListResponse, responses=ERRORS)
async def list_conversations(
    user_id: UserIdPath,
    principal: CurrentUser,
    session: SessionDep,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    before: Annotated[
        IsoDateTime | None, Query(description="Only conversations last active before this time, ISO 8601.")
    ] = None,
) -> ConversationListResponse:
    """The user's conversations, most recently active first."""
    may_read_user(principal, user_id)
    conversations = await service.list_for_user(session=session, user_id=user_id, limit=limit, before=before)
    return ConversationListResponse(user_id=user_id, conversations=[ConversationOut.of(c) for c in conversations])
