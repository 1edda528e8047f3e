"""Message templates and the 24-hour customer service window, end to end against the Graph API stand-in.

A CSR's free text outside the window is refused (409, nothing stored or sent); a template
goes out in Meta's documented shape at any time; Meta's template status and quality
notifications are stored and shown to admins, and a paused template is not offered.
Runs on PostgreSQL and SQLite, with a fake bot.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path

import httpx
import pytest
from sqlalchemy import select, update

from connectors.whatsapp.models import WhatsAppContact, WhatsAppTemplateEvent
from connectors.whatsapp.templates import TemplateRegistryError
from conversation_api.conversations.models import Message
from conversation_api.db import utcnow
from conversation_api.handoff import service as handoff
from conversation_api.settings import Settings
from tests.conftest import TokenFactory, auth, running_app
from tests.integration.test_whatsapp_webhook import WA, _async, _len, start_wa
from tests.support.fake_graph import PHONE_NUMBER_ID, FakeGraph
from tests.support.fakes import FakeBot
from tests.support.whatsapp import (
    button_payload,
    eventually,
    new_wa_id,
    new_wamid,
    template_quality_payload,
    template_status_payload,
    text_payload,
)

TEMPLATES = """
templates:
  - name: appointment_reminder
    language: en_US
    category: utility
    body: "Hi {{1}}, this is a reminder of your appointment on {{2}} at {{3}}. Will you make it?"
    parameters: [customer_name, date, time]
    buttons:
      - {text: Confirm, payload: /affirm}
      - {text: Reschedule, payload: /reschedule_appointment}
      - {text: Cancel, payload: /cancel_appointment}
  - name: spring_offer
    language: en_US
    category: marketing
    body: "Hi {{1}}! {{2}} off every treatment this month."
    parameters: [customer_name, discount]
    buttons:
      - {text: Stop promotions, payload: STOP}
  - name: follow_up
    language: en_US
    category: utility
    body: "Hi {{1}}, about your request: {{2}}."
    parameters: [customer_name, topic]
  - name: follow_up
    language: es
    category: utility
    body: "Hola {{1}}, sobre tu consulta: {{2}}."
    parameters: [customer_name, topic]
  - name: not_in_whatsapp_manager
    language: en_US
    category: utility
    body: "Hello"
"""

REMINDER = {"customer_name": "Maria", "date": "Monday 8 December", "time": "10:30"}


def approve_all(graph: FakeGraph) -> None:
    """The templates WhatsApp Manager approved (all of the file's but `not_in_whatsapp_manager`)."""
    graph.approve("appointment_reminder", "en_US", "utility", parameters=3, quick_replies=3)
    graph.approve("spring_offer", "en_US", "marketing", parameters=2, quick_replies=1)
    graph.approve("follow_up", "en_US", "utility", parameters=2)
    graph.approve("follow_up", "es", "utility", parameters=2)


class Desk:
    """A WhatsApp app with the template file, the stand-in, and a CSR's and an admin's HTTP calls."""

    def __init__(self, wa: WA, token: TokenFactory) -> None:
        self.wa, self.token = wa, token

    async def csr(self, method: str, path: str, who: str = "csr-sam", role: str = "csr", **kw) -> httpx.Response:
        return await self.wa.http.request(method, f"/api/v1/csr{path}", headers=auth(self.token(who, role)), **kw)

    async def admin(self, path: str, role: str = "admin") -> httpx.Response:
        return await self.wa.http.get(path, headers=auth(self.token("admin-ann", role)))

    async def customer_writes(self, wa_id: str, text: str = "hello", *, hours_ago: float = 0) -> str:
        wamid = new_wamid()
        at = int(time.time() - hours_ago * 3600)
        assert (await self.wa.post(text_payload(wa_id, text, wamid=wamid, at=at))).status_code == 200
        await eventually(lambda: self.wa.done(wamid))
        return (await self.wa.conversation(wa_id)).id

    async def hand_to_csr(self, wa_id: str, who: str = "csr-sam") -> str:
        conversation = await self.wa.conversation(wa_id)
        async with self.wa.container.sessions() as session, session.begin():
            await handoff.request_human(
                session=session, conversation=conversation, reason="customer_request", actor="bot"
            )
        claimed = await self.csr("POST", f"/conversations/{conversation.id}/claim", who=who)
        assert claimed.status_code == 200, claimed.text
        return conversation.id

    async def close_window(self, wa_id: str, hours: float = 25) -> None:
        async with self.wa.container.sessions() as session, session.begin():
            await session.execute(
                update(WhatsAppContact)
                .where(WhatsAppContact.wa_id == wa_id)
                .values(last_inbound_at=utcnow() - timedelta(hours=hours))
            )

    async def delivery(self, cid: str) -> dict:
        response = await self.csr("GET", f"/conversations/{cid}")
        assert response.status_code == 200, response.text
        return response.json()["delivery"]

    async def stored(self, wa_id: str) -> list[Message]:
        return await self.wa.messages(wa_id)


async def start_desk(
    settings: Settings, graph: FakeGraph, token: TokenFactory, tmp_path: Path, **overrides
) -> AsyncIterator[Desk]:
    registry = tmp_path / "templates.yml"
    registry.write_text(TEMPLATES)
    approve_all(graph)
    numbers = f"{PHONE_NUMBER_ID}=Main salon"
    async for wa in start_wa(
        settings, graph, whatsapp_templates_file=str(registry), whatsapp_phone_number_id=numbers, **overrides
    ):
        yield Desk(wa, token)


@pytest.fixture
async def desk(db_settings: Settings, fake_graph: FakeGraph, token: TokenFactory, tmp_path: Path):
    async for d in start_desk(db_settings, fake_graph, token, tmp_path):
        yield d


# --- the window: free text in, 409 out ------------------------------------------------------------


async def test_a_csr_replies_in_the_window_and_gets_409_with_the_templates_outside_it(desk: Desk) -> None:
    wa_id = new_wa_id()
    await desk.customer_writes(wa_id, "can I talk to someone?")
    cid = await desk.hand_to_csr(wa_id)

    delivery = await desk.delivery(cid)
    assert delivery["free_text"] is True and delivery["sends_from"] == "Main salon"
    assert delivery["opted_out"] is False
    last = delivery["last_inbound_at"]
    assert delivery["window_closes_at"] > last
    offered = {(t["name"], t["language"]): t for t in delivery["templates"]}
    assert offered[("appointment_reminder", "en_US")]["parameters"] == ["customer_name", "date", "time"]
    assert offered[("appointment_reminder", "en_US")]["buttons"] == ["Confirm", "Reschedule", "Cancel"]
    assert offered[("spring_offer", "en_US")]["category"] == "marketing"
    assert all(t["usable"] for t in delivery["templates"])

    sent = await desk.csr("POST", f"/conversations/{cid}/messages", json={"message": "Hi, Sam here."})
    assert sent.status_code == 201, sent.text
    assert desk.wa.graph.texts(wa_id)[-1] == "Hi, Sam here."

    await desk.close_window(wa_id)
    delivery = await desk.delivery(cid)
    assert delivery["free_text"] is False
    stored_before, sent_before = len(await desk.stored(wa_id)), len(desk.wa.graph.sends(wa_id))
    refused = await desk.csr("POST", f"/conversations/{cid}/messages", json={"message": "Are you still there?"})
    assert refused.status_code == 409
    body = refused.json()
    assert body["code"] == "outside_service_window"
    assert "template" in body["detail"] and body["last_inbound_at"]
    assert "appointment_reminder" in body["templates"] and "not_in_whatsapp_manager" in body["templates"]
    await asyncio.sleep(0.2)
    assert len(await desk.stored(wa_id)) == stored_before  # nothing stored
    assert len(desk.wa.graph.sends(wa_id)) == sent_before  # nothing sent

    # A template goes out although the window is closed, in Meta's documented shape.
    template = await desk.csr(
        "POST",
        f"/conversations/{cid}/template",
        json={"name": "appointment_reminder", "language": "en_US", "parameters": REMINDER},
    )
    assert template.status_code == 201, template.text
    message = template.json()["message"]
    assert message["sender"] == "csr"
    assert (
        message["text"]
        == "Hi Maria, this is a reminder of your appointment on Monday 8 December at 10:30. Will you make it?"
    )
    assert message["payload"]["template"]["name"] == "appointment_reminder"
    assert message["payload"]["agent"] == "csr-sam"
    [request] = [r for r in desk.wa.graph.attempts(wa_id) if r.body["type"] == "template"]
    assert request.answer == 200 and request.phone_number_id == PHONE_NUMBER_ID
    assert request.body["template"] == {
        "name": "appointment_reminder",
        "language": {"code": "en_US"},
        "components": [
            {"type": "body", "parameters": [
                {"type": "text", "text": "Maria"},
                {"type": "text", "text": "Monday 8 December"},
                {"type": "text", "text": "10:30"},
            ]},
            {"type": "button", "sub_type": "quick_reply", "index": "0",
             "parameters": [{"type": "payload", "payload": "/affirm"}]},
            {"type": "button", "sub_type": "quick_reply", "index": "1",
             "parameters": [{"type": "payload", "payload": "/reschedule_appointment"}]},
            {"type": "button", "sub_type": "quick_reply", "index": "2",
             "parameters": [{"type": "payload", "payload": "/cancel_appointment"}]},
        ],
    }  # fmt: skip
    outbound = (await desk.wa.outbound(wa_id))[-1]
    assert (outbound.kind, outbound.status, outbound.message_id) == ("template", "accepted", message["id"])


async def test_bot_replies_outside_the_window_are_not_sent_but_a_template_reopens_the_conversation(
    desk: Desk,
) -> None:
    wa_id = new_wa_id()
    # Delivered late by Meta: the window had closed before we got it, so the bot's reply is not sent.
    cid = await desk.customer_writes(wa_id, "old question", hours_ago=25)
    rows = await eventually(lambda: _len(desk.wa.outbound(wa_id), 2))
    assert {(o.status, o.error_code) for o in rows} == {("failed", 131047)}
    assert desk.wa.graph.sends(wa_id) == []
    assert (await desk.delivery(cid))["free_text"] is False

    # The conversation is the bot's: a CSR may still send a template to it (no claim needed).
    sent = await desk.csr(
        "POST",
        f"/conversations/{cid}/template",
        json={"name": "follow_up", "language": "es", "parameters": {"customer_name": "Ana", "topic": "tu cita"}},
    )
    assert sent.status_code == 201, sent.text
    assert sent.json()["message"]["text"] == "Hola Ana, sobre tu consulta: tu cita."

    # The customer taps a template's quick reply: the bot gets its payload, and its reply goes out.
    tap = new_wamid()
    await desk.wa.post(button_payload(wa_id, "Reschedule", "/reschedule_appointment", wamid=tap))
    await eventually(lambda: desk.wa.done(tap))
    assert desk.wa.bot_texts(wa_id, cid)[-1] == "/reschedule_appointment"
    await eventually(lambda: _async("echo: /reschedule_appointment" in desk.wa.graph.texts(wa_id)))
    assert (await desk.delivery(cid))["free_text"] is True


# --- refusals, before anything is stored -----------------------------------------------------------


async def test_template_sends_that_cannot_go_are_refused_with_the_reason(desk: Desk) -> None:
    wa_id = new_wa_id()
    await desk.customer_writes(wa_id)
    cid = await desk.hand_to_csr(wa_id)
    stored_before = len(await desk.stored(wa_id))

    async def send(body: dict, who: str = "csr-sam") -> httpx.Response:
        return await desk.csr("POST", f"/conversations/{cid}/template", who=who, json=body)

    unknown = await send({"name": "black_friday", "parameters": {}})
    assert (unknown.status_code, unknown.json()["code"]) == (422, "template_unknown")
    assert "appointment_reminder" in unknown.json()["detail"]
    which = await send({"name": "follow_up", "parameters": {"customer_name": "A", "topic": "b"}})
    assert which.status_code == 422 and which.json()["languages"] == ["en_US", "es"]
    no_french = await send({"name": "follow_up", "language": "fr", "parameters": {}})
    assert no_french.status_code == 422 and "no fr version" in no_french.json()["detail"]

    missing = await send({"name": "appointment_reminder", "parameters": {"customer_name": "Maria"}})
    assert (missing.status_code, missing.json()["code"]) == (422, "template_parameters_invalid")
    assert missing.json()["problems"] == [
        "parameter 'date' is missing or empty",
        "parameter 'time' is missing or empty",
    ]
    assert missing.json()["parameters"] == ["customer_name", "date", "time"]
    newline = await send({"name": "appointment_reminder", "parameters": {**REMINDER, "date": "Monday\n8th"}})
    assert newline.status_code == 422 and "new line" in newline.json()["problems"][0]
    extra = await send({"name": "appointment_reminder", "parameters": {**REMINDER, "room": "2"}})
    assert extra.status_code == 422 and "unknown parameter(s) room" in extra.json()["problems"][0]

    other_csr = await send({"name": "appointment_reminder", "parameters": REMINDER}, who="csr-kim")
    assert (other_csr.status_code, other_csr.json()["code"]) == (409, "handoff_conflict")
    client = await desk.wa.http.post(
        f"/api/v1/csr/conversations/{cid}/template",
        headers=auth(desk.token("maria", "client")),
        json={"name": "appointment_reminder", "parameters": REMINDER},
    )
    assert client.status_code == 403

    assert len(await desk.stored(wa_id)) == stored_before
    assert [r for r in desk.wa.graph.attempts(wa_id) if r.body["type"] == "template"] == []


async def test_a_template_whatsapp_manager_does_not_know_is_stored_as_failed_with_metas_reason(desk: Desk) -> None:
    wa_id = new_wa_id()
    await desk.customer_writes(wa_id)
    cid = await desk.hand_to_csr(wa_id)
    failed = await desk.csr("POST", f"/conversations/{cid}/template", json={"name": "not_in_whatsapp_manager"})
    assert (failed.status_code, failed.json()["code"]) == (503, "delivery_failed")
    assert "Template name does not exist" in failed.json()["detail"]
    row = (await desk.wa.outbound(wa_id))[-1]
    assert (row.kind, row.status, row.error_code, row.message_id) == (
        "template",
        "failed",
        132001,
        failed.json()["message_id"],
    )


async def test_templates_are_for_whatsapp_conversations_only(desk: Desk) -> None:
    said = await desk.wa.http.post(
        "/api/v1/messages",
        headers=auth(desk.token("alice")),
        json={"conversation_id": "", "user_id": "alice", "message": "hi"},
    )
    cid = said.json()["conversation_id"]
    refused = await desk.csr("POST", f"/conversations/{cid}/template", json={"name": "follow_up"})
    assert (refused.status_code, refused.json()["code"]) == (409, "templates_not_supported")
    delivery = await desk.delivery(cid)
    assert delivery["channel"] == "api" and delivery["free_text"] is True and delivery["templates"] == []


# --- Meta's word on templates ----------------------------------------------------------------------


async def test_template_status_and_quality_webhooks_are_stored_shown_to_admins_and_obeyed(desk: Desk) -> None:
    wa_id = new_wa_id()
    await desk.customer_writes(wa_id)
    cid = await desk.hand_to_csr(wa_id)
    now = int(time.time())

    paused = template_status_payload("appointment_reminder", "PAUSED", reason="Low quality", at=now)
    for _ in range(2):  # Meta redelivers: stored once
        assert (await desk.wa.post(paused)).status_code == 200
    # An older notification arriving late does not undo the newer one.
    assert (
        await desk.wa.post(template_status_payload("appointment_reminder", "APPROVED", at=now - 60))
    ).status_code == 200
    assert (
        await desk.wa.post(template_quality_payload("appointment_reminder", "RED", "YELLOW", at=now))
    ).status_code == 200

    listed = await desk.admin("/api/v1/whatsapp/templates")
    assert listed.status_code == 200, listed.text
    by_key = {(t["name"], t["language"]): t for t in listed.json()["templates"]}
    reminder = by_key[("appointment_reminder", "en_US")]
    assert (reminder["status"], reminder["reason"], reminder["quality"], reminder["sendable"]) == (
        "PAUSED",
        "Low quality",
        "RED",
        False,
    )
    assert reminder["template_id"] == "806312974732579" and reminder["in_registry"] is True
    assert [(e["kind"], e["value"]) for e in reminder["events"]] == [
        ("status", "PAUSED"),
        ("quality", "RED"),
        ("status", "APPROVED"),
    ] or sorted((e["kind"], e["value"]) for e in reminder["events"]) == [
        ("quality", "RED"),
        ("status", "APPROVED"),
        ("status", "PAUSED"),
    ]
    assert by_key[("spring_offer", "en_US")]["status"] is None and by_key[("spring_offer", "en_US")]["sendable"]
    async with desk.wa.container.sessions() as session:
        events = (
            await session.scalars(
                select(WhatsAppTemplateEvent).where(WhatsAppTemplateEvent.name == "appointment_reminder")
            )
        ).all()
    assert len(events) == 3
    assert (await desk.admin("/api/v1/whatsapp/templates", role="csr")).status_code == 403

    offered = {t["name"]: t for t in (await desk.delivery(cid))["templates"] if t["language"] == "en_US"}
    assert offered["appointment_reminder"]["usable"] is False
    assert "PAUSED" in offered["appointment_reminder"]["reason"]
    refused = await desk.csr(
        "POST", f"/conversations/{cid}/template", json={"name": "appointment_reminder", "parameters": REMINDER}
    )
    assert (refused.status_code, refused.json()["code"]) == (409, "template_not_approved")
    assert "Low quality" in refused.json()["detail"]

    # Meta approves it again (a later notification): it goes out again.
    await desk.wa.post(template_status_payload("appointment_reminder", "APPROVED", at=now + 60))
    sent = await desk.csr(
        "POST", f"/conversations/{cid}/template", json={"name": "appointment_reminder", "parameters": REMINDER}
    )
    assert sent.status_code == 201, sent.text


async def test_a_wrong_template_file_stops_the_start_up_naming_each_mistake(
    db_settings: Settings, fake_graph: FakeGraph, tmp_path: Path
) -> None:
    broken = tmp_path / "templates.yml"
    broken.write_text(
        "templates:\n"
        "  - {name: reminder, language: en_US, category: reminders, body: 'Hi {{1}}', parameters: [name]}\n"
        "  - {name: offer, language: en_US, category: marketing, body: 'Hi {{2}}', parameters: [a, b]}\n"
    )
    from tests.support.whatsapp import whatsapp_settings

    settings = whatsapp_settings(db_settings, fake_graph, whatsapp_templates_file=str(broken))
    with pytest.raises(TemplateRegistryError) as refused:
        async for _ in running_app(settings, bot=FakeBot()):
            pass
    message = str(refused.value)
    assert str(broken) in message
    assert "templates[1] (reminder, en_US): `category` must be one of utility, marketing, authentication" in message
    assert (
        "templates[2] (offer, en_US): `body` placeholders must be numbered {{1}}, {{2}}… without gaps (found {{2}})"
        in message
    )
