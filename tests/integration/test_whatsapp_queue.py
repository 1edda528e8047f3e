"""The WhatsApp queues that end: contacts under concurrent first deliveries, leases, attempts, dead rows, re-drive.

Runs on the real PostgreSQL (and SQLite where the behaviour is not PostgreSQL's own) with the fake Graph API.
"""

from __future__ import annotations

import asyncio

import orjson
from sqlalchemy import func, select

from connectors.whatsapp.models import WhatsAppContact, WhatsAppInbound
from connectors.whatsapp.payloads import parse_notification
from connectors.whatsapp.store import store_notification, user_id_for
from conversation_api.db import create_engine, create_session_factory
from conversation_api.settings import Settings
from tests.support.whatsapp import new_wa_id, new_wamid, text_payload


async def test_concurrent_first_deliveries_of_new_customers_merge_into_one_contact(db_settings: Settings) -> None:
    # Meta redelivers a new customer's first message while the first delivery is still being stored.
    # Each customer's deliveries start together on their own connections, so the two unique
    # indexes of whatsapp_contact (wa_id, user_id) see concurrent inserts of the same contact.
    engine = create_engine(db_settings)
    sessions = create_session_factory(engine)
    customers = [(new_wa_id(), new_wamid()) for _ in range(12)]
    deliveries = 6

    async def deliver(wa_id: str, wamid: str, start: asyncio.Event) -> int:
        notification = parse_notification(orjson.dumps(text_payload(wa_id, "first ever", wamid=wamid)))
        await start.wait()
        async with sessions() as session, session.begin():
            result = await store_notification(session=session, notification=notification)
        return len(result.new_messages)

    try:
        for wa_id, wamid in customers:
            start = asyncio.Event()
            tasks = [asyncio.create_task(deliver(wa_id, wamid, start)) for _ in range(deliveries)]
            await asyncio.sleep(0.05)  # every delivery has its connection and waits at the line
            start.set()
            new = await asyncio.gather(*tasks)
            assert sorted(new) == [0] * (deliveries - 1) + [1]
        async with sessions() as session:
            ids = [wa_id for wa_id, _ in customers]
            contacts = (await session.scalars(select(WhatsAppContact).where(WhatsAppContact.wa_id.in_(ids)))).all()
            queued = await session.scalar(
                select(func.count()).where(WhatsAppInbound.wamid.in_([wamid for _, wamid in customers]))
            )
        assert sorted((c.wa_id, c.user_id, c.profile_name) for c in contacts) == sorted(
            (wa_id, user_id_for(wa_id), "Maria Lopez") for wa_id in ids
        )
        assert queued == len(customers)
    finally:
        await engine.dispose()
