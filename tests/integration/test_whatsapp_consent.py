"""The consent ledger: STOP / START (and configured keywords) recorded and confirmed in one reply,
Meta's `user_preferences` webhook and Graph error 131050 recorded, marketing templates refused
to an opted-out customer, utility ones by the separate setting, and every change auditable.

Against the Graph API stand-in, on PostgreSQL and SQLite, with a fake bot.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import httpx
import pytest
from sqlalchemy import select

from connectors.whatsapp.models import WhatsAppConsentEvent
from conversation_api.conversations.models import Sender
from conversation_api.settings import Settings
from tests.conftest import TokenFactory
from tests.integration.test_whatsapp_templates import REMINDER, Desk, start_desk
from tests.integration.test_whatsapp_webhook import _async, metric
from tests.support.fake_graph import FakeGraph
from tests.support.whatsapp import (
    button_payload,
    eventually,
    fixture,
    new_wa_id,
    new_wamid,
    preferences_payload,
    text_payload,
)

OPT_OUT_REPLY = "You're unsubscribed: we won't send you messages you didn't ask for. Reply START to subscribe again."
OPT_IN_REPLY = "You're subscribed again. Reply STOP at any time to unsubscribe."
OFFER = {"name": "spring_offer", "parameters": {"customer_name": "Maria", "discount": "20%"}}
UTILITY = {"name": "appointment_reminder", "parameters": REMINDER}


@pytest.fixture
async def desk(db_settings: Settings, fake_graph: FakeGraph, token: TokenFactory, tmp_path: Path):
    async for d in start_desk(db_settings, fake_graph, token, tmp_path, whatsapp_opt_out_keywords="BAJA, Arrêt"):
        yield d


async def template(desk: Desk, cid: str, body: dict) -> httpx.Response:
    return await desk.csr("POST", f"/conversations/{cid}/template", json=body)


async def ledger(desk: Desk, wa_id: str) -> dict:
    response = await desk.admin(f"/api/v1/whatsapp/consent/{wa_id}", role="csr")
    assert response.status_code == 200, response.text
    return response.json()


async def say(desk: Desk, wa_id: str, text: str) -> str:
    wamid = new_wamid()
    assert (await desk.wa.post(text_payload(wa_id, text, wamid=wamid))).status_code == 200
    await eventually(lambda: desk.wa.done(wamid))
    return wamid


async def test_stop_is_recorded_and_confirmed_once_marketing_refused_and_start_reverses_it(desk: Desk) -> None:
    wa_id = new_wa_id()
    cid = await desk.customer_writes(wa_id, "hi")
    bot_calls = len(desk.wa.bot.calls)

    stop = new_wamid()
    payload = text_payload(wa_id, " Stop. ", wamid=stop)
    assert (await desk.wa.post(payload)).status_code == 200
    await eventually(lambda: desk.wa.done(stop))
    assert (await desk.wa.post(payload)).json()["duplicates"] == 1  # Meta redelivers it
    await eventually(lambda: _async(OPT_OUT_REPLY in desk.wa.graph.texts(wa_id)))
    await asyncio.sleep(0.3)
    assert desk.wa.graph.texts(wa_id).count(OPT_OUT_REPLY) == 1  # confirmed in one reply, once
    assert len(desk.wa.bot.calls) == bot_calls  # the connector answered, not the bot
    stored = await desk.stored(wa_id)
    assert [(m.sender, m.text) for m in stored[-2:]] == [(Sender.user, " Stop. "), (Sender.bot, OPT_OUT_REPLY)]
    assert stored[-2].payload["consent"] == "opt_out" and stored[-1].reply_to == stored[-2].id

    audit = await ledger(desk, wa_id)
    assert (audit["opted_out"], audit["source"], audit["user_id"]) == ("all", "keyword", f"whatsapp:{wa_id}")
    [event] = audit["history"]
    assert (event["action"], event["scope"], event["source"], event["detail"], event["reference"]) == (
        "opt_out",
        "all",
        "keyword",
        " Stop. ",
        stop,
    )
    assert event["occurred_at"] and event["recorded_at"]

    delivery = await desk.delivery(cid)
    assert (delivery["opted_out"], delivery["opted_out_of"]) == (True, "all") and delivery["opted_out_at"]
    offered = {t["name"]: t for t in delivery["templates"] if t["language"] == "en_US"}
    assert offered["spring_offer"]["usable"] is False and "opted out" in offered["spring_offer"]["reason"]
    assert offered["appointment_reminder"]["usable"] is False  # WHATSAPP_OPT_OUT_COVERS_UTILITY (default)

    sent_before = len(desk.wa.graph.sends(wa_id))
    refused = await template(desk, cid, OFFER)
    assert (refused.status_code, refused.json()["code"]) == (409, "customer_opted_out")
    assert "marketing templates are not sent" in refused.json()["detail"]
    assert (await template(desk, cid, UTILITY)).json()["code"] == "customer_opted_out"
    assert len(desk.wa.graph.sends(wa_id)) == sent_before

    # The customer still writes to us: the bot answers as usual (they asked).
    await say(desk, wa_id, "what are your opening hours?")
    await eventually(lambda: _async("echo: what are your opening hours?" in desk.wa.graph.texts(wa_id)))

    await say(desk, wa_id, "START")
    await eventually(lambda: _async(OPT_IN_REPLY in desk.wa.graph.texts(wa_id)))
    audit = await ledger(desk, wa_id)
    assert audit["opted_out"] is None
    assert [(e["action"], e["source"]) for e in audit["history"]] == [("opt_in", "keyword"), ("opt_out", "keyword")]
    sent = await template(desk, cid, OFFER)
    assert sent.status_code == 201, sent.text
    assert (await desk.delivery(cid))["opted_out"] is False


async def test_configured_keywords_and_a_template_button_opt_out_but_a_sentence_goes_to_the_bot(desk: Desk) -> None:
    spanish, french, talker, tapper = new_wa_id(), new_wa_id(), new_wa_id(), new_wa_id()
    await say(desk, spanish, "baja")
    await say(desk, french, "ARRÊT!")
    await say(desk, talker, "please stop sending me the reminders")
    tap = new_wamid()
    await desk.wa.post(button_payload(tapper, "Stop promotions", "STOP", wamid=tap))  # the offer's own button
    await eventually(lambda: desk.wa.done(tap))
    assert (await ledger(desk, spanish))["opted_out"] == "all"
    assert (await ledger(desk, french))["opted_out"] == "all"
    assert (await ledger(desk, tapper))["history"][0]["detail"] == "Stop promotions"
    assert (await ledger(desk, talker))["opted_out"] is None
    talker_cid = (await desk.wa.conversation(talker)).id
    assert desk.wa.bot_texts(talker, talker_cid) == ["please stop sending me the reminders"]


async def test_utility_templates_follow_their_own_setting(
    db_settings: Settings, fake_graph: FakeGraph, token: TokenFactory, tmp_path: Path
) -> None:
    async for desk in start_desk(db_settings, fake_graph, token, tmp_path, whatsapp_opt_out_covers_utility=False):
        wa_id = new_wa_id()
        cid = await desk.customer_writes(wa_id)
        await say(desk, wa_id, "UNSUBSCRIBE")
        assert (await ledger(desk, wa_id))["opted_out"] == "all"
        assert (await template(desk, cid, OFFER)).json()["code"] == "customer_opted_out"
        reminder = await template(desk, cid, UTILITY)
        assert reminder.status_code == 201, reminder.text


async def test_error_131050_from_the_graph_api_records_an_opt_out_of_marketing(desk: Desk) -> None:
    wa_id = new_wa_id()
    cid = await desk.customer_writes(wa_id)
    desk.wa.graph.stopped_marketing.add(wa_id)  # the customer stopped marketing messages in WhatsApp
    before = metric("whatsapp_consent_changes_total", action="opt_out", source="graph_error")

    failed = await template(desk, cid, OFFER)
    assert (failed.status_code, failed.json()["code"]) == (503, "delivery_failed")
    row = (await desk.wa.outbound(wa_id))[-1]
    assert (row.status, row.error_code) == ("failed", 131050)
    assert len([r for r in desk.wa.graph.attempts(wa_id) if r.error_code == 131050]) == 1  # not retried

    audit = await ledger(desk, wa_id)
    assert (audit["opted_out"], audit["source"]) == ("marketing", "graph_error")
    assert "131050" in audit["history"][0]["detail"]
    assert metric("whatsapp_consent_changes_total", action="opt_out", source="graph_error") == before + 1

    # Now refused before it reaches Meta; a utility template still goes (Meta's stop covers marketing only).
    attempts = len(desk.wa.graph.attempts(wa_id))
    assert (await template(desk, cid, OFFER)).json()["code"] == "customer_opted_out"
    assert len(desk.wa.graph.attempts(wa_id)) == attempts
    assert (await template(desk, cid, UTILITY)).status_code == 201


async def test_a_failed_status_with_131050_records_an_opt_out_once(desk: Desk) -> None:
    wa_id, wamid = new_wa_id(), new_wamid()
    status = fixture("status_failed_131050", WAMID=wamid, WA_ID=wa_id)
    for _ in range(2):
        assert (await desk.wa.post(status)).status_code == 200
    audit = await ledger(desk, wa_id)
    assert audit["opted_out"] == "marketing"
    assert [(e["source"], e["reference"]) for e in audit["history"]] == [("graph_error", f"status:{wamid}")]


async def test_the_user_preferences_webhook_stops_and_resumes_marketing(desk: Desk) -> None:
    wa_id = new_wa_id()
    cid = await desk.customer_writes(wa_id)
    now = int(time.time())
    stop = preferences_payload(wa_id, "stop", at=now)
    for _ in range(2):  # redelivered: one ledger entry
        assert (await desk.wa.post(stop)).status_code == 200
    audit = await ledger(desk, wa_id)
    assert (audit["opted_out"], audit["source"]) == ("marketing", "user_preferences")
    assert audit["history"][0]["detail"] == "User requested to stop marketing messages"
    assert (await template(desk, cid, OFFER)).json()["code"] == "customer_opted_out"
    assert (await template(desk, cid, UTILITY)).status_code == 201  # marketing only

    # An older "resume" delivered late is in the ledger but does not undo the newer stop.
    await desk.wa.post(preferences_payload(wa_id, "resume", at=now - 3600))
    audit = await ledger(desk, wa_id)
    assert audit["opted_out"] == "marketing" and len(audit["history"]) == 2
    await desk.wa.post(preferences_payload(wa_id, "resume", at=now + 60))
    assert (await ledger(desk, wa_id))["opted_out"] is None
    assert (await template(desk, cid, OFFER)).status_code == 201

    async with desk.wa.container.sessions() as session:
        rows = (await session.scalars(select(WhatsAppConsentEvent).where(WhatsAppConsentEvent.wa_id == wa_id))).all()
    assert sorted((r.action, r.source) for r in rows) == [
        ("opt_in", "user_preferences"),
        ("opt_in", "user_preferences"),
        ("opt_out", "user_preferences"),
    ]


async def test_the_consent_view_is_for_staff(desk: Desk) -> None:
    response = await desk.admin(f"/api/v1/whatsapp/consent/{new_wa_id()}", role="client")
    assert response.status_code == 403
    unknown = await ledger(desk, new_wa_id())
    assert (unknown["opted_out"], unknown["history"]) == (None, [])
