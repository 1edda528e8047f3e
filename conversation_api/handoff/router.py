"""The CSR API: the queue of handed-off conversations, claim, reply, resolve, transcript.

Every route needs a `csr` or `admin` token; a `client` token gets 403.
"""

from __future__ import annotations

import logging
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Path, Query

from conversation_api.auth import Principal
from conversation_api.channels import ChannelRegistry, OutsideServiceWindow
from conversation_api.conversations.models import Conversation, HandoffState, Message
from conversation_api.conversations.schemas import MessageOut
from conversation_api.deps import AuthenticatedRoute, ContainerDep, CurrentUser, MessageRate, SessionDep
from conversation_api.errors import ApiError, Forbidden
from conversation_api.handoff import service
from conversation_api.handoff.schemas import (
    CsrMessageRequest,
    CsrMessageResponse,
    CsrTemplateRequest,
    Handling,
    QueueItem,
    QueueResponse,
    ResolveRequest,
    TranscriptResponse,
)
from conversation_api.params import NO_NUL

log = logging.getLogger(__name__)


class DeliveryFailed(ApiError):
    """The reply is stored, but the customer's channel did not take it."""

    status_code = 503
    code = "delivery_failed"


async def staff_only(principal: CurrentUser) -> Principal:
    if not principal.is_staff:
        raise Forbidden("the CSR API needs a csr or admin token")
    return principal


Staff = Annotated[Principal, Depends(staff_only)]
ConversationId = Annotated[str, Path(min_length=1, max_length=64, pattern=NO_NUL)]

router = APIRouter(prefix="/api/v1/csr", tags=["csr"], route_class=AuthenticatedRoute)

ERRORS: dict[int | str, dict[str, Any]] = {
    401: {"description": "Missing, expired or forged token."},
    403: {"description": "The token is not a csr or admin token."},
    404: {"description": "Unknown conversation."},
    409: {"description": "The conversation's state does not allow this (`detail` says why; `claimed_by` if claimed)."},
    422: {"description": "Invalid body or parameters; `detail` names the field."},
    503: {"description": "The database is unavailable (`database_unavailable`)."},
}
BODY_ERRORS: dict[int | str, dict[str, Any]] = {
    **ERRORS,
    400: {"description": "The body is not valid UTF-8 (`malformed_body`)."},
    413: {"description": "The body is over MAX_BODY_BYTES (`payload_too_large`)."},
}

# The queue holds handed-off conversations only; one the bot handles is never in it.
QueueState = Literal[HandoffState.pending_human, HandoffState.with_human]


@router.get("/queue", response_model=QueueResponse, responses=ERRORS)
async def csr_queue(
    principal: Staff,
    session: SessionDep,
    state: Annotated[
        QueueState | None,
        Query(description="`pending_human` (default: waiting for a CSR) or `with_human` (claimed)."),
    ] = None,
    mine: Annotated[bool, Query(description="Only conversations claimed by the caller.")] = False,
    limit: Annotated[int, Query(ge=1, le=200)] = 100,
) -> QueueResponse:
    """Handed-off conversations, longest waiting first, with customer, last message and intents seen."""
    wanted = HandoffState(state or HandoffState.pending_human)
    entries = await service.queue(
        session=session, states=[wanted], claimed_by=principal.user_id if mine else None, limit=limit
    )
    return QueueResponse(items=[QueueItem.of_entry(e) for e in entries])


@router.get("/conversations/{conversation_id}", response_model=TranscriptResponse, responses=ERRORS)
async def csr_transcript(
    conversation_id: ConversationId,
    principal: Staff,
    session: SessionDep,
    container: ContainerDep,
    limit: Annotated[int, Query(ge=1, le=5000)] = 1000,
) -> TranscriptResponse:
    """The full transcript with senders and intents, the handoff state history, and what may be sent now
    (`delivery`: WhatsApp's 24-hour window, the customer's consent, the templates to pick from)."""
    transcript = await service.transcript(session=session, conversation_id=conversation_id, limit=limit)
    conversation = transcript.conversation
    delivery = await container.channels.for_conversation(conversation).state(conversation=conversation)
    return TranscriptResponse.of_transcript(transcript, delivery)


@router.post("/conversations/{conversation_id}/claim", response_model=Handling, responses=ERRORS)
async def csr_claim(conversation_id: ConversationId, principal: Staff, container: ContainerDep) -> Handling:
    """Assign a waiting conversation to the caller. If another CSR has it: 409."""
    async with container.uow.conversation(conversation_id) as work, work.transaction() as session:
        conversation = await service.claim(session=session, conversation_id=conversation_id, csr=principal)
        handoff = await service.handoff_of(session=session, conversation_id=conversation_id)
    return Handling.of(conversation, handoff)


@router.post(
    "/conversations/{conversation_id}/messages",
    response_model=CsrMessageResponse,
    status_code=201,
    responses={
        **BODY_ERRORS,
        429: {"description": "Over RATE_LIMIT_MESSAGES for this CSR (`rate_limited`); `Retry-After` says when."},
        503: {
            "description": "Stored, but the customer's channel refused it (`delivery_failed`, `message_id`); "
            "or the database is unavailable."
        },
    },
    dependencies=[MessageRate],
)
async def csr_reply(
    conversation_id: ConversationId,
    body: CsrMessageRequest,
    principal: Staff,
    container: ContainerDep,
) -> CsrMessageResponse:
    """Reply as the CSR who claimed the conversation: stored with sender `csr`, then sent on the customer's channel.

    A WhatsApp customer whose 24-hour window has closed cannot get free text: 409
    `outside_service_window`, nothing stored; send a template instead (`.../template`).
    """
    async with container.uow.conversation(conversation_id) as work, work.transaction() as session:
        conversation = await service.replyable(session=session, conversation_id=conversation_id, csr=principal)
        state = await container.channels.for_conversation(conversation).state(conversation=conversation)
        if not state.free_text:
            raise OutsideServiceWindow(
                "the customer's 24-hour service window is closed"
                + (f" (their last message: {state.last_inbound_at.isoformat()})" if state.last_inbound_at else "")
                + "; WhatsApp delivers only an approved template now: send one with POST .../template",
                conversation_id=conversation_id,
                last_inbound_at=state.last_inbound_at.isoformat() if state.last_inbound_at else None,
                templates=[t.name for t in state.templates if t.usable],
            )
        conversation, message = await service.reply(
            session=session, conversation_id=conversation_id, csr=principal, text=body.message
        )
    await _deliver(container.channels, conversation, message)
    return CsrMessageResponse(
        conversation_id=conversation_id, message=MessageOut.of(message), delivered_via=conversation.channel
    )


@router.post(
    "/conversations/{conversation_id}/template",
    response_model=CsrMessageResponse,
    status_code=201,
    responses={
        **BODY_ERRORS,
        409: {
            "description": "Claimed by another CSR (`handoff_conflict`), the template is paused or rejected by Meta "
            "(`template_not_approved`), the customer opted out (`customer_opted_out`), or the channel has no "
            "templates (`templates_not_supported`)."
        },
        422: {
            "description": "Unknown template or language (`template_unknown`), parameter values that do not fit it "
            "(`template_parameters_invalid`, `problems` lists each), or an invalid body."
        },
        429: {"description": "Over RATE_LIMIT_MESSAGES for this CSR (`rate_limited`); `Retry-After` says when."},
        503: {"description": "Stored, but the channel refused it (`delivery_failed`, `message_id`)."},
    },
    dependencies=[MessageRate],
)
async def csr_template(
    conversation_id: ConversationId,
    body: CsrTemplateRequest,
    principal: Staff,
    container: ContainerDep,
) -> CsrMessageResponse:
    """Send an approved message template (WhatsApp), inside or outside the 24-hour window.

    Checked before anything is stored: the template and language exist, Meta has not
    paused or rejected it, every parameter has a value WhatsApp accepts, and the
    customer has not opted out of its category. Stored with sender `csr` (the text as
    the customer sees it, the template in `payload.template`), then sent.
    """
    async with container.uow.conversation(conversation_id) as work, work.transaction() as session:
        conversation = await service.template_sendable(session=session, conversation_id=conversation_id, csr=principal)
        prepared = await container.channels.for_conversation(conversation).prepare_template(
            conversation=conversation, name=body.name, language=body.language, parameters=body.parameters
        )
        message = await service.send_template(
            session=session, conversation=conversation, csr=principal, text=prepared.text, payload=prepared.payload
        )
    await _deliver(container.channels, conversation, message)
    return CsrMessageResponse(
        conversation_id=conversation_id, message=MessageOut.of(message), delivered_via=conversation.channel
    )


async def _deliver(channels: ChannelRegistry, conversation: Conversation, message: Message) -> None:
    try:
        await channels.for_conversation(conversation).deliver(conversation=conversation, message=message)
    except Exception as exc:  # any channel failure: the reply is stored, say so instead of a bare 500
        log.warning(
            "csr reply not delivered conversation_id=%s channel=%s error=%s",
            conversation.id,
            conversation.channel,
            type(exc).__name__,
            exc_info=not isinstance(exc, ApiError),  # an unexpected failure: keep its traceback
        )
        reason = getattr(exc, "detail", None)
        raise DeliveryFailed(
            f"the reply was saved but the {conversation.channel} channel did not accept it"
            + (f": {reason}" if reason else ""),
            conversation_id=conversation.id,
            message_id=message.id,
        ) from exc


@router.post("/conversations/{conversation_id}/resolve", response_model=Handling, responses=BODY_ERRORS)
async def csr_resolve(
    conversation_id: ConversationId,
    principal: Staff,
    container: ContainerDep,
    body: ResolveRequest | None = None,
) -> Handling:
    """Hand the conversation back to the bot (Rasa is resumed); an optional note goes into the audit trail."""
    # Under the lock, the resume reaches Rasa after any pause the gateway is still sending.
    async with container.uow.conversation(conversation_id) as work:
        async with work.transaction() as session:
            conversation = await service.resolve(
                session=session, conversation_id=conversation_id, csr=principal, note=body.note if body else None
            )
            work.after_commit(lambda: container.tracker_sync.apply(conversation_id))
        async with work.transaction() as session:
            handoff = await service.handoff_of(session=session, conversation_id=conversation_id)
            await session.refresh(handoff)
    return Handling.of(conversation, handoff)
