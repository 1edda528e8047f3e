"""The review API: the queue of customer messages to review, annotation, reopening, flags and the export.

Reading the queue and annotating need a `designer` or `admin` token; CSRs (and
designers, admins) may flag a message; the export is for admins.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Path, Query, Response, status
from fastapi.exceptions import RequestValidationError
from sqlalchemy.ext.asyncio import AsyncSession

from conversation_api.auth import Principal, Role
from conversation_api.deps import AuthenticatedRoute, ContainerDep, CurrentUser, SessionDep
from conversation_api.errors import Forbidden
from conversation_api.metrics.instruments import count_review_decision
from conversation_api.params import BIGINT_MAX, IsoDateTime
from conversation_api.review import domain as bot_domain
from conversation_api.review import export as exporting
from conversation_api.review import service
from conversation_api.review.backlog import criteria_of, refresh_backlog
from conversation_api.review.models import Reason
from conversation_api.review.schemas import (
    AnnotationOut,
    AnnotationRequest,
    DecisionOut,
    DomainOut,
    ExportOut,
    FlagRequest,
    FlagResponse,
    ItemDetail,
    QueueResponse,
    ReopenRequest,
    ReviewItem,
    Span,
)


def _utc(moment: datetime) -> datetime:
    # Naive = UTC, as everywhere in the API; stored times are UTC.
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


async def reviewer(principal: CurrentUser) -> Principal:
    if not principal.is_reviewer:
        raise Forbidden("the review queue needs a designer or admin token")
    return principal


async def flagger(principal: CurrentUser) -> Principal:
    if principal.role is Role.client:
        raise Forbidden("flagging a message for review needs a csr, designer or admin token")
    return principal


async def admin(principal: CurrentUser) -> Principal:
    if principal.role is not Role.admin:
        raise Forbidden("only admins may export the reviewed examples")
    return principal


Reviewer = Annotated[Principal, Depends(reviewer)]
Flagger = Annotated[Principal, Depends(flagger)]
Admin = Annotated[Principal, Depends(admin)]
MessageId = Annotated[int, Path(ge=1, le=BIGINT_MAX, description="The customer message's id.")]

router = APIRouter(prefix="/api/v1/review", tags=["review"], route_class=AuthenticatedRoute)

ERRORS: dict[int | str, dict[str, Any]] = {
    401: {"description": "Missing, expired or forged token."},
    403: {"description": "The token's role may not do this."},
    404: {"description": "Unknown message (`message_not_found`)."},
    422: {"description": "Invalid body or parameters; `detail` names the field."},
    503: {"description": "The database is unavailable (`database_unavailable`)."},
}
BODY_ERRORS: dict[int | str, dict[str, Any]] = {
    **ERRORS,
    400: {"description": "The body is not valid UTF-8 (`malformed_body`)."},
    413: {"description": "The body is over MAX_BODY_BYTES (`payload_too_large`)."},
}


@router.get("/domain", response_model=DomainOut, responses=ERRORS)
async def review_domain(principal: Reviewer, container: ContainerDep) -> DomainOut:
    """The intents and entities a reviewer may choose: the bot's domain.yml."""
    loaded = bot_domain.load(container.settings.review_domain_path)
    return DomainOut(intents=list(loaded.intents), entities=list(loaded.entities))


@router.get("/queue", response_model=QueueResponse, responses=ERRORS)
async def review_queue(
    principal: Reviewer,
    session: SessionDep,
    container: ContainerDep,
    reason: Annotated[list[Reason] | None, Query(description="Only messages with one of these reasons.")] = None,
    intent: Annotated[str | None, Query(max_length=128, description="Only messages the bot read as this.")] = None,
    from_: Annotated[
        IsoDateTime | None, Query(alias="from", description="Messages from (inclusive), ISO 8601.")
    ] = None,
    to: Annotated[IsoDateTime | None, Query(description="Messages before (exclusive), ISO 8601.")] = None,
    state: Annotated[
        Literal["open", "reviewed"], Query(description="`open` (default): waiting for review; `reviewed`: decided.")
    ] = "open",
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
    before: Annotated[int | None, Query(ge=1, le=BIGINT_MAX, description="`next_before` of the previous page.")] = None,
) -> QueueResponse:
    """Customer messages the bot was unsure of or got wrong, newest first, with the turns around each."""
    page = await service.queue(
        session=session,
        criteria=criteria_of(container.settings),
        wanted=service.QueueFilter(
            reasons=reason or (),
            intent=intent,
            start=_utc(from_) if from_ else None,
            end=_utc(to) if to else None,
            reviewed=state == "reviewed",
        ),
        limit=limit,
        before=before,
        context_turns=container.settings.review_context_turns,
    )
    return QueueResponse(items=[ReviewItem.of(i) for i in page.items], total=page.total, next_before=page.next_before)


async def _detail(session: Any, container: Any, message_id: int) -> ItemDetail:
    found = await service.item(
        session=session,
        criteria=criteria_of(container.settings),
        message_id=message_id,
        context_turns=container.settings.review_context_turns,
    )
    decisions = await service.decisions(session=session, message_id=message_id)
    return ItemDetail(**ReviewItem.of(found).model_dump(), decisions=[DecisionOut.of(d) for d in decisions])


@router.get("/messages/{message_id}", response_model=ItemDetail, responses=ERRORS)
async def review_item(
    message_id: MessageId, principal: Reviewer, session: SessionDep, container: ContainerDep
) -> ItemDetail:
    """One customer message as a review item, with every decision taken on it."""
    return await _detail(session, container, message_id)


@asynccontextmanager
async def _conversation_of_message(
    message_id: int, session: AsyncSession, container: Any
) -> AsyncIterator[AsyncSession]:
    """One transaction in the unit of work of the message's conversation (404 for an unknown
    message). The request's session is closed first, so it holds no connection while the lock waits."""
    conversation_id = await service.conversation_of(session=session, message_id=message_id)
    await session.close()
    async with container.uow.conversation(conversation_id) as work, work.transaction() as tx:
        yield tx


def _invalid(loc: tuple[str | int, ...], message: str, value: Any) -> RequestValidationError:
    return RequestValidationError([{"type": "value_error", "loc": ("body", *loc), "msg": message, "input": value}])


def checked_spans(text: str, spans: list[Span], entities: tuple[str, ...]) -> list[dict[str, Any]]:
    """The spans as stored (`value` added), or a 422 naming the first span field that is wrong."""
    errors: list[dict[str, Any]] = []

    def wrong(index: int, name: str, message: str, value: Any) -> None:
        errors.append({"type": "value_error", "loc": ("body", "entities", index, name), "msg": message, "input": value})

    kept: list[dict[str, Any]] = []
    for index, span in enumerate(spans):
        if span.entity not in entities:
            wrong(
                index, "entity", f"unknown entity {span.entity!r}; the domain's are {', '.join(entities)}", span.entity
            )
            continue
        if span.end > len(text):
            wrong(index, "end", f"the span ends at {span.end}, after the text's {len(text)} characters", span.end)
            continue
        if span.start >= span.end:
            wrong(index, "start", f"the span must start before its end ({span.end})", span.start)
            continue
        value = text[span.start : span.end]
        if value != value.strip():
            wrong(index, "start", f"the span {value!r} starts or ends with white space", span.start)
            continue
        if span.start > 0 and text[span.start - 1].isalnum() and text[span.start].isalnum():
            wrong(index, "start", f"the span {value!r} starts inside a word", span.start)
            continue
        if span.end < len(text) and text[span.end - 1].isalnum() and text[span.end].isalnum():
            wrong(index, "end", f"the span {value!r} ends inside a word", span.end)
            continue
        kept.append({"start": span.start, "end": span.end, "entity": span.entity, "value": value, "index": index})
    if not errors:
        ordered = sorted(kept, key=lambda s: s["start"])
        for left, right in zip(ordered, ordered[1:], strict=False):
            if right["start"] < left["end"]:
                wrong(
                    right["index"], "start", f"the span {right['value']!r} overlaps {left['value']!r}", right["start"]
                )
    if errors:
        raise RequestValidationError(errors)
    return [{k: v for k, v in s.items() if k != "index"} for s in sorted(kept, key=lambda s: s["start"])]


@router.post(
    "/messages/{message_id}/annotation",
    response_model=AnnotationOut,
    status_code=status.HTTP_201_CREATED,
    responses={
        **BODY_ERRORS,
        409: {
            "description": "Already reviewed (`already_reviewed`, with `decision` and `reviewed_by`): reopen it first."
        },
        422: {
            "description": "An intent or entity that is not the domain's, a span outside the text, inside a word or "
            "overlapping another, or a message that is not a customer's; `detail` names the field."
        },
    },
)
async def annotate(
    message_id: MessageId, body: AnnotationRequest, principal: Reviewer, session: SessionDep, container: ContainerDep
) -> AnnotationOut:
    """Confirm or correct the intent and entity spans of a customer message, or ignore it. Once per message."""
    conversation_id = await service.conversation_of(session=session, message_id=message_id)
    await session.close()
    loaded = bot_domain.load(container.settings.review_domain_path)
    if body.intent is not None and body.intent not in loaded.intents:
        reason = (
            "nlu_fallback is what the bot says when it does not understand; give the intent the customer meant"
            if body.intent in bot_domain.NOT_A_LABEL
            else f"unknown intent {body.intent!r}; the domain's are {', '.join(loaded.intents)}"
        )
        raise _invalid(("intent",), reason, body.intent)
    async with container.uow.conversation(conversation_id) as work, work.transaction() as tx:
        message = await service.customer_message(session=tx, message_id=message_id)
        spans = checked_spans(message.text, body.entities, loaded.entities) if not body.ignore else None
        annotation = await service.decide(
            session=tx, message=message, actor=principal.user_id, intent=body.intent, entities=spans, note=body.note
        )
    count_review_decision(
        decision=annotation.decision.value, predicted_intent=annotation.predicted_intent, intent=annotation.intent
    )
    await refresh_backlog(container)
    return AnnotationOut.of(annotation)


@router.post(
    "/messages/{message_id}/reopen",
    response_model=ItemDetail,
    responses={**BODY_ERRORS, 409: {"description": "The message has not been reviewed (`not_reviewed`)."}},
)
async def reopen(
    message_id: MessageId,
    principal: Reviewer,
    session: SessionDep,
    container: ContainerDep,
    body: ReopenRequest | None = None,
) -> ItemDetail:
    """Put a reviewed message back in the queue (its decisions stay in the log)."""
    async with _conversation_of_message(message_id, session, container) as tx:
        message = await service.customer_message(session=tx, message_id=message_id)
        await service.reopen(session=tx, message=message, actor=principal.user_id, note=body.note if body else None)
        predicted = message.intent
    count_review_decision(decision="reopened", predicted_intent=predicted, intent=None)
    await refresh_backlog(container)
    return await _detail(session, container, message_id)


@router.post(
    "/messages/{message_id}/flag",
    response_model=FlagResponse,
    status_code=status.HTTP_201_CREATED,
    responses={
        **BODY_ERRORS,
        200: {"description": "Already flagged: the first flag is kept and returned (`created: false`)."},
        403: {"description": "A client token."},
        422: {"description": "Not a customer message (`not_a_customer_message`), or the note is too long."},
    },
)
async def flag(
    message_id: MessageId,
    principal: Flagger,
    session: SessionDep,
    container: ContainerDep,
    response: Response,
    body: FlagRequest | None = None,
) -> FlagResponse:
    """Flag a customer message for review while handling its conversation (CSRs, designers, admins)."""
    async with _conversation_of_message(message_id, session, container) as tx:
        row, created = await service.flag(
            session=tx, message_id=message_id, actor=principal.user_id, note=body.note if body else None
        )
    if not created:
        response.status_code = status.HTTP_200_OK
    else:
        await refresh_backlog(container)
    return FlagResponse(
        message_id=row.message_id,
        conversation_id=row.conversation_id,
        flagged_by=row.flagged_by,
        note=row.note,
        timestamp=row.created_at,
        created=created,
    )


@router.get(
    "/export",
    response_model=ExportOut,
    responses={
        **ERRORS,
        403: {"description": "Not an admin token."},
        409: {"description": "The held-out sets are not where REVIEW_HELDOUT_DIR says (`heldout_sets_missing`)."},
    },
)
async def export(principal: Admin, session: SessionDep, container: ContainerDep) -> ExportOut:
    """The confirmed and corrected examples as one Rasa NLU file (`yaml`), and the ones refused and why.

    The API's host does not hold your repository: save `yaml` as rasa_project/data/nlu/reviewed.yml, or run
    `make export-reviewed`, which writes it.
    """
    result = await exporting.export(session=session, settings=container.settings)
    return ExportOut(
        examples=result.examples,
        intents={intent: len(examples) for intent, examples in result.by_intent.items()},
        refused=result.refused,
        yaml=result.yaml(),
    )
