"""Replayed turns: each side-effecting action run twice with the same message id does its work once.

The API sends a retried or re-driven message to Rasa with the id it stored it under
(`metadata["message_id"]`); the actions turn that into idempotency keys. These tests
run the actions against the real adapters (SQL on SQLite and PostgreSQL, HTTP against
the contract server), so what is checked is what the customer would get: one booking,
one order, one feedback row, and the first reply again.
"""

from __future__ import annotations

import itertools
from datetime import datetime, time
from typing import Any

from rasa_sdk.executor import CollectingDispatcher
from sqlalchemy import func, select

from actions.adapters.sql_db import feedback as feedback_table
from actions.adapters.sql_db import orders
from actions.booking import ActionBookAppointment, ActionCancelAppointment, ActionRescheduleAppointment
from actions.commerce import ActionAddToCart, ActionCancelOrder, ActionPlaceOrder
from actions.common import idempotency_key, turn_key
from actions.crm import ActionUpdateContact
from actions.feedback import ActionSubmitFeedback
from tests.actions.conftest import Family, day_for, unique
from tests.actions.fakes import make_tracker, workflow

_message_ids = itertools.count(1000)


def new_message_id() -> int:
    return next(_message_ids)


async def run(action: Any, tracker: Any) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """One turn: (what the customer is told, the events returned)."""
    dispatcher = CollectingDispatcher()
    events = await action.run(dispatcher, tracker, {})
    return dispatcher.messages, events


def count(db: Any, table: Any, customer: str) -> int:
    with db.begin() as connection:
        return connection.execute(
            select(func.count()).select_from(table).where(table.c.customer_id == customer)
        ).scalar_one()


def stock(family: Family, sku: str, query: str) -> int:
    return next(p.stock for p in family.commerce.search(query=query) if p.sku == sku)


def test_turn_key_is_the_latest_messages_id_only():
    assert turn_key(make_tracker(message_id=42, sender_id="conv-9")) == "conv-9:42"
    assert turn_key(make_tracker(message_id="42", sender_id="conv-9")) == "conv-9:42"
    assert idempotency_key(make_tracker(message_id=42), "action_x") == "conv-1:42:action_x"
    assert turn_key(make_tracker()) is None  # rasa shell: no id, no deduplication
    assert idempotency_key(make_tracker(), "action_x") is None
    # The session's first message must not make every later turn look like its replay.
    started = make_tracker(slots={"session_started_metadata": {"user_id": "u", "message_id": 1}}, user_id=None)
    assert turn_key(started) is None


async def test_booking_replayed_books_once(family, business):
    customer, day = unique("book"), day_for(business, family, 0)
    slots = {"service": "beard trim", "date": day.isoformat(), "time": "10:00", "person_name": "Anna Smith"}
    action = ActionBookAppointment(booking=family.booking, crm=family.crm, business=business)
    tracker = lambda message_id: make_tracker(slots=slots, user_id=customer, message_id=message_id)  # noqa: E731
    first_id = new_message_id()

    first = await run(action, tracker(first_id))
    replay = await run(action, tracker(first_id))

    assert workflow(first[1])["success"] is True
    assert replay == first  # the same reference, staff and time in the same words
    assert [a.id for a in family.booking.upcoming(customer_id=customer)] == [
        workflow(first[1])["data"]["appointment_id"]
    ]
    assert family.crm.get(customer_id=customer).name == "Anna Smith"

    other = await run(action, tracker(new_message_id()))  # a new message asking for the same: a second booking
    assert workflow(other[1])["success"] is True
    assert len(family.booking.upcoming(customer_id=customer)) == 2
    assert workflow(other[1])["data"]["appointment_id"] != workflow(first[1])["data"]["appointment_id"]


async def test_booking_without_a_message_id_is_not_deduplicated(family, business):
    customer, day = unique("shell"), day_for(business, family, 1)
    slots = {"service": "beard trim", "date": day.isoformat(), "time": "11:00"}
    action = ActionBookAppointment(booking=family.booking, crm=family.crm, business=business)
    for _ in range(2):
        await run(action, make_tracker(slots=slots, user_id=customer))
    assert len(family.booking.upcoming(customer_id=customer)) == 2


async def test_reschedule_replayed_after_a_later_move_changes_nothing(family, business):
    customer, day = unique("move"), day_for(business, family, 2)
    booked = family.booking.book(
        customer_id=customer, service="haircut", start=datetime.combine(day, time(10, 0), tzinfo=business.tz)
    )
    action = ActionRescheduleAppointment(booking=family.booking, business=business)

    def tracker(message_id: int, hour: str) -> Any:
        slots = {"appointment_id": booked.id, "date": day.isoformat(), "time": hour}
        return make_tracker(slots=slots, user_id=customer, message_id=message_id)

    to_one = new_message_id()
    first = await run(action, tracker(to_one, "13:00"))
    await run(action, tracker(new_message_id(), "15:00"))  # the customer moves it again
    replay = await run(action, tracker(to_one, "13:00"))  # the first request arrives once more

    assert workflow(first[1])["success"] is True and replay == first
    [appointment] = family.booking.upcoming(customer_id=customer)
    assert appointment.start.hour == 15  # the later move stands


async def test_cancel_appointment_replayed_confirms_again(family, business):
    customer, day = unique("cancel"), day_for(business, family, 3)
    booked = family.booking.book(
        customer_id=customer, service="haircut", start=datetime.combine(day, time(12, 0), tzinfo=business.tz)
    )
    action = ActionCancelAppointment(booking=family.booking, business=business)
    tracker = lambda message_id: make_tracker(  # noqa: E731
        slots={"appointment_id": booked.id}, user_id=customer, message_id=message_id
    )
    message_id = new_message_id()

    first = await run(action, tracker(message_id))
    replay = await run(action, tracker(message_id))
    again = await run(action, tracker(new_message_id()))  # a new message: really asked again, and refused

    assert workflow(first[1])["success"] is True and replay == first
    assert workflow(again[1])["success"] is False and workflow(again[1])["data"]["reason"] == "invalid_state"
    assert family.booking.upcoming(customer_id=customer) == []


async def test_place_order_replayed_orders_once(family, business):
    customer = unique("order")
    before = stock(family, "NP-002", "nude nail polish")
    family.commerce.add_to_cart(customer_id=customer, sku="NP-002", quantity=2)
    action = ActionPlaceOrder(commerce=family.commerce, crm=family.crm, business=business)
    message_id = new_message_id()

    first = await run(action, make_tracker(user_id=customer, message_id=message_id))
    replay = await run(action, make_tracker(user_id=customer, message_id=message_id))

    assert workflow(first[1])["success"] is True and replay == first  # not "your cart is empty"
    assert count(family.db, orders, customer) == 1
    assert stock(family, "NP-002", "nude nail polish") == before - 2

    family.commerce.add_to_cart(customer_id=customer, sku="NP-002", quantity=1)
    other = await run(action, make_tracker(user_id=customer, message_id=new_message_id()))
    assert workflow(other[1])["data"]["order_id"] != workflow(first[1])["data"]["order_id"]
    assert count(family.db, orders, customer) == 2
    assert stock(family, "NP-002", "nude nail polish") == before - 3


async def test_cancel_order_replayed_puts_stock_back_once(family, business):
    customer = unique("unorder")
    before = stock(family, "NP-003", "gel top coat")
    family.commerce.add_to_cart(customer_id=customer, sku="NP-003", quantity=3)
    order = family.commerce.place_order(customer_id=customer)
    action = ActionCancelOrder(commerce=family.commerce, business=business)
    tracker = lambda message_id: make_tracker(  # noqa: E731
        slots={"order_id": order.id}, user_id=customer, message_id=message_id
    )
    message_id = new_message_id()

    first = await run(action, tracker(message_id))
    replay = await run(action, tracker(message_id))
    again = await run(action, tracker(new_message_id()))

    assert workflow(first[1])["success"] is True and replay == first
    assert workflow(again[1])["success"] is False
    assert stock(family, "NP-003", "gel top coat") == before


async def test_add_to_cart_replayed_adds_once(family, business):
    customer = unique("cart")
    action = ActionAddToCart(commerce=family.commerce, crm=family.crm, business=business)
    entities = {"product": "volume shampoo", "quantity": "2"}
    message_id = new_message_id()

    first = await run(action, make_tracker(entities=entities, user_id=customer, message_id=message_id))
    replay = await run(action, make_tracker(entities=entities, user_id=customer, message_id=message_id))
    assert replay == first
    assert [line.quantity for line in family.commerce.get_cart(customer_id=customer).lines] == [2]

    await run(action, make_tracker(entities=entities, user_id=customer, message_id=new_message_id()))
    assert [line.quantity for line in family.commerce.get_cart(customer_id=customer).lines] == [4]


async def test_contact_update_replayed_after_a_later_change_keeps_the_later_one(family, business):
    customer = unique("contact")
    family.crm.get_or_create(customer_id=customer, channel="api")
    action = ActionUpdateContact(crm=family.crm, business=business)

    def tracker(message_id: int, email: str) -> Any:
        return make_tracker(f"my email is {email}", entities={"email": email}, user_id=customer, message_id=message_id)

    first_id = new_message_id()
    first = await run(action, tracker(first_id, "old@example.com"))
    await run(action, tracker(new_message_id(), "new@example.com"))
    replay = await run(action, tracker(first_id, "old@example.com"))

    assert workflow(first[1])["success"] is True and replay == first
    assert family.crm.get(customer_id=customer).email == "new@example.com"


async def test_feedback_replayed_is_recorded_once(family, business):
    customer = unique("rating")
    action = ActionSubmitFeedback(feedback=family.feedback, crm=family.crm)
    slots = {"rating": "4", "feedback_comment": "Lovely"}
    message_id = new_message_id()

    first = await run(action, make_tracker(slots=slots, user_id=customer, message_id=message_id))
    replay = await run(action, make_tracker(slots=slots, user_id=customer, message_id=message_id))
    assert workflow(first[1])["success"] is True and replay == first  # the same feedback id
    assert count(family.db, feedback_table, customer) == 1

    await run(action, make_tracker(slots=slots, user_id=customer, message_id=new_message_id()))
    assert count(family.db, feedback_table, customer) == 2
