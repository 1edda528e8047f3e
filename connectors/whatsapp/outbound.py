"""The "whatsapp" OutboundChannel: bot and CSR replies go out through the Graph API.

Each Graph request is stored in `whatsapp_outbound` with the wamid Meta assigned
(or as failed, with the reason), so later status notifications find it.
Free-form messages are only sent inside the 24-hour customer service window;
approved templates at any time, unless Meta paused or disabled the template or
the customer opted out of its category (checked before a CSR's send is stored,
and again when it goes out). Replies go out from the business number the
customer wrote to.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from connectors.whatsapp import metrics
from connectors.whatsapp.consent import Consent, Source, consent_of
from connectors.whatsapp.consent import record as record_consent
from connectors.whatsapp.errors import WhatsAppDeliveryError
from connectors.whatsapp.graph import OUTSIDE_WINDOW, STOPPED_MARKETING, GraphClient, GraphError, build_messages
from connectors.whatsapp.models import (
    ConsentScope,
    OutboundStatus,
    WhatsAppContact,
    WhatsAppOutbound,
    WhatsAppTemplateStatus,
)
from connectors.whatsapp.numbers import PhoneNumbers
from connectors.whatsapp.store import apply_known_statuses, wa_id_of
from connectors.whatsapp.templates import ParametersDoNotFit, Template, TemplateRegistry
from conversation_api.channels import (
    CustomerOptedOut,
    DeliveryState,
    PreparedTemplate,
    TemplateNotApproved,
    TemplateOption,
    TemplateParametersInvalid,
    TemplateUnknown,
)
from conversation_api.conversations.models import Conversation, Message
from conversation_api.db import utcnow
from conversation_api.errors import ApiError

log = logging.getLogger(__name__)

SERVICE_WINDOW = timedelta(hours=24)
APPROVED = "APPROVED"


async def template_statuses(*, session: AsyncSession) -> dict[tuple[str, str], WhatsAppTemplateStatus]:
    """What Meta last said about each template, by (name, language)."""
    return {(r.name, r.language): r for r in await session.scalars(select(WhatsAppTemplateStatus))}


def _not_sendable(
    template: Template, status: WhatsAppTemplateStatus | None, consent: Consent, covers_utility: bool
) -> tuple[type[ApiError], str] | None:
    """Why `template` may not go to this customer now (the error to raise and the reason), or None."""
    if status is not None and status.status is not None and status.status != APPROVED:
        why = f": {status.reason}" if status.reason else ""
        return TemplateNotApproved, (
            f"Meta reports template {template.name} ({template.language}) {status.status}{why}; "
            "it cannot be sent until it is approved again"
        )
    if consent.blocks(template.category.value, covers_utility=covers_utility):
        what = "marketing messages" if consent.opted_out == ConsentScope.marketing.value else "messages"
        since = f" on {as_utc(consent.changed_at):%Y-%m-%d %H:%M} UTC" if consent.changed_at else ""
        return CustomerOptedOut, (
            f"the customer opted out of {what}{since} ({consent.source}); "
            f"{template.category.value} templates are not sent to them"
        )
    return None


def _template_labels(request: dict[str, Any]) -> dict[str, str]:
    return {"template": str((request.get("template") or {}).get("name"))}


def as_utc(moment: datetime) -> datetime:
    # SQLite hands back naive datetimes; everything is stored in UTC.
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment


class WhatsAppChannel:
    """Delivers stored messages of WhatsApp conversations to the customer's phone."""

    def __init__(
        self,
        *,
        graph: GraphClient,
        sessions: async_sessionmaker[AsyncSession],
        numbers: PhoneNumbers,
        templates: TemplateRegistry | None = None,
        opt_out_covers_utility: bool = True,
    ) -> None:
        self._graph = graph
        self._sessions = sessions
        self._numbers = numbers
        self.templates = templates or TemplateRegistry.empty()
        self._opt_out_covers_utility = opt_out_covers_utility

    # --- what may be sent: the window, consent, templates -------------------------------------------

    async def state(self, *, conversation: Conversation) -> DeliveryState:
        """OutboundChannel: the customer's service window, consent and the templates a CSR may send."""
        wa_id = self._wa_id(conversation)
        async with self._sessions() as session:
            contact = await session.get(WhatsAppContact, wa_id)
            statuses = await template_statuses(session=session)
            consent = await self._consent(session, wa_id)
        last_inbound = as_utc(contact.last_inbound_at) if contact and contact.last_inbound_at else None
        closes = last_inbound + SERVICE_WINDOW if last_inbound else None
        sender = self._numbers.sender_for(contact.phone_number_id if contact else None)
        return DeliveryState(
            channel=conversation.channel,
            free_text=closes is not None and utcnow() < closes,
            window_closes_at=closes,
            last_inbound_at=last_inbound,
            sends_from=self._numbers.name_of(sender),
            opted_out=consent.opted_out is not None,
            opted_out_of=consent.opted_out,
            opted_out_at=consent.changed_at if consent.opted_out else None,
            templates=[self._option(t, statuses.get(t.key), consent) for t in self.templates.all()],
        )

    async def prepare_template(
        self, *, conversation: Conversation, name: str, language: str | None, parameters: dict[str, Any]
    ) -> PreparedTemplate:
        """OutboundChannel: check a template send; TemplateUnknown, TemplateParametersInvalid,
        TemplateNotApproved or CustomerOptedOut (with the reason) if it may not go."""
        wa_id = self._wa_id(conversation)
        template = self._find(name, language)
        try:
            values = template.check(parameters)
        except ParametersDoNotFit as exc:
            raise TemplateParametersInvalid(
                f"the values do not fit template {template.name} ({template.language}): {exc}",
                template=template.name,
                problems=exc.problems,
                parameters=list(template.parameters),
            ) from None
        async with self._sessions() as session:
            status = (await template_statuses(session=session)).get(template.key)
            consent = await self._consent(session, wa_id)
        refusal = _not_sendable(template, status, consent, self._opt_out_covers_utility)
        if refusal is not None:
            error, reason = refusal
            raise error(reason, template=template.name, language=template.language, category=template.category.value)
        return PreparedTemplate(
            text=template.render(values),
            payload={
                "template": {
                    "name": template.name,
                    "language": template.language,
                    "category": template.category.value,
                    "parameters": values,
                    "buttons": [b.text for b in template.buttons],
                }
            },
        )

    def _find(self, name: str, language: str | None) -> Template:
        template = self.templates.find(name, language)
        if template is not None:
            return template
        languages = self.templates.languages_of(name)
        if languages and language is None:
            raise TemplateUnknown(
                f"template {name} exists in {', '.join(languages)}: say which `language`",
                template=name,
                languages=languages,
            )
        known = sorted({t.name for t in self.templates.all()})
        detail = (
            f"template {name} has no {language} version (it has {', '.join(languages)})"
            if languages
            else f"no template named {name} in the registry"
            + (f" (known: {', '.join(known)})" if known else " (WHATSAPP_TEMPLATES_FILE lists none)")
        )
        raise TemplateUnknown(detail, template=name, languages=languages)

    def _option(self, template: Template, status: WhatsAppTemplateStatus | None, consent: Consent) -> TemplateOption:
        refusal = _not_sendable(template, status, consent, self._opt_out_covers_utility)
        return TemplateOption(
            name=template.name,
            language=template.language,
            category=template.category.value,
            body=template.body,
            parameters=list(template.parameters),
            buttons=[b.text for b in template.buttons],
            usable=refusal is None,
            reason=refusal[1] if refusal else None,
            status=status.status if status else None,
            quality=status.quality if status else None,
        )

    @staticmethod
    def _wa_id(conversation: Conversation) -> str:
        wa_id = wa_id_of(conversation.user_id)
        if wa_id is None:
            raise ValueError(f"conversation {conversation.id} is not a WhatsApp conversation")
        return wa_id

    def sender_for(self, phone_number_id: str | None) -> str:
        """The business number to answer from: `phone_number_id` while we serve it, else the default."""
        return self._numbers.sender_for(phone_number_id)

    async def deliver(self, *, conversation: Conversation, message: Message) -> None:
        """OutboundChannel: send a stored CSR (or bot) message; WhatsAppDeliveryError if any part was not accepted.

        Unlike `send`, permanent failures raise too, so the CSR API can tell the
        CSR (outside the 24-hour window, blocked number...). The failure is stored.
        """
        failed = [row for row in await self.send(conversation=conversation, message=message) if not row.wamid]
        if failed:
            raise WhatsAppDeliveryError(
                f"WhatsApp did not accept the message ({failed[0].error_reason}); it is stored as failed",
                conversation_id=conversation.id,
                message_id=message.id,
                error_code=failed[0].error_code,
            )

    async def send(
        self,
        *,
        conversation: Conversation,
        message: Message,
        resend_later: bool = False,
        phone_number_id: str | None = None,
    ) -> list[WhatsAppOutbound]:
        """Send `message` (text, buttons, image) to the conversation's WhatsApp user; the stored Graph requests.

        Outside the 24-hour window or on a permanent Graph error the message is
        stored as failed (with the reason) and nothing is raised; when the Graph
        API keeps failing with a retryable error, WhatsAppDeliveryError (503).
        With `resend_later` (the worker's bot replies) the requests not accepted
        are then stored as pending, for `resend` on the message's next attempt.
        It goes out from `phone_number_id` (the number the answered message was sent
        to), else from the number of the customer's latest message.
        """
        wa_id = self._wa_id(conversation)
        payload: dict[str, Any] = message.payload or {}
        async with self._sessions() as session:
            contact = await session.get(WhatsAppContact, wa_id)
            consent = await consent_of(session=session, wa_id=wa_id)
        sender = self._numbers.sender_for(phone_number_id or (contact.phone_number_id if contact else None))

        if isinstance(payload.get("template"), dict):
            # Templates may go out at any time; the checks were made before storing it, and
            # are made again here in case the customer opted out (or Meta paused it) meanwhile.
            request, refusal = await self._template_request(wa_id, payload["template"], consent)
            if refusal is not None:
                log.warning(
                    "template not sent conversation_id=%s message_id=%s reason=%s", conversation.id, message.id, refusal
                )
                return [await self._record(conversation, message, request, sender, error=(None, refusal))]
            requests = [request]
        else:
            requests = build_messages(
                wa_id, text=message.text, buttons=payload.get("buttons"), image=payload.get("image")
            )
            if not requests:
                return []
            last_inbound = as_utc(contact.last_inbound_at) if contact and contact.last_inbound_at else None
            if last_inbound is None or utcnow() - last_inbound > SERVICE_WINDOW:
                metrics.OUTSIDE_WINDOW.inc()
                log.warning(
                    "not sent: outside the 24-hour window conversation_id=%s message_id=%s last_inbound=%s",
                    conversation.id,
                    message.id,
                    last_inbound.isoformat() if last_inbound else None,
                )
                reason = "outside the 24-hour customer service window (a template message is needed)"
                return [
                    await self._record(conversation, message, request, sender, error=(OUTSIDE_WINDOW, reason))
                    for request in requests
                ]

        stored = []
        for n, request in enumerate(requests):
            kind = request["type"]
            try:
                wamid = await self._graph.send(request, phone_number_id=sender)
            except GraphError as exc:
                metrics.OUTBOUND.labels(kind=kind, result="failed").inc()
                if kind == "template":
                    metrics.TEMPLATES_SENT.labels(**_template_labels(request), result="failed").inc()
                if exc.code == STOPPED_MARKETING:
                    await self._stopped_marketing(wa_id, f"message:{message.id}:{n}", exc.reason, sender)
                log.warning(
                    "send failed conversation_id=%s message_id=%s code=%s retryable=%s reason=%s",
                    conversation.id,
                    message.id,
                    exc.code,
                    exc.retryable,
                    exc.reason,
                )
                if exc.retryable and resend_later:
                    # This part and the ones after it, in order: the next attempt sends them.
                    for rest in requests[n:]:
                        stored.append(
                            await self._record(
                                conversation,
                                message,
                                rest,
                                sender,
                                error=(exc.code, exc.reason),
                                status=OutboundStatus.pending,
                            )
                        )
                    raise WhatsAppDeliveryError(
                        f"WhatsApp did not accept the message ({exc.reason}); it is stored to be sent again",
                        conversation_id=conversation.id,
                        message_id=message.id,
                    ) from exc
                stored.append(await self._record(conversation, message, request, sender, error=(exc.code, exc.reason)))
                if exc.retryable:
                    raise WhatsAppDeliveryError(
                        f"WhatsApp did not accept the message ({exc.reason}); it is stored as failed",
                        conversation_id=conversation.id,
                        message_id=message.id,
                    ) from exc
                return stored  # the rest would fail the same way (window, blocked number, bad token)
            metrics.OUTBOUND.labels(kind=kind, result="accepted").inc()
            if kind == "template":
                metrics.TEMPLATES_SENT.labels(**_template_labels(request), result="accepted").inc()
            stored.append(await self._record(conversation, message, request, sender, wamid=wamid))
            log.info("sent conversation_id=%s message_id=%s wamid=%s kind=%s", conversation.id, message.id, wamid, kind)
        return stored

    async def resend(self, *, conversation: Conversation, row: WhatsAppOutbound) -> WhatsAppOutbound:
        """Send a pending request again (the row keeps its place); WhatsAppDeliveryError if it stays pending.

        Outside the 24-hour window or on a permanent error it becomes failed, as in `send`.
        """
        async with self._sessions() as session:
            contact = await session.get(WhatsAppContact, row.wa_id)
        last_inbound = as_utc(contact.last_inbound_at) if contact and contact.last_inbound_at else None
        closed = last_inbound is None or utcnow() - last_inbound > SERVICE_WINDOW
        if closed and row.kind != "template":  # a template needs no window
            metrics.OUTSIDE_WINDOW.inc()
            reason = "outside the 24-hour customer service window (a template message is needed)"
            return await self._update(row, status=OutboundStatus.failed, error=(OUTSIDE_WINDOW, reason))
        try:
            wamid = await self._graph.send(row.body, phone_number_id=self._numbers.sender_for(row.phone_number_id))
        except GraphError as exc:
            metrics.OUTBOUND.labels(kind=row.kind, result="failed").inc()
            log.warning(
                "resend failed conversation_id=%s message_id=%s code=%s retryable=%s reason=%s",
                conversation.id,
                row.message_id,
                exc.code,
                exc.retryable,
                exc.reason,
            )
            if exc.code == STOPPED_MARKETING:
                await self._stopped_marketing(row.wa_id, f"outbound:{row.id}", exc.reason, row.phone_number_id)
            if not exc.retryable:
                return await self._update(row, status=OutboundStatus.failed, error=(exc.code, exc.reason))
            await self._update(row, status=OutboundStatus.pending, error=(exc.code, exc.reason))
            raise WhatsAppDeliveryError(
                f"WhatsApp did not accept the message ({exc.reason}); it is stored to be sent again",
                conversation_id=conversation.id,
                message_id=row.message_id,
            ) from exc
        metrics.OUTBOUND.labels(kind=row.kind, result="accepted").inc()
        log.info("re-sent conversation_id=%s message_id=%s wamid=%s", conversation.id, row.message_id, wamid)
        return await self._update(row, status=OutboundStatus.accepted, wamid=wamid)

    async def _template_request(
        self, wa_id: str, stored: dict[str, Any], consent: Consent
    ) -> tuple[dict[str, Any], str | None]:
        """The Graph request of a stored template send, and why it may not go now (or None)."""
        name, language = str(stored.get("name")), str(stored.get("language"))
        template = self.templates.find(name, language)
        placeholder = {"to": wa_id, "type": "template", "template": {"name": name, "language": {"code": language}}}
        if template is None:
            return placeholder, f"template {name} ({language}) is no longer in the registry"
        async with self._sessions() as session:
            status = (await template_statuses(session=session)).get(template.key)
        refusal = _not_sendable(template, status, consent, self._opt_out_covers_utility)
        values = {k: str(v) for k, v in (stored.get("parameters") or {}).items()}
        request = template.message(wa_id, values) if set(values) == set(template.parameters) else placeholder
        if refusal is None and request is placeholder:
            return placeholder, f"the stored values do not fit template {name} ({language}) any more"
        return request, refusal[1] if refusal else None

    async def _consent(self, session: AsyncSession, wa_id: str) -> Consent:
        return await consent_of(session=session, wa_id=wa_id)

    async def _stopped_marketing(self, wa_id: str, reference: str, reason: str, phone_number_id: str | None) -> None:
        """Graph error 131050: the customer stopped marketing messages; the ledger says so from now on."""
        try:
            async with self._sessions() as session, session.begin():
                await record_consent(
                    session=session,
                    wa_id=wa_id,
                    action="opt_out",
                    scope=ConsentScope.marketing,
                    source=Source.graph_error,
                    reference=reference,
                    at=utcnow(),
                    detail=f"{STOPPED_MARKETING}: {reason}",
                    phone_number_id=phone_number_id,
                )
        except Exception:  # the send's own outcome matters more; the status webhook may record it too
            log.exception("opt-out from error 131050 not recorded wa_id=%s", wa_id)

    async def _update(
        self,
        row: WhatsAppOutbound,
        *,
        status: OutboundStatus,
        wamid: str | None = None,
        error: tuple[int | None, str] | None = None,
    ) -> WhatsAppOutbound:
        now = utcnow()
        async with self._sessions() as session, session.begin():
            stored = await session.get(WhatsAppOutbound, row.id)
            assert stored is not None
            stored.status, stored.status_at, stored.updated_at, stored.wamid = status.value, now, now, wamid
            stored.error_code, stored.error_reason = error if error else (None, None)
            await session.flush()
            if wamid:
                await apply_known_statuses(session=session, wamid=wamid)
        return stored

    async def _record(
        self,
        conversation: Conversation,
        message: Message,
        request: dict[str, Any],
        phone_number_id: str,
        *,
        wamid: str | None = None,
        error: tuple[int | None, str] | None = None,
        status: OutboundStatus | None = None,
    ) -> WhatsAppOutbound:
        now = utcnow()
        row = WhatsAppOutbound(
            wamid=wamid,
            wa_id=request["to"],
            phone_number_id=phone_number_id,
            conversation_id=conversation.id,
            message_id=message.id,
            kind=request["type"],
            body=request,
            status=(status or (OutboundStatus.failed if error else OutboundStatus.accepted)).value,
            status_at=now,
            error_code=error[0] if error else None,
            error_reason=error[1] if error else None,
            created_at=now,
            updated_at=now,
        )
        async with self._sessions() as session, session.begin():
            session.add(row)
            await session.flush()
            if wamid:
                await apply_known_statuses(session=session, wamid=wamid)
        return row
