"""The WhatsApp connector in the running app: webhook -> durable queue -> worker -> gateway -> fake Graph API.

Runs on PostgreSQL and SQLite with a fake bot (the real Rasa is in tests/e2e).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import timedelta

import httpx
import pytest
from fastapi import FastAPI
from prometheus_client import REGISTRY
from sqlalchemy import select, update

from connectors.whatsapp.errors import WhatsAppDeliveryError
from connectors.whatsapp.models import WhatsAppContact, WhatsAppInbound, WhatsAppOutbound, WhatsAppStatus
from connectors.whatsapp.store import user_id_for
from conversation_api.container import Container
from conversation_api.conversations import service
from conversation_api.conversations.models import Conversation, HandoffState, Message, Sender
from conversation_api.db import utcnow
from conversation_api.settings import Settings
from tests.conftest import running_app
from tests.support.fake_graph import FakeGraph
from tests.support.fakes import FakeBot
from tests.support.whatsapp import (
    VERIFY_TOKEN,
    WEBHOOK,
    eventually,
    fixture,
    new_wa_id,
    new_wamid,
    signed,
    status_payload,
    text_payload,
    whatsapp_settings,
)


@dataclass
class WA:
    http: httpx.AsyncClient
    app: FastAPI
    bot: FakeBot
    graph: FakeGraph

    @property
    def container(self) -> Container:
        return self.app.state.container

    async def post(self, payload: dict | bytes) -> httpx.Response:
        body, headers = signed(payload)
        return await self.http.post(WEBHOOK, content=body, headers=headers)

    async def inbound(self, wamid: str) -> WhatsAppInbound | None:
        async with self.container.sessions() as session:
            return await session.scalar(select(WhatsAppInbound).where(WhatsAppInbound.wamid == wamid))

    async def done(self, wamid: str) -> WhatsAppInbound | None:
        row = await self.inbound(wamid)
        return row if row is not None and row.state == "done" else None

    async def messages(self, wa_id: str) -> list[Message]:
        async with self.container.sessions() as session:
            rows = await session.scalars(
                select(Message)
                .join(Conversation, Conversation.id == Message.conversation_id)
                .where(Conversation.user_id == user_id_for(wa_id))
                .order_by(Message.id)
            )
            return list(rows)

    async def outbound(self, wa_id: str) -> list[WhatsAppOutbound]:
        async with self.container.sessions() as session:
            rows = await session.scalars(
                select(WhatsAppOutbound).where(WhatsAppOutbound.wa_id == wa_id).order_by(WhatsAppOutbound.id)
            )
            return list(rows)

    async def conversation(self, wa_id: str) -> Conversation:
        async with self.container.sessions() as session:
            contact = await session.get(WhatsAppContact, wa_id)
            assert contact is not None and contact.conversation_id
            conversation = await session.get(Conversation, contact.conversation_id)
            assert conversation is not None
            return conversation

    def bot_texts(self, wa_id: str, conversation_id: str) -> list[str]:
        return [c["text"] for c in self.bot.calls if c["sender_id"] == conversation_id]


async def start_wa(settings: Settings, graph: FakeGraph, bot: FakeBot | None = None, **overrides) -> AsyncIterator[WA]:
    bot = bot or FakeBot()
    async for app, http in running_app(whatsapp_settings(settings, graph, **overrides), bot=bot):
        yield WA(http=http, app=app, bot=bot, graph=graph)


@pytest.fixture
async def wa(db_settings: Settings, fake_graph: FakeGraph) -> AsyncIterator[WA]:
    async for connected in start_wa(db_settings, fake_graph):
        yield connected


def metric(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


# --- the handshake and refusals -------------------------------------------------------------------


async def test_the_verification_handshake(wa: WA) -> None:
    ok = await wa.http.get(
        WEBHOOK, params={"hub.mode": "subscribe", "hub.verify_token": VERIFY_TOKEN, "hub.challenge": "1158201444"}
    )
    assert (ok.status_code, ok.text, ok.headers["content-type"].split(";")[0]) == (200, "1158201444", "text/plain")
    for params in (
        {"hub.mode": "subscribe", "hub.verify_token": "wrong", "hub.challenge": "1"},
        {"hub.mode": "unsubscribe", "hub.verify_token": VERIFY_TOKEN, "hub.challenge": "1"},
        {},
    ):
        refused = await wa.http.get(WEBHOOK, params=params)
        assert refused.status_code == 403 and refused.json()["code"] == "verification_failed"


async def test_without_whatsapp_settings_the_webhook_is_503(db_settings: Settings) -> None:
    async for _, http in running_app(db_settings, bot=FakeBot()):
        assert (await http.get(WEBHOOK, params={"hub.mode": "subscribe"})).status_code == 503
        body, headers = signed(text_payload(new_wa_id(), "hi"))
        response = await http.post(WEBHOOK, content=body, headers=headers)
        assert response.status_code == 503 and response.json()["code"] == "whatsapp_not_configured"


async def test_refused_bodies_are_clear_4xx_and_nothing_is_stored(db_settings: Settings, fake_graph: FakeGraph) -> None:
    wa_id, wamid = new_wa_id(), new_wamid()
    good = text_payload(wa_id, "hi", wamid=wamid)
    body, headers = signed(good)
    async for wa in start_wa(db_settings, fake_graph, whatsapp_max_body_bytes=64 * 1024):
        unsigned = await wa.http.post(WEBHOOK, content=body, headers={"Content-Type": "application/json"})
        assert (unsigned.status_code, unsigned.json()["code"]) == (401, "signature_missing")

        forged = await wa.http.post(WEBHOOK, content=body, headers={"X-Hub-Signature-256": "sha256=" + "0" * 64})
        assert (forged.status_code, forged.json()["code"]) == (403, "signature_invalid")
        wrong_key = signed(good, secret="not-the-app-secret")[1]
        assert (await wa.http.post(WEBHOOK, content=body, headers=wrong_key)).status_code == 403
        tampered = body.replace(b'"hi"', b'"HI"')
        assert (await wa.http.post(WEBHOOK, content=tampered, headers=headers)).status_code == 403

        malformed = await wa.post(b'{"object": "whatsapp_business_account", "entry": [')
        assert malformed.status_code == 400 and "JSON" in malformed.json()["detail"]
        wrong_object = await wa.post({**good, "object": "instagram"})
        assert wrong_object.status_code == 400 and "object" in wrong_object.json()["detail"]
        no_id = fixture("text", WA_ID=wa_id)
        del no_id["entry"][0]["changes"][0]["value"]["messages"][0]["id"]
        assert (await wa.post(no_id)).status_code == 400

        huge = good | {"padding": "x" * 100_000}
        too_large = await wa.post(huge)
        assert too_large.status_code == 413 and too_large.json()["code"] == "payload_too_large"

        async def chunks():  # no Content-Length: the limit holds while streaming
            for _ in range(100):
                yield b"x" * 1024

        streamed = await wa.http.post(WEBHOOK, content=chunks(), headers={"X-Hub-Signature-256": "sha256=00"})
        assert streamed.status_code == 413

        await asyncio.sleep(0.3)
        assert await wa.inbound(wamid) is None
        assert await wa.messages(wa_id) == []
        async with wa.container.sessions() as session:
            assert await session.get(WhatsAppContact, wa_id) is None
        assert wa.graph.requests == [] and wa.bot.calls == []


# --- inbound -> bot -> reply --------------------------------------------------------------------------


async def test_a_text_message_is_acknowledged_stored_answered_and_marked_read(wa: WA) -> None:
    wa_id, wamid = new_wa_id(), new_wamid()
    response = await wa.post(text_payload(wa_id, "hello there", wamid=wamid, name="Maria Lopez"))
    assert response.status_code == 200
    assert response.json() == {"status": "ok", "messages": 1, "duplicates": 0, "statuses": 0, "ignored": 0}

    row = await eventually(lambda: wa.done(wamid))
    conversation = await wa.conversation(wa_id)
    assert (conversation.channel, conversation.user_id) == ("whatsapp", f"whatsapp:{wa_id}")
    assert row.conversation_id == conversation.id
    async with wa.container.sessions() as session:
        contact = await session.get(WhatsAppContact, wa_id)
    assert contact.profile_name == "Maria Lopez"

    messages = await wa.messages(wa_id)
    assert [(m.sender, m.text) for m in messages] == [
        (Sender.user, "hello there"),
        (Sender.bot, "echo: hello there"),
        (Sender.bot, "pick one"),
    ]
    assert (messages[0].external_id, messages[0].channel, messages[0].intent) == (wamid, "whatsapp", "echo")
    assert wa.bot.calls[-1]["metadata"]["channel"] == "whatsapp"
    assert wa.bot.calls[-1]["metadata"]["user_id"] == f"whatsapp:{wa_id}"

    await eventually(lambda: _async(len(wa.graph.sends(wa_id)) == 2))
    text, buttons = wa.graph.sends(wa_id)
    assert text["text"]["body"] == "echo: hello there" and text["to"] == wa_id
    assert buttons["interactive"]["type"] == "button"
    assert buttons["interactive"]["action"]["buttons"][0]["reply"] == {"id": "/affirm", "title": "Yes"}
    assert wamid in wa.graph.reads()

    outbound = await eventually(lambda: _len(wa.outbound(wa_id), 2))
    assert [o.status for o in outbound] == ["accepted", "accepted"]
    assert [o.message_id for o in outbound] == [messages[1].id, messages[2].id]
    assert all(o.wamid in wa.graph.wamids() for o in outbound)

    exposed = (await wa.http.get("/metrics")).text
    assert 'whatsapp_webhook_requests_total{result="ok"}' in exposed
    assert "whatsapp_reply_seconds_count" in exposed


async def test_the_next_message_continues_the_same_conversation(wa: WA) -> None:
    wa_id = new_wa_id()
    first, second = new_wamid(), new_wamid()
    await wa.post(text_payload(wa_id, "one", wamid=first))
    await eventually(lambda: wa.done(first))
    await wa.post(text_payload(wa_id, "two", wamid=second, name="Maria L."))
    await eventually(lambda: wa.done(second))
    rows = [await wa.inbound(first), await wa.inbound(second)]
    assert rows[0].conversation_id == rows[1].conversation_id
    assert [m.text for m in await wa.messages(wa_id) if m.sender is Sender.user] == ["one", "two"]
    async with wa.container.sessions() as session:
        assert (await session.get(WhatsAppContact, wa_id)).profile_name == "Maria L."


@pytest.mark.parametrize(
    ("name", "bot_text", "stored_text"),
    [
        ("interactive_button_reply", "/affirm", "Yes, please"),
        ("interactive_list_reply", '/faq{"topic": "opening_hours"}', "Opening hours"),
        ("button", "/request_human", "Talk to a person"),
        # A caption is the customer's words; media without one, and locations, the connector
        # answers itself (tests/integration/test_whatsapp_media.py).
        ("image", "Is this colour available?", None),
        ("video", "the hair cut I'd like", None),
        ("contacts", "[contacts: Barbara Johnson +1 (940) 555-1234]", None),
    ],
)  # fmt: skip
async def test_each_message_type_reaches_the_bot_as_sensible_text(
    wa: WA, name: str, bot_text: str, stored_text: str | None
) -> None:
    wa_id, wamid = new_wa_id(), new_wamid()
    assert (await wa.post(fixture(name, WA_ID=wa_id, WAMID=wamid))).status_code == 200
    await eventually(lambda: wa.done(wamid))
    conversation = await wa.conversation(wa_id)
    assert wa.bot_texts(wa_id, conversation.id) == [bot_text]
    user = (await wa.messages(wa_id))[0]
    assert (user.sender, user.text, user.external_id) == (Sender.user, stored_text or bot_text, wamid)
    assert user.payload["whatsapp"]["type"] == fixture(name)["entry"][0]["changes"][0]["value"]["messages"][0]["type"]
    if stored_text:  # the id went to the bot, the customer's words are in the conversation
        assert user.payload["whatsapp"]["bot_text"] == bot_text
    media = fixture(name)["entry"][0]["changes"][0]["value"]["messages"][0].get(name, {})
    if "mime_type" in media:
        row = await wa.inbound(wamid)
        assert (row.media_id, row.mime_type) == (media["id"], media["mime_type"])
        assert user.payload["whatsapp"]["media_id"] == media["id"]
    await eventually(lambda: _async(len(wa.graph.sends(wa_id)) == 2))


@pytest.mark.parametrize("name", ["reaction", "unsupported", "unknown_type"])
async def test_reactions_unsupported_and_unknown_types_are_stored_without_a_reply(wa: WA, name: str) -> None:
    wa_id, wamid = new_wa_id(), new_wamid()
    response = await wa.post(fixture(name, WA_ID=wa_id, WAMID=wamid))
    assert response.status_code == 200 and response.json()["messages"] == 1
    row = await eventually(lambda: wa.done(wamid))
    [stored] = await wa.messages(wa_id)
    assert (stored.sender, stored.external_id, stored.id) == (Sender.user, wamid, row.message_id)
    assert stored.text.startswith("[")
    assert wa.bot_texts(wa_id, row.conversation_id) == []
    await asyncio.sleep(0.2)
    assert wa.graph.sends(wa_id) == []


async def test_a_batch_is_handled_entirely(wa: WA) -> None:
    ids = {f"WA_ID_{i}": new_wa_id() for i in (1, 2, 3)}
    wamids = {f"WAMID_{i}": new_wamid() for i in (1, 2, 3)}
    response = await wa.post(fixture("batch", **ids, **wamids, STATUS_WAMID=new_wamid()))
    assert response.json() == {"status": "ok", "messages": 3, "duplicates": 0, "statuses": 2, "ignored": 0}
    for wamid in wamids.values():
        await eventually(lambda wamid=wamid: wa.done(wamid))
    for wa_id, text in zip(ids.values(), ["hello", "hi there", "good morning"], strict=True):
        assert [m.text for m in await wa.messages(wa_id)][0] == text
        await eventually(lambda wa_id=wa_id: _async(len(wa.graph.sends(wa_id)) == 2))
    async with wa.container.sessions() as session:
        names = {c.wa_id: c.profile_name for c in await session.scalars(select(WhatsAppContact))}
    assert [names[w] for w in ids.values()] == ["Ana", "Ben", "Cleo"]


async def test_redeliveries_concurrent_or_in_another_batch_give_one_message_and_one_reply(wa: WA) -> None:
    wa_id, wamid = new_wa_id(), new_wamid()
    payload = text_payload(wa_id, "only once please", wamid=wamid)
    responses = await asyncio.gather(*(wa.post(payload) for _ in range(5)))
    assert [r.status_code for r in responses] == [200] * 5
    assert sorted(r.json()["messages"] for r in responses) == [0, 0, 0, 0, 1]

    await eventually(lambda: wa.done(wamid))
    # Meta retries later, inside another batch with a new message.
    other = new_wamid()
    batch = text_payload(wa_id, "and a new one", wamid=other)
    batch["entry"].append(payload["entry"][0])
    again = await wa.post(batch)
    assert again.json()["messages"] == 1 and again.json()["duplicates"] == 1
    await eventually(lambda: wa.done(other))

    user_messages = [m for m in await wa.messages(wa_id) if m.sender is Sender.user]
    assert [m.text for m in user_messages] == ["only once please", "and a new one"]
    conversation = await wa.conversation(wa_id)
    assert wa.bot_texts(wa_id, conversation.id) == ["only once please", "and a new one"]
    await asyncio.sleep(0.3)
    assert wa.graph.texts(wa_id) == ["echo: only once please", "pick one", "echo: and a new one", "pick one"]
    assert metric("whatsapp_inbound_messages_total", type="text", duplicate="true") >= 5


# --- statuses ---------------------------------------------------------------------------------------


async def test_statuses_are_deduplicated_and_only_move_forward(wa: WA) -> None:
    wa_id, wamid = new_wa_id(), new_wamid()
    await wa.post(text_payload(wa_id, "hi", wamid=wamid))
    first, second = await eventually(lambda: _len(wa.outbound(wa_id), 2))

    now = int(time.time())
    for status, at in [("delivered", now + 2), ("sent", now + 1), ("read", now + 3), ("delivered", now + 2)]:
        assert (await wa.post(status_payload(first.wamid, status, wa_id, at=at))).status_code == 200
    failed = await wa.post(status_payload(second.wamid, "failed", wa_id))
    assert failed.json()["statuses"] == 1

    first, second = await wa.outbound(wa_id)
    assert first.status == "read"
    assert (second.status, second.error_code) == ("failed", 131047)
    assert "24 hours" in second.error_reason
    async with wa.container.sessions() as session:
        seen = (await session.scalars(select(WhatsAppStatus.status).where(WhatsAppStatus.wamid == first.wamid))).all()
    assert sorted(seen) == ["delivered", "read", "sent"]


async def test_a_status_that_arrives_before_the_send_is_recorded_is_applied_later(
    db_settings: Settings, fake_graph: FakeGraph
) -> None:
    async for wa in start_wa(db_settings, fake_graph):
        wa_id = new_wa_id()
        # The fake numbers its wamids, so we know the one the first reply will get.
        early = await wa.post(status_payload(fake_graph.wamid_for(1), "delivered", wa_id))
        assert early.json()["statuses"] == 1
        await wa.post(text_payload(wa_id, "hi"))
        first, _ = await eventually(lambda wa=wa, wa_id=wa_id: _len(wa.outbound(wa_id), 2))
        assert (first.wamid, first.status) == (fake_graph.wamid_for(1), "delivered")


# --- failures: the bot, a crash, the Graph API, the 24-hour window -----------------------------------


async def test_while_the_bot_is_down_the_message_stays_queued_then_is_answered(
    db_settings: Settings, fake_graph: FakeGraph
) -> None:
    bot = FakeBot(fail=True)
    async for wa in start_wa(db_settings, fake_graph, bot=bot):
        wa_id, wamid = new_wa_id(), new_wamid()
        assert (await wa.post(text_payload(wa_id, "are you there?", wamid=wamid))).status_code == 200
        row = await eventually(lambda wa=wa, wamid=wamid: _attempted(wa.inbound(wamid), 2))
        assert row.state == "pending" and "unavailable" in row.last_error
        assert wa.graph.sends(wa_id) == []
        assert [m.text for m in await wa.messages(wa_id)] == ["are you there?"]  # kept, once

        bot.fail = False
        await eventually(lambda wa=wa, wamid=wamid: wa.done(wamid), within=15)
        assert [(m.sender, m.text) for m in await wa.messages(wa_id)] == [
            (Sender.user, "are you there?"),
            (Sender.bot, "echo: are you there?"),
            (Sender.bot, "pick one"),
        ]
        await eventually(lambda wa=wa, wa_id=wa_id: _async(len(wa.graph.sends(wa_id)) == 2))


async def test_messages_left_by_a_stopped_or_crashed_process_are_handled_on_restart(
    db_settings: Settings, fake_graph: FakeGraph
) -> None:
    wa_id = new_wa_id()
    queued, crashed = new_wamid(), new_wamid()
    async for wa in start_wa(db_settings, fake_graph, bot=FakeBot(fail=True), whatsapp_retry_base_seconds=60):
        await wa.post(text_payload(wa_id, "first", wamid=queued))
        await wa.post(text_payload(wa_id, "second", wamid=crashed))
        await eventually(lambda wa=wa: _attempted(wa.inbound(crashed), 1))
        async with wa.container.sessions() as session, session.begin():
            # `crashed` looks like a process died while handling it: claimed, its lease still running.
            await session.execute(
                update(WhatsAppInbound)
                .where(WhatsAppInbound.wamid == crashed)
                .values(locked_until=utcnow() + timedelta(seconds=1), next_attempt_at=utcnow())
            )
            # `queued` looks like a message stored and acknowledged just before the process died.
            await session.execute(
                update(WhatsAppInbound)
                .where(WhatsAppInbound.wamid == queued)
                .values(attempts=0, locked_until=None, next_attempt_at=utcnow())
            )
    # The process is gone; both messages are still in the database. A new process picks them up.
    async for wa in start_wa(db_settings, fake_graph):
        await eventually(lambda wa=wa: wa.done(queued))
        await eventually(lambda wa=wa: wa.done(crashed))
        texts = [m.text for m in await wa.messages(wa_id) if m.sender is Sender.user]
        assert texts == ["first", "second"]
        await eventually(lambda wa=wa: _async(len(wa.graph.sends(wa_id)) == 4))


async def test_retryable_graph_errors_are_retried_and_permanent_ones_stored_as_failed(wa: WA) -> None:
    wa_id, wamid = new_wa_id(), new_wamid()
    wa.graph.fail_next(130429, times=2)  # the mark-as-read and one send attempt
    await wa.post(text_payload(wa_id, "hi", wamid=wamid))
    outbound = await eventually(lambda: _len(wa.outbound(wa_id), 2))
    assert [o.status for o in outbound] == ["accepted", "accepted"]

    other, wamid2 = new_wa_id(), new_wamid()
    before = metric("whatsapp_graph_errors_total", code="131026")
    await wa.post(text_payload(other, "hi", wamid=wamid2))
    await eventually(lambda: wa.done(wamid2))
    # The next message's mark-as-read (a courtesy, only logged) and its first send fail.
    wa.graph.fail_next(131026, times=2)
    wamid3 = new_wamid()
    await wa.post(text_payload(other, "again", wamid=wamid3))
    await eventually(lambda: wa.done(wamid3))
    rows = await eventually(lambda: _len(wa.outbound(other), 4))
    failed = [o for o in rows if o.status == "failed"]
    assert len(failed) == 1 and (failed[0].error_code, failed[0].wamid) == (131026, None)
    assert failed[0].error_reason and "Undeliverable" in failed[0].error_reason
    assert len([r for r in wa.graph.attempts(other) if r.error_code == 131026]) == 1  # not retried
    assert metric("whatsapp_graph_errors_total", code="131026") == before + 2


async def test_no_free_form_reply_outside_the_24_hour_window(wa: WA) -> None:
    wa_id, wamid = new_wa_id(), new_wamid()
    before = metric("whatsapp_outside_window_total")
    # Meta retries for days: this message was written 25 hours ago and reaches us only now.
    await wa.post(text_payload(wa_id, "old news", wamid=wamid, at=int(time.time()) - 25 * 3600))
    await eventually(lambda: wa.done(wamid))
    outbound = await eventually(lambda: _len(wa.outbound(wa_id), 2))
    assert {(o.status, o.error_code, o.wamid) for o in outbound} == {("failed", 131047, None)}
    assert "24-hour" in outbound[0].error_reason
    assert wa.graph.sends(wa_id) == []
    assert metric("whatsapp_outside_window_total") == before + 2
    assert [m.sender for m in await wa.messages(wa_id)] == [Sender.user, Sender.bot, Sender.bot]  # all kept


# --- the same gateway: handoff and CSR replies ---------------------------------------------------------


async def test_a_conversation_with_a_human_gets_no_bot_reply(wa: WA) -> None:
    wa_id, first = new_wa_id(), new_wamid()
    await wa.post(text_payload(wa_id, "hello", wamid=first))
    await eventually(lambda: wa.done(first))
    conversation = await wa.conversation(wa_id)
    async with wa.container.sessions() as session, session.begin():
        await session.execute(
            update(Conversation)
            .where(Conversation.id == conversation.id)
            .values(handoff_state=HandoffState.pending_human)
        )
    sent_before = len(wa.graph.sends(wa_id))
    second = new_wamid()
    await wa.post(text_payload(wa_id, "is someone there?", wamid=second))
    await eventually(lambda: wa.done(second))
    await asyncio.sleep(0.3)
    assert len(wa.graph.sends(wa_id)) == sent_before
    assert wa.bot_texts(wa_id, conversation.id) == ["hello"]
    assert [m.text for m in await wa.messages(wa_id)][-1] == "is someone there?"


async def test_a_csr_reply_goes_out_through_the_registered_whatsapp_channel(wa: WA) -> None:
    wa_id, wamid = new_wa_id(), new_wamid()
    await wa.post(text_payload(wa_id, "hello", wamid=wamid))
    await eventually(lambda: wa.done(wamid))
    conversation = await wa.conversation(wa_id)
    async with wa.container.sessions() as session, session.begin():
        reply = await service.append_message(
            session=session, conversation=conversation, sender=Sender.csr, text="Hi, this is Sam from the salon."
        )
    await wa.container.channels.for_conversation(conversation).deliver(conversation=conversation, message=reply)
    assert wa.graph.texts(wa_id)[-1] == "Hi, this is Sam from the salon."
    rows = await wa.outbound(wa_id)
    assert (rows[-1].message_id, rows[-1].status) == (reply.id, "accepted")

    # A CSR is told when WhatsApp refuses (here: the number cannot receive messages); the failure is stored.
    wa.graph.fail_next(131026)
    with pytest.raises(WhatsAppDeliveryError) as caught:
        await wa.container.channels.for_conversation(conversation).deliver(conversation=conversation, message=reply)
    assert caught.value.extra["error_code"] == 131026
    assert (await wa.outbound(wa_id))[-1].status == "failed"


async def _async(value):
    return value


async def _len(rows_coro, n: int):
    rows = await rows_coro
    return rows if len(rows) >= n else None


async def _attempted(row_coro, attempts: int):
    row = await row_coro
    return row if row is not None and row.attempts >= attempts and row.locked_until is None else None


async def test_the_service_window_only_moves_forward(wa: WA) -> None:
    wa_id, now = new_wa_id(), int(time.time())
    await wa.post(text_payload(wa_id, "recent", at=now))
    await wa.post(text_payload(wa_id, "written yesterday, delivered late", at=now - 20 * 3600))
    async with wa.container.sessions() as session:
        contact = await session.get(WhatsAppContact, wa_id)
    assert int(contact.last_inbound_at.timestamp()) == now
