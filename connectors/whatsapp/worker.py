"""The background worker: drains the durable inbound queue through the MessageGateway.

The webhook only stores and acknowledges; this worker does the slow part. Rows
are claimed with a lease (`locked_until`), so a crash after the 200 — or mid-way
— loses nothing: the row is claimed again when the lease runs out, on this or
another replica. Messages of one WhatsApp user are handled one at a time, in
order. A bot outage keeps the message queued with exponential backoff.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections import defaultdict
from collections.abc import Sequence
from datetime import timedelta
from typing import Any

from sqlalchemy import func, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from connectors.whatsapp import metrics
from connectors.whatsapp.errors import WhatsAppDeliveryError
from connectors.whatsapp.graph import GraphClient, GraphError
from connectors.whatsapp.models import InboundState, WhatsAppContact, WhatsAppInbound, WhatsAppOutbound
from connectors.whatsapp.outbound import WhatsAppChannel, as_utc
from connectors.whatsapp.store import upsert_contact, user_id_for
from conversation_api.conversations import service
from conversation_api.conversations.models import Channel, Conversation, Message, Sender
from conversation_api.db import utcnow
from conversation_api.errors import BotUnavailableError
from conversation_api.gateway import MessageGateway
from conversation_api.locks import ConversationLocks

log = logging.getLogger(__name__)

# Unexpected errors (not bot outages, which are retried for as long as they last) before a row is parked as failed.
MAX_ATTEMPTS = 8
POLL_SECONDS = 0.5


class InboundWorker:
    def __init__(
        self,
        *,
        sessions: async_sessionmaker[AsyncSession],
        gateway: MessageGateway,
        channel: WhatsAppChannel,
        graph: GraphClient,
        locks: ConversationLocks,
        concurrency: int = 16,
        lease_seconds: float = 120.0,
        retry_base_seconds: float = 2.0,
        retry_max_seconds: float = 300.0,
    ) -> None:
        self._sessions = sessions
        self._gateway = gateway
        self._channel = channel
        self._graph = graph
        self._locks = locks
        self._concurrency = concurrency
        self._lease = timedelta(seconds=lease_seconds)
        self._retry_base = retry_base_seconds
        self._retry_max = retry_max_seconds
        self._wakeup = asyncio.Event()
        self._inflight: set[asyncio.Task[None]] = set()
        self._busy = 0
        self._loop_task: asyncio.Task[None] | None = None

    def wake(self) -> None:
        """New rows were stored: look now instead of at the next poll."""
        self._wakeup.set()

    async def start(self) -> None:
        if self._loop_task is None:
            self._loop_task = asyncio.create_task(self._run(), name="whatsapp-worker")

    async def stop(self) -> None:
        """Stop claiming; let messages already in flight finish (their leases would expire otherwise)."""
        if self._loop_task is not None:
            self._loop_task.cancel()
            await asyncio.gather(self._loop_task, return_exceptions=True)
            self._loop_task = None
        if self._inflight:
            await asyncio.wait(self._inflight, timeout=30)

    async def _run(self) -> None:
        while True:
            self._wakeup.clear()  # before claiming, so a wake-up during the claim is not lost
            try:
                free = self._concurrency - self._busy
                rows = await self.claim(free) if free > 0 else []
            except asyncio.CancelledError:
                raise
            except Exception:  # the database may be down: keep the worker alive and try again
                log.exception("whatsapp worker could not claim messages; retrying")
                rows = []
                await asyncio.sleep(1.0)
            for group in _by_sender(rows):
                self._busy += len(group)
                task = asyncio.create_task(self._process_group(group))
                self._inflight.add(task)
                task.add_done_callback(self._inflight.discard)
            if rows and self._busy < self._concurrency:
                continue
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wakeup.wait(), POLL_SECONDS)

    async def claim(self, limit: int) -> list[WhatsAppInbound]:
        """Lease up to `limit` due rows; a row another replica holds (or just took) is skipped."""
        now = utcnow()
        async with self._sessions() as session, session.begin():
            due = or_(WhatsAppInbound.locked_until.is_(None), WhatsAppInbound.locked_until < now)
            base = select(WhatsAppInbound.id).where(WhatsAppInbound.state == InboundState.pending.value)
            candidates = (
                await session.scalars(
                    base.where(WhatsAppInbound.next_attempt_at <= now)
                    .where(due)
                    .order_by(WhatsAppInbound.sent_at, WhatsAppInbound.id)
                    .limit(limit)
                )
            ).all()
            claimed = []
            for row_id in candidates:
                # Optimistic claim: only one replica's UPDATE matches a row whose lease is free.
                result = await session.execute(
                    update(WhatsAppInbound)
                    .where(WhatsAppInbound.id == row_id, WhatsAppInbound.state == InboundState.pending.value, due)
                    .values(locked_until=now + self._lease, attempts=WhatsAppInbound.attempts + 1)
                )
                if result.rowcount == 1:  # type: ignore[attr-defined]
                    claimed.append(row_id)
            depth = await session.scalar(select(func.count()).select_from(base.subquery()))
            metrics.QUEUE_DEPTH.set(depth or 0)
            if not claimed:
                return []
            rows = await session.scalars(
                select(WhatsAppInbound)
                .where(WhatsAppInbound.id.in_(claimed))
                .order_by(WhatsAppInbound.sent_at, WhatsAppInbound.id)
            )
            return list(rows)

    async def _process_group(self, rows: Sequence[WhatsAppInbound]) -> None:
        remaining = len(rows)
        try:
            async with self._locks.hold(user_id_for(rows[0].wa_id)):
                for row in rows:
                    await self.process(row)
                    self._busy -= 1
                    remaining -= 1
        except Exception:  # e.g. the lock store is down: the leases run out and the rows are claimed again
            log.exception("whatsapp worker could not process wa_id=%s; retried after the lease", rows[0].wa_id)
        finally:
            self._busy -= remaining
            self._wakeup.set()  # capacity is free again

    async def process(self, row: WhatsAppInbound) -> None:
        """Run one claimed inbound message through the gateway and deliver the replies. Never raises."""
        try:
            conversation = await self._conversation_for(row)
        except Exception as exc:
            await self._retry_later(row, None, f"{type(exc).__name__}: {exc}", counts=True)
            log.exception("whatsapp message not processed wamid=%s", row.wamid)
            return
        cid = conversation.id
        # Blue ticks while the bot thinks: the read receipt runs alongside the bot round trip.
        receipt = asyncio.create_task(self._mark_read(row, cid)) if row.attempts <= 1 else None
        try:
            message_id = await self._handle(row, conversation)
        except BotUnavailableError as exc:
            metrics.INBOUND_PROCESSED.labels(result="bot_unavailable").inc()
            log.warning("bot unavailable, message stays queued conversation_id=%s wamid=%s", cid, row.wamid)
            await self._retry_later(row, cid, exc.detail, counts=False)
            return
        except Exception as exc:
            log.exception("whatsapp message failed conversation_id=%s wamid=%s", cid, row.wamid)
            await self._retry_later(row, cid, f"{type(exc).__name__}: {exc}", counts=True)
            return
        finally:
            if receipt is not None:
                await receipt
        await self._finish(row, cid, message_id)

    async def _conversation_for(self, row: WhatsAppInbound) -> Conversation:
        """The one open WhatsApp conversation of this user, created on their first message."""
        async with self._sessions() as session, session.begin():
            contact = await session.get(WhatsAppContact, row.wa_id)
            if contact is None:  # rows inserted by hand or before contacts existed
                await upsert_contact(session=session, wa_id=row.wa_id, profile_name=None, last_inbound_at=row.sent_at)
                contact = await session.get(WhatsAppContact, row.wa_id)
                assert contact is not None
            conversation = await service.get(session=session, conversation_id=contact.conversation_id or "")
            if conversation is None:
                conversation = await service.create(
                    session=session, user_id=contact.user_id, channel=Channel.whatsapp.value
                )
                contact.conversation_id = conversation.id
                log.info("conversation started conversation_id=%s wa_id=%s", conversation.id, row.wa_id)
            return conversation

    async def _mark_read(self, row: WhatsAppInbound, conversation_id: str) -> None:
        try:
            await self._graph.mark_read(row.wamid)
        except GraphError as exc:  # blue ticks are a courtesy; never hold the message back for them
            log.warning("mark-as-read failed conversation_id=%s wamid=%s reason=%s", conversation_id, row.wamid, exc)

    async def _handle(self, row: WhatsAppInbound, conversation: Conversation) -> int:
        cid = conversation.id
        # Only a previous attempt can have stored the message already (the first one is claimed with attempts=1).
        stored = await self._stored_message(row.wamid) if row.attempts > 1 else None
        if row.bot_text is None:
            # Reactions, unsupported and unknown types: kept in the conversation, not a turn for the bot.
            if stored is None:
                async with self._sessions() as session, session.begin():
                    conversation = await session.get(Conversation, cid) or conversation
                    stored = await service.append_message(
                        session=session,
                        conversation=conversation,
                        sender=Sender.user,
                        text=row.text,
                        payload=_payload(row),
                        external_id=row.wamid,
                    )
            log.info("stored without the bot conversation_id=%s wamid=%s type=%s", cid, row.wamid, row.type)
            return stored.id

        if stored is not None and stored.intent is not None:
            # A previous attempt got the bot's answer but stopped before delivering it (crash): deliver only.
            message_id = stored.id
        else:
            try:
                reply = await self._gateway.handle(
                    user_id=conversation.user_id,
                    conversation_id=cid,
                    text=row.bot_text,
                    channel=Channel.whatsapp.value,
                    external_id=row.wamid,
                    metadata={"whatsapp": {"wa_id": row.wa_id, "type": row.type, "wamid": row.wamid}},
                )
            except BotUnavailableError as exc:
                await self._readable(exc.extra.get("message_id"), row)
                raise
            message_id = reply.user_message_id
            await self._readable(message_id, row)
            if not reply.messages:
                log.info("no bot reply (handled by a human) conversation_id=%s wamid=%s", cid, row.wamid)
                return message_id
        await self._deliver_replies(row, conversation, message_id)
        return message_id

    async def _stored_message(self, wamid: str) -> Message | None:
        async with self._sessions() as session:
            return await session.scalar(
                select(Message).where(Message.channel == Channel.whatsapp.value, Message.external_id == wamid)
            )

    async def _readable(self, message_id: int | None, row: WhatsAppInbound) -> None:
        """The bot got the button's id; the conversation shows what the customer saw, the id in the payload."""
        if message_id is None or (row.type == "text" and row.bot_text == row.text):
            return  # plain text: what the bot got is what the customer wrote
        async with self._sessions() as session, session.begin():
            await session.execute(
                update(Message).where(Message.id == message_id).values(text=row.text, payload=_payload(row))
            )

    async def _deliver_replies(self, row: WhatsAppInbound, conversation: Conversation, message_id: int) -> None:
        async with self._sessions() as session:
            replies = (
                await session.scalars(
                    select(Message)
                    .where(Message.conversation_id == conversation.id, Message.id > message_id)
                    .order_by(Message.id)
                    .limit(50)
                )
            ).all()
            bot_replies = []
            for message in replies:
                if message.sender is not Sender.bot:
                    break  # the next customer message (or a CSR's) starts another turn
                bot_replies.append(message)
            sent_before = set(
                (
                    await session.scalars(
                        select(WhatsAppOutbound.message_id).where(
                            WhatsAppOutbound.message_id.in_([m.id for m in bot_replies])
                        )
                    )
                ).all()
            )
        first = True
        for message in bot_replies:
            if message.id in sent_before:
                continue
            try:
                outbound = await self._channel.send(conversation=conversation, message=message)
            except WhatsAppDeliveryError as exc:
                # Stored as failed with the reason; running the bot again would not help.
                log.error(
                    "reply not delivered conversation_id=%s message_id=%s reason=%s", conversation.id, message.id, exc
                )
                continue
            if first and any(o.wamid for o in outbound):
                metrics.REPLY_SECONDS.observe((utcnow() - as_utc(row.received_at)).total_seconds())
                first = False

    async def _finish(self, row: WhatsAppInbound, conversation_id: str, message_id: int) -> None:
        async with self._sessions() as session, session.begin():
            await session.execute(
                update(WhatsAppInbound)
                .where(WhatsAppInbound.id == row.id)
                .values(
                    state=InboundState.done.value,
                    locked_until=None,
                    processed_at=utcnow(),
                    conversation_id=conversation_id,
                    message_id=message_id,
                    last_error=None,
                )
            )
        metrics.INBOUND_PROCESSED.labels(result="done").inc()

    async def _retry_later(
        self, row: WhatsAppInbound, conversation_id: str | None, error: str, *, counts: bool
    ) -> None:
        give_up = counts and row.attempts >= MAX_ATTEMPTS
        delay = min(self._retry_max, self._retry_base * 2 ** max(0, row.attempts - 1)) * random.uniform(0.5, 1.0)
        async with self._sessions() as session, session.begin():
            await session.execute(
                update(WhatsAppInbound)
                .where(WhatsAppInbound.id == row.id)
                .values(
                    state=InboundState.failed.value if give_up else InboundState.pending.value,
                    locked_until=None,
                    next_attempt_at=utcnow() + timedelta(seconds=delay),
                    last_error=error[:2000],
                    conversation_id=conversation_id,
                )
            )
        if give_up:
            metrics.INBOUND_PROCESSED.labels(result="failed").inc()
            log.error(
                "whatsapp message parked as failed conversation_id=%s wamid=%s error=%s",
                conversation_id,
                row.wamid,
                error,
            )
        else:
            log.info("retry scheduled conversation_id=%s wamid=%s in=%.1fs", conversation_id, row.wamid, delay)


def _payload(row: WhatsAppInbound) -> dict[str, Any]:
    whatsapp: dict[str, Any] = {"type": row.type, "wamid": row.wamid}
    if row.bot_text is not None and row.bot_text != row.text:
        whatsapp["bot_text"] = row.bot_text
    if row.media_id:
        whatsapp.update(media_id=row.media_id, mime_type=row.mime_type)
    if row.type in ("location", "contacts", "reaction", "interactive", "button", "unsupported"):
        whatsapp["content"] = row.raw.get(row.type) if row.type != "unsupported" else row.raw.get("errors")
    return {"whatsapp": whatsapp}


def _by_sender(rows: Sequence[WhatsAppInbound]) -> list[list[WhatsAppInbound]]:
    groups: dict[str, list[WhatsAppInbound]] = defaultdict(list)
    for row in rows:
        groups[row.wa_id].append(row)
    return list(groups.values())
