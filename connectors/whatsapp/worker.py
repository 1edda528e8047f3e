"""The background worker: drains the durable inbound queue through the MessageGateway.

The webhook only stores and acknowledges; this worker does the slow part. Each
claimed row gets a lease (`locked_until`) and a token (`lease_owner`); the worker
renews the leases of the rows in its hands while their turns run, however slow
the bot. A crash after the 200 — or mid-way — loses nothing: the lease runs out
and the row is claimed again, on this or another replica. Only the token's holder
records the outcome, so a worker whose lease was taken over changes nothing.
Messages of one WhatsApp user are handled one at a time, in order. A bot outage
keeps the message queued with exponential backoff for as long as it lasts; any
other failure counts, and after `max_attempts` failed attempts the row is `dead`
until an operator re-drives it (`python -m connectors.whatsapp redrive`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import uuid
from collections import defaultdict
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import case, func, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from connectors.whatsapp import metrics
from connectors.whatsapp.consent import Keywords, Source
from connectors.whatsapp.consent import record as record_consent
from connectors.whatsapp.errors import WhatsAppDeliveryError
from connectors.whatsapp.graph import GraphClient, GraphError
from connectors.whatsapp.media import BusinessPlace, MediaReplies
from connectors.whatsapp.models import (
    ConsentScope,
    InboundState,
    OutboundStatus,
    WhatsAppContact,
    WhatsAppInbound,
    WhatsAppOutbound,
)
from connectors.whatsapp.outbound import WhatsAppChannel, as_utc
from connectors.whatsapp.store import upsert_contact, user_id_for
from conversation_api.conversations.models import Channel, Conversation, HandoffState
from conversation_api.db import utcnow
from conversation_api.errors import BotUnavailableError
from conversation_api.gateway import MessageGateway, StoredAs
from conversation_api.locks import ConversationLocks, LockSpace

log = logging.getLogger(__name__)


class RepliesNotDelivered(Exception):
    """The Graph API kept failing on a reply; it is stored as pending and the message is retried."""


POLL_SECONDS = 0.5
# Messages whose text can be a consent keyword: typed, or a (template) button whose payload is one.
KEYWORD_TYPES = ("text", "button", "interactive")
LEASE_EXPIRED = "the lease ran out before the attempt ended (the worker stopped, crashed or hung)"


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
        max_attempts: int = 8,
        keywords: Keywords | None = None,
        opt_out_reply: str = "You're unsubscribed. Reply START to subscribe again.",
        opt_in_reply: str = "You're subscribed again. Reply STOP at any time to unsubscribe.",
        media_replies: MediaReplies | None = None,
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
        self._max_attempts = max_attempts
        self._keywords = keywords or Keywords.of([], [])
        self._consent_replies = {"opt_out": opt_out_reply, "opt_in": opt_in_reply}
        self._media = media_replies or MediaReplies(BusinessPlace.load())
        # Each message's read receipt (with the typing indicator) in flight: replies wait for it.
        self._receipts: dict[int, asyncio.Task[None]] = {}
        self._wakeup = asyncio.Event()
        self._inflight: set[asyncio.Task[None]] = set()
        self._busy = 0
        self._loop_task: asyncio.Task[None] | None = None
        self._heartbeat_task: asyncio.Task[None] | None = None
        self._held: set[str] = set()  # lease tokens of the rows claimed and not yet finished

    def wake(self) -> None:
        """New rows were stored: look now instead of at the next poll."""
        self._wakeup.set()

    async def start(self) -> None:
        if self._loop_task is None:
            self._loop_task = asyncio.create_task(self._run(), name="whatsapp-worker")
            self._heartbeat_task = asyncio.create_task(self._heartbeat(), name="whatsapp-worker-leases")

    async def stop(self) -> None:
        """Stop claiming; let messages already in flight finish (their leases would expire otherwise)."""
        if self._loop_task is not None:
            self._loop_task.cancel()
            await asyncio.gather(self._loop_task, return_exceptions=True)
            self._loop_task = None
        if self._inflight:
            await asyncio.wait(self._inflight, timeout=30)
        if self._heartbeat_task is not None:  # last: the leases of the messages finishing above stay renewed
            self._heartbeat_task.cancel()
            await asyncio.gather(self._heartbeat_task, return_exceptions=True)
            self._heartbeat_task = None

    async def _heartbeat(self) -> None:
        # Three renewals per lease: one may fail (a database hiccup) without the lease running out.
        every = self._lease.total_seconds() / 3
        while True:
            await asyncio.sleep(every)
            try:
                await self.renew()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.warning("whatsapp worker could not renew its leases held=%d", len(self._held), exc_info=True)

    async def renew(self) -> int:
        """Extend the lease of every row this worker is handling; a lease another worker took over stays theirs."""
        tokens = list(self._held)
        if not tokens:
            return 0
        async with self._sessions() as session, session.begin():
            result = await session.execute(
                update(WhatsAppInbound)
                .where(WhatsAppInbound.lease_owner.in_(tokens), WhatsAppInbound.state == InboundState.pending.value)
                .values(locked_until=utcnow() + self._lease)
            )
        renewed: int = result.rowcount  # type: ignore[attr-defined]
        if renewed < len(tokens):
            log.warning("whatsapp worker lost leases held=%d renewed=%d", len(tokens), renewed)
        return renewed

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
            await self._bury_abandoned(session, now)
            due = or_(WhatsAppInbound.locked_until.is_(None), WhatsAppInbound.locked_until < now)
            candidates = (
                await session.scalars(
                    select(WhatsAppInbound.id)
                    .where(WhatsAppInbound.state == InboundState.pending.value)
                    .where(WhatsAppInbound.next_attempt_at <= now)
                    .where(due)
                    .order_by(WhatsAppInbound.sent_at, WhatsAppInbound.id)
                    .limit(limit)
                )
            ).all()
            claimed: dict[int, str] = {}
            for row_id in candidates:
                token = uuid.uuid4().hex
                # Optimistic claim: only one replica's UPDATE matches a row whose lease is free.
                result = await session.execute(
                    update(WhatsAppInbound)
                    .where(WhatsAppInbound.id == row_id, WhatsAppInbound.state == InboundState.pending.value, due)
                    .values(
                        locked_until=now + self._lease,
                        lease_owner=token,
                        attempts=WhatsAppInbound.attempts + 1,
                        # A lease left to run out means the last attempt never ended: it failed.
                        failed_attempts=case(
                            (WhatsAppInbound.locked_until.is_not(None), WhatsAppInbound.failed_attempts + 1),
                            else_=WhatsAppInbound.failed_attempts,
                        ),
                    )
                )
                if result.rowcount == 1:  # type: ignore[attr-defined]
                    claimed[row_id] = token
            by_state = dict(
                (
                    await session.execute(
                        select(WhatsAppInbound.state, func.count())
                        .where(WhatsAppInbound.state.in_([InboundState.pending.value, InboundState.dead.value]))
                        .group_by(WhatsAppInbound.state)
                    )
                ).all()
            )
            metrics.QUEUE_DEPTH.set(by_state.get(InboundState.pending.value, 0))
            metrics.DEAD_DEPTH.set(by_state.get(InboundState.dead.value, 0))
            if not claimed:
                return []
            rows = list(
                await session.scalars(
                    select(WhatsAppInbound)
                    .where(WhatsAppInbound.id.in_(claimed))
                    .order_by(WhatsAppInbound.sent_at, WhatsAppInbound.id)
                )
            )
        self._held.update(claimed.values())
        return rows

    async def _bury_abandoned(self, session: AsyncSession, now: datetime) -> None:
        """Rows whose lease ran out on their last allowed attempt go dead instead of being claimed again."""
        buried = await session.execute(
            update(WhatsAppInbound)
            .where(
                WhatsAppInbound.state == InboundState.pending.value,
                WhatsAppInbound.locked_until < now,
                WhatsAppInbound.failed_attempts >= self._max_attempts - 1,
            )
            .values(
                state=InboundState.dead.value,
                locked_until=None,
                lease_owner=None,
                failed_attempts=WhatsAppInbound.failed_attempts + 1,
                last_error=LEASE_EXPIRED,
            )
            .returning(WhatsAppInbound.wamid, WhatsAppInbound.conversation_id, WhatsAppInbound.failed_attempts)
        )
        for wamid, conversation_id, failed in buried.all():
            _dead(wamid, conversation_id, failed, LEASE_EXPIRED, reason="lease_expired")

    async def _process_group(self, rows: Sequence[WhatsAppInbound]) -> None:
        remaining = len(rows)
        try:
            async with self._locks.hold(user_id_for(rows[0].wa_id), LockSpace.channel_user):
                for row in rows:
                    await self.process(row)
                    self._busy -= 1
                    remaining -= 1
        except Exception:  # e.g. the lock store is down: the leases run out and the rows are claimed again
            log.exception("whatsapp worker could not process wa_id=%s; retried after the lease", rows[0].wa_id)
        finally:
            self._held.difference_update(row.lease_owner for row in rows if row.lease_owner)  # renewed no more
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
        # Blue ticks and "typing…" while the bot thinks: the read receipt runs alongside the bot round
        # trip, and the replies wait for it, so the indicator never outlives them.
        receipt = None
        if row.attempts <= 1:
            receipt = asyncio.create_task(self._mark_read(row, cid, typing=self._will_answer(row, conversation)))
            self._receipts[row.id] = receipt
        try:
            message_id = await self._handle(row, conversation)
        except BotUnavailableError as exc:
            metrics.INBOUND_PROCESSED.labels(result="bot_unavailable").inc()
            log.warning("bot unavailable, message stays queued conversation_id=%s wamid=%s", cid, row.wamid)
            await self._retry_later(row, cid, exc.detail, counts=False)
            return
        except RepliesNotDelivered as exc:
            metrics.INBOUND_PROCESSED.labels(result="not_delivered").inc()
            log.warning("replies not delivered, sent again later conversation_id=%s wamid=%s", cid, row.wamid)
            await self._retry_later(row, cid, str(exc), counts=True)
            return
        except Exception as exc:
            log.exception("whatsapp message failed conversation_id=%s wamid=%s", cid, row.wamid)
            await self._retry_later(row, cid, f"{type(exc).__name__}: {exc}", counts=True)
            return
        finally:
            if receipt is not None:
                self._receipts.pop(row.id, None)
                await receipt
        await self._finish(row, cid, message_id)

    async def _conversation_for(self, row: WhatsAppInbound) -> Conversation:
        """The one open WhatsApp conversation of this user (the gateway starts it on their first message)."""
        async with self._sessions() as session, session.begin():
            contact = await session.get(WhatsAppContact, row.wa_id)
            if contact is None:  # rows inserted by hand or before contacts existed
                await upsert_contact(session=session, wa_id=row.wa_id, profile_name=None, last_inbound_at=row.sent_at)
                contact = await session.get(WhatsAppContact, row.wa_id)
                assert contact is not None
            conversation = await self._gateway.open_conversation(
                user_id=contact.user_id, channel=Channel.whatsapp.value, conversation_id=contact.conversation_id
            )
            if contact.conversation_id != conversation.id:
                contact.conversation_id = conversation.id
                log.info("conversation started conversation_id=%s wa_id=%s", conversation.id, row.wa_id)
            return conversation

    def _will_answer(self, row: WhatsAppInbound, conversation: Conversation) -> bool:
        """Whether a reply is coming (Meta: show the typing indicator only then)."""
        if row.bot_text is None:
            return False  # stored without a turn: reactions, unsupported types
        if row.type in KEYWORD_TYPES and self._keywords.action_of(row.bot_text) is not None:
            return True  # the connector confirms STOP / START in any handoff state
        # As the conversation stood when claimed: a handoff meanwhile only leaves a dot for 25 s.
        return conversation.handoff_state is HandoffState.bot

    async def _mark_read(self, row: WhatsAppInbound, conversation_id: str, *, typing: bool = False) -> None:
        try:
            await self._graph.mark_read(
                row.wamid, phone_number_id=self._channel.sender_for(row.phone_number_id), typing=typing
            )
        except GraphError as exc:  # blue ticks are a courtesy; never hold the message back for them
            log.warning("mark-as-read failed conversation_id=%s wamid=%s reason=%s", conversation_id, row.wamid, exc)

    async def _handle(self, row: WhatsAppInbound, conversation: Conversation) -> int:
        cid = conversation.id
        shown = StoredAs(text=row.text, payload=_payload(row))
        if row.bot_text is None:
            # Reactions, unsupported and unknown types: kept in the conversation, not a turn for the bot.
            message_id = await self._gateway.record(
                user_id=conversation.user_id,
                conversation_id=cid,
                channel=Channel.whatsapp.value,
                external_id=row.wamid,
                shown=shown,
            )
            log.info("stored without the bot conversation_id=%s wamid=%s type=%s", cid, row.wamid, row.type)
            return message_id
        action = self._keywords.action_of(row.bot_text) if row.type in KEYWORD_TYPES else None
        if action is not None:
            return await self._consent_keyword(row, conversation, action)
        media_reply = self._media.reply_for(kind=row.type, content=_content(row))
        if media_reply is not None:
            return await self._answer_media(row, conversation, media_reply)
        # A repeat (a previous attempt crashed, or the bot was down) is idempotent by the wamid: the
        # gateway answers it from the store, or sends that same stored message to the bot again.
        metadata: dict[str, Any] = {"whatsapp": {"wa_id": row.wa_id, "type": row.type, "wamid": row.wamid}}
        appointment_id = await self._reminder_answered(row)
        if appointment_id is not None:
            # A reminder's Confirm / Reschedule / Cancel: the bot's flow works on that appointment.
            metadata["appointment_id"] = appointment_id
        reply = await self._gateway.handle(
            user_id=conversation.user_id,
            conversation_id=cid,
            text=row.bot_text,
            channel=Channel.whatsapp.value,
            external_id=row.wamid,
            metadata=metadata,
            # The bot gets a button's id; the conversation shows what the customer saw, the id in the payload.
            shown=None if (row.type == "text" and row.bot_text == row.text) else shown,
        )
        if not reply.messages:
            log.info("no bot reply (handled by a human) conversation_id=%s wamid=%s", cid, row.wamid)
            return reply.user_message_id
        await self._deliver_replies(row, conversation, reply.user_message_id)
        return reply.user_message_id

    async def _reminder_answered(self, row: WhatsAppInbound) -> str | None:
        """The appointment of the reminder whose quick reply this is (Meta's `context.id` is the template's wamid)."""
        context = row.raw.get("context") if isinstance(row.raw, dict) else None
        replied_to = context.get("id") if isinstance(context, dict) else None
        if row.type != "button" or not replied_to or row.bot_text is None:
            return None
        async with self._sessions() as session:
            message_id = await session.scalar(
                select(WhatsAppOutbound.message_id).where(WhatsAppOutbound.wamid == str(replied_to))
            )
        if message_id is None:
            return None
        return await self._gateway.reminder_answered(message_id=message_id, payload=row.bot_text)

    async def _consent_keyword(self, row: WhatsAppInbound, conversation: Conversation, action: str) -> int:
        """STOP / START (or a configured keyword): record it in the consent ledger and confirm in one reply.

        The connector answers, not the bot, in any handoff state: the customer's word on what
        they want to receive must not depend on the dialogue. Each step is idempotent by the
        wamid, so a retried attempt records and confirms nothing twice.
        """
        async with self._sessions() as session, session.begin():
            await record_consent(
                session=session,
                wa_id=row.wa_id,
                action=action,
                scope=ConsentScope.all if action == "opt_out" else None,
                source=Source.keyword,
                reference=row.wamid,
                at=as_utc(row.sent_at),
                detail=row.text,
                phone_number_id=row.phone_number_id,
            )
        shown = _payload(row)
        shown["consent"] = action
        message_id = await self._gateway.record(
            user_id=conversation.user_id,
            conversation_id=conversation.id,
            channel=Channel.whatsapp.value,
            external_id=row.wamid,
            shown=StoredAs(text=row.text, payload=shown),
            replies=[StoredAs(text=self._consent_replies[action], payload={"consent": action})],
        )
        log.info("consent keyword conversation_id=%s wamid=%s action=%s", conversation.id, row.wamid, action)
        await self._deliver_replies(row, conversation, message_id)
        return message_id

    async def _answer_media(self, row: WhatsAppInbound, conversation: Conversation, reply: str) -> int:
        """A voice note, a picture without a caption, a location…: stored, and answered once by the
        connector in the bot's place (connectors/whatsapp/media.py) — unless a human has the
        conversation, who sees it in the console. Idempotent by the wamid, as every step here.
        """
        message_id = await self._gateway.record(
            user_id=conversation.user_id,
            conversation_id=conversation.id,
            channel=Channel.whatsapp.value,
            external_id=row.wamid,
            shown=StoredAs(text=row.text, payload=_payload(row)),
            replies=[StoredAs(text=reply, payload={"media_reply": row.type})],
            replies_only_with_bot=True,
        )
        replies = await self._gateway.replies(message_id=message_id)
        metrics.MEDIA_MESSAGES.labels(type=row.type, answered="true" if replies else "false").inc()
        log.info(
            "media answered by the connector conversation_id=%s wamid=%s type=%s replied=%s",
            conversation.id,
            row.wamid,
            row.type,
            bool(replies),
        )
        await self._deliver_replies(row, conversation, message_id)
        return message_id

    async def _deliver_replies(self, row: WhatsAppInbound, conversation: Conversation, message_id: int) -> None:
        """Send the turn's bot replies the Graph API has not accepted (or refused for good) yet, in order.

        A reply the Graph API keeps failing on stops the turn here (RepliesNotDelivered): the
        inbound row is retried later and sends what is pending from where it stopped.
        """
        bot_replies = await self._gateway.replies(message_id=message_id)
        receipt = self._receipts.get(row.id)
        if receipt is not None and bot_replies:
            await asyncio.shield(receipt)  # the typing indicator first, then what it announced
        async with self._sessions() as session:
            sent_before: dict[int | None, list[WhatsAppOutbound]] = defaultdict(list)
            for request in await session.scalars(
                select(WhatsAppOutbound)
                .where(WhatsAppOutbound.message_id.in_([m.id for m in bot_replies]))
                .order_by(WhatsAppOutbound.id)
            ):
                sent_before[request.message_id].append(request)
        first = True
        for message in bot_replies:
            earlier = sent_before.get(message.id, [])
            pending = [o for o in earlier if o.status == OutboundStatus.pending.value]
            if earlier and not pending:
                continue  # accepted, or refused for good (window, blocked number): sending again would not help
            try:
                if pending:
                    outbound = [await self._channel.resend(conversation=conversation, row=o) for o in pending]
                else:
                    outbound = await self._channel.send(
                        conversation=conversation,
                        message=message,
                        resend_later=True,
                        phone_number_id=row.phone_number_id,
                    )
            except WhatsAppDeliveryError as exc:
                raise RepliesNotDelivered(f"reply message_id={message.id} not delivered: {exc.detail}") from exc
            if first and any(o.wamid for o in outbound):
                metrics.REPLY_SECONDS.observe((utcnow() - as_utc(row.received_at)).total_seconds())
                first = False

    def _owned(self, row: WhatsAppInbound) -> Any:
        """The row as this claim left it: still pending and leased by this claim's token."""
        return (
            (WhatsAppInbound.id == row.id)
            & (WhatsAppInbound.lease_owner == row.lease_owner)
            & (WhatsAppInbound.state == InboundState.pending.value)
        )

    def _stale(self, row: WhatsAppInbound, conversation_id: str | None, outcome: str) -> None:
        metrics.STALE_OUTCOMES.labels(outcome=outcome).inc()
        log.warning(
            "outcome not recorded: the lease was taken over conversation_id=%s wamid=%s outcome=%s",
            conversation_id,
            row.wamid,
            outcome,
        )

    async def _finish(self, row: WhatsAppInbound, conversation_id: str, message_id: int) -> None:
        self._held.discard(row.lease_owner or "")  # first, or a renewal meanwhile would think the lease lost
        async with self._sessions() as session, session.begin():
            result = await session.execute(
                update(WhatsAppInbound)
                .where(self._owned(row))
                .values(
                    state=InboundState.done.value,
                    locked_until=None,
                    lease_owner=None,
                    processed_at=utcnow(),
                    conversation_id=conversation_id,
                    message_id=message_id,
                    last_error=None,
                )
            )
        if result.rowcount != 1:  # type: ignore[attr-defined]
            self._stale(row, conversation_id, "done")
            return
        metrics.INBOUND_PROCESSED.labels(result="done").inc()

    async def _retry_later(
        self, row: WhatsAppInbound, conversation_id: str | None, error: str, *, counts: bool
    ) -> None:
        failed = row.failed_attempts + 1 if counts else row.failed_attempts
        give_up = failed >= self._max_attempts
        delay = min(self._retry_max, self._retry_base * 2 ** max(0, row.attempts - 1)) * random.uniform(0.5, 1.0)
        self._held.discard(row.lease_owner or "")
        async with self._sessions() as session, session.begin():
            result = await session.execute(
                update(WhatsAppInbound)
                .where(self._owned(row))
                .values(
                    state=InboundState.dead.value if give_up else InboundState.pending.value,
                    failed_attempts=failed,
                    locked_until=None,
                    lease_owner=None,
                    next_attempt_at=utcnow() + timedelta(seconds=delay),
                    last_error=error[:2000],
                    conversation_id=conversation_id,
                )
            )
        if result.rowcount != 1:  # type: ignore[attr-defined]
            self._stale(row, conversation_id, "dead" if give_up else "retry")
        elif give_up:
            _dead(row.wamid, conversation_id, failed, error, reason="error")
        else:
            log.info(
                "retry scheduled conversation_id=%s wamid=%s in=%.1fs failed_attempts=%d",
                conversation_id,
                row.wamid,
                delay,
                failed,
            )


def _dead(wamid: str, conversation_id: str | None, failed: int, error: str, *, reason: str) -> None:
    metrics.INBOUND_PROCESSED.labels(result="dead").inc()
    metrics.DEAD_LETTERS.labels(reason=reason).inc()
    log.error(
        "whatsapp message dead after %d failed attempts conversation_id=%s wamid=%s reason=%s error=%s"
        " (re-drive: python -m connectors.whatsapp redrive)",
        failed,
        conversation_id,
        wamid,
        reason,
        error,
    )


def _content(row: WhatsAppInbound) -> dict[str, Any]:
    """The message's type-named object (`image`, `location`…) as Meta sent it."""
    content = (row.raw or {}).get(row.type)
    return content if isinstance(content, dict) else {}


def _payload(row: WhatsAppInbound) -> dict[str, Any]:
    whatsapp: dict[str, Any] = {"type": row.type, "wamid": row.wamid}
    if row.bot_text is not None and row.bot_text != row.text:
        whatsapp["bot_text"] = row.bot_text
    if row.media_id:
        whatsapp.update(media_id=row.media_id, mime_type=row.mime_type)
        content = _content(row)
        if content.get("filename"):
            whatsapp["filename"] = str(content["filename"])
        if content.get("voice"):
            whatsapp["voice"] = True
    if row.type in ("location", "contacts", "reaction", "interactive", "button", "unsupported"):
        whatsapp["content"] = row.raw.get(row.type) if row.type != "unsupported" else row.raw.get("errors")
    return {"whatsapp": whatsapp}


def _by_sender(rows: Sequence[WhatsAppInbound]) -> list[list[WhatsAppInbound]]:
    groups: dict[str, list[WhatsAppInbound]] = defaultdict(list)
    for row in rows:
        groups[row.wa_id].append(row)
    return list(groups.values())
