"""Meta's webhook: `GET /webhooks/whatsapp` (verification) and `POST /webhooks/whatsapp` (notifications).

POST checks, in this order and before anything is stored: the signature header
is present (401), the body fits the limit (413), the HMAC over the raw bytes
matches (403), the body is a WhatsApp notification (400). Then everything in it
is stored in one transaction and Meta gets its 200; the bot runs afterwards.
"""

from __future__ import annotations

import hmac
import logging
import time
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import PlainTextResponse

from connectors.whatsapp import metrics
from connectors.whatsapp.bootstrap import WhatsAppConnector
from connectors.whatsapp.errors import (
    MalformedNotification,
    PayloadTooLarge,
    SignatureInvalid,
    SignatureMissing,
    VerificationFailed,
    WhatsAppNotConfigured,
)
from connectors.whatsapp.payloads import MalformedPayload, parse_notification
from connectors.whatsapp.signature import is_valid
from conversation_api.deps import ContainerDep
from conversation_api.errors import ApiError

log = logging.getLogger(__name__)

router = APIRouter(tags=["whatsapp"])

SIGNATURE_HEADER = "X-Hub-Signature-256"


async def get_connector(container: ContainerDep) -> WhatsAppConnector:
    connector: WhatsAppConnector | None = getattr(container, "whatsapp", None)
    if connector is None:
        raise WhatsAppNotConfigured(
            "the WhatsApp connector is not configured (set WHATSAPP_VERIFY_TOKEN, WHATSAPP_APP_SECRET, "
            "WHATSAPP_ACCESS_TOKEN and WHATSAPP_PHONE_NUMBER_ID)"
        )
    return connector


ConnectorDep = Annotated[WhatsAppConnector, Depends(get_connector)]


@router.get(
    "/webhooks/whatsapp",
    response_class=PlainTextResponse,
    responses={403: {"description": "Wrong mode or verify token."}, 503: {"description": "Not configured."}},
)
async def verify(
    connector: ConnectorDep,
    mode: Annotated[str | None, Query(alias="hub.mode")] = None,
    token: Annotated[str | None, Query(alias="hub.verify_token")] = None,
    challenge: Annotated[str | None, Query(alias="hub.challenge", max_length=256)] = None,
) -> PlainTextResponse:
    """Meta's subscription handshake: echo `hub.challenge` when the verify token matches."""
    if mode != "subscribe" or token is None or challenge is None:
        raise VerificationFailed("expected hub.mode=subscribe with hub.verify_token and hub.challenge")
    if not hmac.compare_digest(token.encode(), connector.verify_token.encode()):
        raise VerificationFailed("hub.verify_token does not match WHATSAPP_VERIFY_TOKEN")
    return PlainTextResponse(challenge)


async def read_body(request: Request, limit: int) -> bytes:
    """The raw body, refusing (413) anything over `limit` bytes without reading it all."""
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > limit:
        raise PayloadTooLarge(f"the body is {declared} bytes; the limit is {limit}")
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise PayloadTooLarge(f"the body is over the limit of {limit} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


@router.post(
    "/webhooks/whatsapp",
    responses={
        400: {"description": "Not a WhatsApp notification (invalid JSON, wrong `object`, a message without id)."},
        401: {"description": "No X-Hub-Signature-256 header."},
        403: {"description": "The signature does not match the body."},
        413: {"description": "The body is over WHATSAPP_MAX_BODY_BYTES."},
        503: {"description": "Not configured, or the database is unavailable (Meta will retry)."},
    },
)
async def receive(request: Request, container: ContainerDep) -> dict[str, Any]:
    """Store every message and status of a signed notification, then acknowledge; the bot answers later."""
    started = time.perf_counter()
    try:
        connector = await get_connector(container)
        signature = request.headers.get(SIGNATURE_HEADER)
        if not signature:
            raise SignatureMissing(f"the {SIGNATURE_HEADER} header is missing")
        raw = await read_body(request, connector.max_body_bytes)
        if not is_valid(raw, signature, connector.app_secret):
            raise SignatureInvalid(f"{SIGNATURE_HEADER} does not match the body")
        try:
            notification = parse_notification(raw)
        except MalformedPayload as exc:
            raise MalformedNotification(str(exc)) from exc
    except ApiError as error:
        metrics.WEBHOOK_REQUESTS.labels(result=error.code).inc()
        log.warning("webhook refused status=%d code=%s reason=%s", error.status_code, error.code, error.detail)
        raise
    result = await connector.accept(notification)
    metrics.WEBHOOK_REQUESTS.labels(result="ok").inc()
    metrics.WEBHOOK_ACK_SECONDS.observe(time.perf_counter() - started)
    for message in result.new_messages:
        log.info("whatsapp message queued wamid=%s wa_id=%s type=%s", message.wamid, message.wa_id, message.type)
    return {
        "status": "ok",
        "messages": len(result.new_messages),
        "duplicates": len(result.duplicate_messages),
        "statuses": len(result.new_statuses),
        "ignored": result.ignored,
    }
