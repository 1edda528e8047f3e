"""Staff views of the WhatsApp connector's own records: templates and what Meta says about them
(admins), and a customer's consent with its audit trail (CSRs and admins).

    GET /api/v1/whatsapp/templates         the registry, each template's status and quality, recent events
    GET /api/v1/whatsapp/consent/{wa_id}   opted out or not, since when, and every change (when, how)
    GET /api/v1/whatsapp/media/{wamid}     a customer's picture, voice note, document… (CSRs and admins)
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Query
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, Field
from sqlalchemy import select

from connectors.whatsapp import graph as graph_api
from connectors.whatsapp import metrics
from connectors.whatsapp.consent import consent_of, ledger
from connectors.whatsapp.errors import MediaNotFound, MediaTooLarge, MediaUnavailable
from connectors.whatsapp.media import content_type_of, disposition
from connectors.whatsapp.models import WhatsAppInbound, WhatsAppTemplateEvent
from connectors.whatsapp.outbound import template_statuses
from connectors.whatsapp.store import user_id_for
from connectors.whatsapp.webhook import ConnectorDep
from conversation_api.auth import Principal, Role
from conversation_api.deps import AuthenticatedRoute, CurrentUser, SessionDep
from conversation_api.errors import Forbidden

router = APIRouter(prefix="/api/v1/whatsapp", tags=["whatsapp"], route_class=AuthenticatedRoute)

ERRORS: dict[int | str, dict[str, Any]] = {
    401: {"description": "Missing, expired or forged token."},
    403: {"description": "The token's role may not see this."},
    503: {"description": "The WhatsApp connector is not configured, or the database is unavailable."},
}


def _utc(moment: datetime | None) -> datetime | None:
    if moment is None:
        return None
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment


async def admin_only(principal: CurrentUser) -> Principal:
    if principal.role is not Role.admin:
        raise Forbidden("only admins see the WhatsApp templates' status")
    return principal


async def staff_only(principal: CurrentUser) -> Principal:
    if not principal.is_staff:
        raise Forbidden("a customer's consent is visible to csr and admin tokens only")
    return principal


class TemplateEventOut(BaseModel):
    kind: str = Field(description="`status` (message_template_status_update) or `quality`.")
    value: str = Field(description="APPROVED, REJECTED, PAUSED, DISABLED… or GREEN, YELLOW, RED, UNKNOWN.")
    previous: str | None = None
    reason: str | None = None
    occurred_at: datetime
    received_at: datetime


class TemplateStatusOut(BaseModel):
    name: str
    language: str
    category: str | None = Field(description="From the registry; None for a template Meta reported but the file lacks.")
    in_registry: bool
    template_id: str | None = None
    status: str | None = Field(default=None, description="Meta's last review status; None until Meta reports one.")
    reason: str | None = None
    status_at: datetime | None = None
    quality: str | None = None
    quality_at: datetime | None = None
    sendable: bool = Field(description="In the registry and not paused, disabled or rejected.")
    events: list[TemplateEventOut] = Field(description="Meta's notifications about it, newest first.")


class TemplatesOut(BaseModel):
    source: str | None = Field(description="The registry file (WHATSAPP_TEMPLATES_FILE).")
    templates: list[TemplateStatusOut]


@router.get("/templates", response_model=TemplatesOut, responses=ERRORS)
async def templates(
    principal: Annotated[Principal, Depends(admin_only)],
    connector: ConnectorDep,
    session: SessionDep,
    events: Annotated[int, Query(ge=0, le=100, description="Events per template.")] = 10,
) -> TemplatesOut:
    """Every template of the registry (and any Meta reported that the file lacks), with Meta's status,
    quality and recent notifications: what an admin checks when a template stops going out."""
    registry = connector.channel.templates
    statuses = await template_statuses(session=session)
    history: dict[tuple[str, str], list[WhatsAppTemplateEvent]] = {}
    for event in await session.scalars(
        select(WhatsAppTemplateEvent).order_by(
            WhatsAppTemplateEvent.occurred_at.desc(), WhatsAppTemplateEvent.id.desc()
        )
    ):
        rows = history.setdefault((event.name, event.language), [])
        if len(rows) < events:
            rows.append(event)
    keys = sorted({t.key for t in registry.all()} | set(statuses))
    out = []
    for key in keys:
        template, status = registry.find(*key), statuses.get(key)
        out.append(
            TemplateStatusOut(
                name=key[0],
                language=key[1],
                category=template.category.value if template else None,
                in_registry=template is not None,
                template_id=status.template_id if status else None,
                status=status.status if status else None,
                reason=status.reason if status else None,
                status_at=_utc(status.status_at) if status else None,
                quality=status.quality if status else None,
                quality_at=_utc(status.quality_at) if status else None,
                sendable=template is not None and (status is None or status.status in (None, "APPROVED")),
                events=[
                    TemplateEventOut(
                        kind="status" if e.field == "message_template_status_update" else "quality",
                        value=e.value,
                        previous=e.previous,
                        reason=e.reason,
                        occurred_at=_utc(e.occurred_at),  # type: ignore[arg-type]
                        received_at=_utc(e.received_at),  # type: ignore[arg-type]
                    )
                    for e in history.get(key, [])
                ],
            )
        )
    return TemplatesOut(source=registry.source, templates=out)


class ConsentEventOut(BaseModel):
    action: str = Field(description="`opt_out` or `opt_in`.")
    scope: str | None = Field(description="What an opt-out covers: `marketing` (Meta's stop) or `all` (STOP).")
    source: str = Field(description="`keyword`, `user_preferences` (Meta's webhook) or `graph_error` (131050).")
    detail: str | None = Field(description="The keyword the customer wrote, Meta's detail, or the error.")
    reference: str = Field(description="What it came from: the customer's wamid, the webhook, the failed send.")
    phone_number_id: str | None = None
    occurred_at: datetime
    recorded_at: datetime


class ConsentOut(BaseModel):
    wa_id: str
    user_id: str
    opted_out: str | None = Field(description="None (subscribed), `marketing` or `all`.")
    changed_at: datetime | None = None
    source: str | None = None
    history: list[ConsentEventOut] = Field(description="Every change, newest first.")


@router.get("/consent/{wa_id}", response_model=ConsentOut, responses=ERRORS)
async def consent(
    wa_id: Annotated[str, Path(pattern=r"^\d{5,20}$", description="The customer's WhatsApp id (digits).")],
    principal: Annotated[Principal, Depends(staff_only)],
    connector: ConnectorDep,
    session: SessionDep,
) -> ConsentOut:
    """A customer's consent and its audit trail: every opt-out and opt-in, when and how."""
    state = await consent_of(session=session, wa_id=wa_id)
    return ConsentOut(
        wa_id=wa_id,
        user_id=user_id_for(wa_id),
        opted_out=state.opted_out,
        changed_at=_utc(state.changed_at),
        source=state.source,
        history=[
            ConsentEventOut(
                action=e.action,
                scope=e.scope,
                source=e.source,
                detail=e.detail,
                reference=e.reference,
                phone_number_id=e.phone_number_id,
                occurred_at=_utc(e.occurred_at),  # type: ignore[arg-type]
                recorded_at=_utc(e.recorded_at),  # type: ignore[arg-type]
            )
            for e in await ledger(session=session, wa_id=wa_id)
        ],
    )


MEDIA_ERRORS: dict[int | str, dict[str, Any]] = {
    200: {"description": "The media's bytes, with its type.", "content": {"application/octet-stream": {}}},
    **ERRORS,
    404: {"description": "No WhatsApp message with that wamid, or one without media."},
    502: {"description": "`media_unavailable` (Meta no longer has it, e.g. after 7 days) or `media_too_large`."},
}


@router.get("/media/{wamid}", response_class=StreamingResponse, responses=MEDIA_ERRORS)
async def media(
    wamid: Annotated[str, Path(pattern=r"^[A-Za-z0-9._=+-]{1,256}$", description="The customer message's wamid.")],
    principal: Annotated[Principal, Depends(staff_only)],
    connector: ConnectorDep,
) -> StreamingResponse:
    """A customer's media, fetched from the Graph API's media endpoint now and streamed on.

    The browser never sees Meta's URL or our access token; the bytes are not stored. Types a
    browser could run as a page of ours (SVG, HTML, PDF…) come as attachments.
    """
    # A short session: the database connection is not held while the bytes stream.
    async with connector.sessions() as session:
        row = await session.scalar(select(WhatsAppInbound).where(WhatsAppInbound.wamid == wamid))
    if row is None or not row.media_id:
        metrics.MEDIA_DOWNLOADS.labels(result="not_found").inc()
        raise MediaNotFound("no WhatsApp message with media has this wamid")
    try:
        download = await connector.graph.open_media(row.media_id, max_bytes=connector.media_max_bytes)
    except graph_api.MediaTooLarge as exc:
        metrics.MEDIA_DOWNLOADS.labels(result="too_large").inc()
        raise MediaTooLarge(f"{exc.reason} (WHATSAPP_MEDIA_MAX_BYTES)") from exc
    except graph_api.GraphError as exc:
        metrics.MEDIA_DOWNLOADS.labels(result="graph_error").inc()
        raise MediaUnavailable(f"the Graph API did not hand the media over: {exc.reason}", graph_code=exc.code) from exc
    metrics.MEDIA_DOWNLOADS.labels(result="ok").inc()
    content = row.raw.get(row.type) if isinstance(row.raw, dict) else None
    filename = content.get("filename") if isinstance(content, dict) else None
    mime = content_type_of(row.mime_type or download.content_type)
    headers = {
        "Content-Disposition": disposition(mime, filename),
        "Cache-Control": "private, no-store",
        "X-Content-Type-Options": "nosniff",
        "Content-Security-Policy": "sandbox; default-src 'none'",
    }
    if download.content_length is not None:
        headers["Content-Length"] = str(download.content_length)

    async def body() -> Any:
        try:
            async for chunk in download.chunks():
                yield chunk
        finally:
            await download.aclose()

    return StreamingResponse(body(), media_type=mime, headers=headers)
