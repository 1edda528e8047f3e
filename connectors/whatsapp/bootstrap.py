"""Builds the WhatsApp connector from settings (called by the API's composition root)."""

from __future__ import annotations

import logging
from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from connectors.whatsapp import metrics
from connectors.whatsapp.consent import Keywords
from connectors.whatsapp.graph import GraphClient
from connectors.whatsapp.media import BusinessPlace, MediaReplies
from connectors.whatsapp.numbers import PhoneNumbers, keep_served
from connectors.whatsapp.outbound import WhatsAppChannel
from connectors.whatsapp.payloads import Notification
from connectors.whatsapp.store import StoreResult, store_notification
from connectors.whatsapp.templates import TemplateRegistry
from connectors.whatsapp.worker import InboundWorker
from conversation_api.gateway import MessageGateway
from conversation_api.locks import ConversationLocks
from conversation_api.settings import Settings

log = logging.getLogger(__name__)


@dataclass
class WhatsAppConnector:
    verify_token: str
    app_secret: str
    max_body_bytes: int
    sessions: async_sessionmaker[AsyncSession]
    graph: GraphClient
    channel: WhatsAppChannel
    worker: InboundWorker
    numbers: PhoneNumbers
    media_max_bytes: int = 16 * 1024 * 1024

    async def accept(self, notification: Notification) -> StoreResult:
        """Durably store one webhook notification (one transaction) and wake the worker.

        What it holds for phone numbers we do not serve is counted and left out, not stored.
        """
        notification, ignored = keep_served(notification, self.numbers)
        async with self.sessions() as session, session.begin():
            result = await store_notification(session=session, notification=notification)
        result.ignored = ignored.total
        for message in result.new_messages:
            metrics.INBOUND_MESSAGES.labels(type=message.type, duplicate="false").inc()
        for message in result.duplicate_messages:
            metrics.INBOUND_MESSAGES.labels(type=message.type, duplicate="true").inc()
        for status in result.new_statuses:
            metrics.STATUSES.labels(status=status.status, duplicate="false").inc()
        for status in result.duplicate_statuses:
            metrics.STATUSES.labels(status=status.status, duplicate="true").inc()
        for template in result.new_templates:
            metrics.TEMPLATE_UPDATES.labels(kind=template.field, value=template.value).inc()
            log.warning(
                "whatsapp template %s name=%s language=%s value=%s reason=%s",
                "status" if template.field == "message_template_status_update" else "quality",
                template.name,
                template.language,
                template.value,
                template.reason,
            )
        if result.new_messages:
            self.worker.wake()
        return result

    async def start(self) -> None:
        await self.worker.start()

    async def aclose(self) -> None:
        await self.worker.stop()
        await self.graph.aclose()


def build_whatsapp(
    settings: Settings,
    *,
    sessions: async_sessionmaker[AsyncSession],
    gateway: MessageGateway,
    locks: ConversationLocks,
) -> WhatsAppConnector:
    assert settings.whatsapp_enabled, "build_whatsapp needs every WHATSAPP_* secret"
    numbers = PhoneNumbers(settings.whatsapp_phone_numbers)
    # A wrong template file stops the start-up here, naming every mistake (TemplateRegistryError).
    templates = (
        TemplateRegistry.load(settings.whatsapp_templates_file)
        if settings.whatsapp_templates_file
        else TemplateRegistry.empty()
    )
    log.info("whatsapp templates loaded count=%d file=%s", len(templates), settings.whatsapp_templates_file)
    keywords = Keywords.of(*settings.whatsapp_keywords)
    # A business file without an address stops the start-up here (a location could not be answered).
    place = BusinessPlace.load(settings.business_data_dir)
    graph = GraphClient(
        base_url=settings.whatsapp_graph_url,
        phone_number_id=numbers.default,
        access_token=settings.whatsapp_access_token or "",
        timeout=settings.whatsapp_send_timeout,
        rate_per_second=settings.whatsapp_rate_per_second,
        attempts=settings.whatsapp_send_attempts,
        backoff_initial=settings.whatsapp_backoff_initial_seconds,
    )
    channel = WhatsAppChannel(
        graph=graph,
        sessions=sessions,
        numbers=numbers,
        templates=templates,
        opt_out_covers_utility=settings.whatsapp_opt_out_covers_utility,
    )
    worker = InboundWorker(
        sessions=sessions,
        gateway=gateway,
        channel=channel,
        graph=graph,
        locks=locks,
        concurrency=settings.whatsapp_worker_concurrency,
        lease_seconds=settings.whatsapp_lease_seconds,
        retry_base_seconds=settings.whatsapp_retry_base_seconds,
        retry_max_seconds=settings.whatsapp_retry_max_seconds,
        max_attempts=settings.whatsapp_max_attempts,
        keywords=keywords,
        opt_out_reply=settings.whatsapp_opt_out_reply,
        opt_in_reply=settings.whatsapp_opt_in_reply,
        media_replies=MediaReplies(place),
    )
    return WhatsAppConnector(
        verify_token=settings.whatsapp_verify_token or "",
        app_secret=settings.whatsapp_app_secret or "",
        max_body_bytes=settings.whatsapp_max_body_bytes,
        sessions=sessions,
        graph=graph,
        channel=channel,
        worker=worker,
        numbers=numbers,
        media_max_bytes=settings.whatsapp_media_max_bytes,
    )
