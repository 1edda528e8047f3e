"""The "whatsapp" OutboundChannel: bot and CSR replies go out through the Graph API.

Each Graph request is stored in `whatsapp_outbound` with the wamid Meta assigned
(or as failed, with the reason), so later status notifications find it.
Free-form messages are only sent inside the 24-hour customer service window.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from connectors.whatsapp import metrics
from connectors.whatsapp.errors import WhatsAppDeliveryError
from connectors.whatsapp.graph import OUTSIDE_WINDOW, GraphClient, GraphError, build_messages
from connectors.whatsapp.models import OutboundStatus, WhatsAppContact, WhatsAppOutbound
from connectors.whatsapp.numbers import PhoneNumbers
from connectors.whatsapp.store import apply_known_statuses, wa_id_of
from conversation_api.conversations.models import Conversation, Message
from conversation_api.db import utcnow

log = logging.getLogger(__name__)

SERVICE_WINDOW = timedelta(hours=24)


def as_utc(moment: datetime) -> datetime:
    # SQLite hands back naive datetimes; everything is stored in UTC.
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment


class WhatsAppChannel:
    """Delivers stored messages of WhatsApp conversations to the customer's phone."""

    def __init__(
        self, *, graph: GraphClient, sessions: async_sessionmaker[AsyncSession], numbers: PhoneNumbers
    ) -> None:
        self._graph = graph
        self._sessions = sessions
        self._numbers = numbers

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
        wa_id = wa_id_of(conversation.user_id)
        if wa_id is None:
            raise ValueError(f"conversation {conversation.id} is not a WhatsApp conversation")
        payload: dict[str, Any] = message.payload or {}
        requests = build_messages(wa_id, text=message.text, buttons=payload.get("buttons"), image=payload.get("image"))
        if not requests:
            return []

        async with self._sessions() as session:
            contact = await session.get(WhatsAppContact, wa_id)
        sender = self._numbers.sender_for(phone_number_id or (contact.phone_number_id if contact else None))
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
        if last_inbound is None or utcnow() - last_inbound > SERVICE_WINDOW:
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
