"""Several business phone numbers: replies go out from the number the customer wrote to, and a
notification for a number we do not serve is acknowledged, counted and not stored.

Runs on PostgreSQL and SQLite against the local Graph API stand-in, with a fake bot.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
from sqlalchemy import select

from connectors.whatsapp.models import WhatsAppConsent, WhatsAppContact, WhatsAppStatus
from conversation_api.conversations import service
from conversation_api.conversations.models import Sender
from conversation_api.settings import Settings
from tests.integration.test_whatsapp_webhook import WA, _async, _len, metric, start_wa
from tests.support.fake_graph import PHONE_NUMBER_ID, SECOND_PHONE_NUMBER_ID, FakeGraph
from tests.support.whatsapp import eventually, fixture, new_wa_id, new_wamid, preferences_payload, status_payload

UNCONFIGURED = "109999999999999"


@pytest.fixture
async def wa(db_settings: Settings, fake_graph: FakeGraph) -> AsyncIterator[WA]:
    numbers = f"{PHONE_NUMBER_ID}=Main salon, {SECOND_PHONE_NUMBER_ID}=Downtown"
    async for connected in start_wa(db_settings, fake_graph, whatsapp_phone_number_id=numbers):
        yield connected


def text_to(number: str, wa_id: str, text: str, wamid: str | None = None) -> dict:
    return fixture("text", WA_ID=wa_id, WAMID=wamid or new_wamid(), TEXT=text, PHONE_NUMBER_ID=number)


def sent_from(wa: WA, wa_id: str) -> list[str]:
    return [r.phone_number_id for r in wa.graph.attempts(wa_id) if r.answer == 200]


async def test_replies_go_out_from_the_number_the_customer_wrote_to(wa: WA) -> None:
    wa_id, wamid = new_wa_id(), new_wamid()
    assert (await wa.post(text_to(SECOND_PHONE_NUMBER_ID, wa_id, "hi downtown", wamid))).status_code == 200
    await eventually(lambda: wa.done(wamid))
    outbound = await eventually(lambda: _len(wa.outbound(wa_id), 2))
    assert [o.phone_number_id for o in outbound] == [SECOND_PHONE_NUMBER_ID] * 2
    assert sent_from(wa, wa_id) == [SECOND_PHONE_NUMBER_ID] * 2
    # The read receipt goes to the number that received the message, too.
    [receipt] = [r for r in wa.graph.message_requests() if r.is_read_receipt and r.body["message_id"] == wamid]
    assert receipt.phone_number_id == SECOND_PHONE_NUMBER_ID
    async with wa.container.sessions() as session:
        assert (await session.get(WhatsAppContact, wa_id)).phone_number_id == SECOND_PHONE_NUMBER_ID

    # A CSR's reply (not an answer to one message) goes out from the number of the latest message.
    conversation = await wa.conversation(wa_id)
    async with wa.container.sessions() as session, session.begin():
        reply = await service.append_message(
            session=session, conversation=conversation, sender=Sender.csr, text="Sam from Downtown here."
        )
    await wa.container.channels.for_conversation(conversation).deliver(conversation=conversation, message=reply)
    assert sent_from(wa, wa_id)[-1] == SECOND_PHONE_NUMBER_ID

    # The same customer now writes to the main number: the answer comes from there.
    other = new_wamid()
    await wa.post(text_to(PHONE_NUMBER_ID, wa_id, "hi main", other))
    await eventually(lambda: wa.done(other))
    await eventually(lambda: _len(wa.outbound(wa_id), 5))
    assert sent_from(wa, wa_id)[-2:] == [PHONE_NUMBER_ID] * 2
    async with wa.container.sessions() as session:
        assert (await session.get(WhatsAppContact, wa_id)).phone_number_id == PHONE_NUMBER_ID


async def test_a_payload_for_an_unconfigured_number_is_acknowledged_counted_and_not_stored(wa: WA) -> None:
    wa_id, wamid = new_wa_id(), new_wamid()
    before = metric("whatsapp_unconfigured_number_total", phone_number_id=UNCONFIGURED, kind="message")
    response = await wa.post(text_to(UNCONFIGURED, wa_id, "is this the gym?", wamid))
    assert response.status_code == 200
    assert response.json() == {"status": "ok", "messages": 0, "duplicates": 0, "statuses": 0, "ignored": 1}
    status = status_payload(new_wamid(), "delivered", wa_id)
    status["entry"][0]["changes"][0]["value"]["metadata"]["phone_number_id"] = UNCONFIGURED
    assert (await wa.post(status)).json()["ignored"] == 1
    stop = preferences_payload(wa_id, "stop")
    stop["entry"][0]["changes"][0]["value"]["metadata"]["phone_number_id"] = UNCONFIGURED
    assert (await wa.post(stop)).json()["ignored"] == 1

    await asyncio.sleep(0.3)
    assert await wa.inbound(wamid) is None
    assert await wa.messages(wa_id) == []
    async with wa.container.sessions() as session:
        assert await session.get(WhatsAppContact, wa_id) is None
        assert (await session.scalars(select(WhatsAppStatus).where(WhatsAppStatus.recipient_id == wa_id))).all() == []
        assert await session.get(WhatsAppConsent, wa_id) is None
    assert wa.graph.attempts(wa_id) == [] and wa.graph.reads() == []
    assert metric("whatsapp_unconfigured_number_total", phone_number_id=UNCONFIGURED, kind="message") == before + 1
    assert metric("whatsapp_unconfigured_number_total", phone_number_id=UNCONFIGURED, kind="status") >= 1


async def test_in_a_batch_only_the_part_for_an_unconfigured_number_is_left_out(wa: WA) -> None:
    served, stranger = new_wa_id(), new_wa_id()
    kept, dropped = new_wamid(), new_wamid()
    batch = text_to(PHONE_NUMBER_ID, served, "book me in", kept)
    batch["entry"].append(text_to(UNCONFIGURED, stranger, "wrong number", dropped)["entry"][0])
    response = await wa.post(batch)
    assert response.json() == {"status": "ok", "messages": 1, "duplicates": 0, "statuses": 0, "ignored": 1}
    await eventually(lambda: wa.done(kept))
    await eventually(lambda: _async(len(wa.graph.sends(served)) == 2))
    assert await wa.inbound(dropped) is None and await wa.messages(stranger) == []
