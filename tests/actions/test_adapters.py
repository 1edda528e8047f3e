"""The SQL adapters against real PostgreSQL (a private schema), the HTTP adapters against a real
HTTP server implementing docs/business-services.openapi.yml. Both run the same port checks."""

from __future__ import annotations

import threading
import uuid
from datetime import datetime, time, timedelta

import pytest

from actions.adapters.http_booking import HttpBookingService
from actions.adapters.http_client import JsonClient
from actions.adapters.http_commerce import HttpCommerceService
from actions.adapters.http_crm import HttpCrmService
from actions.adapters.http_feedback import HttpFeedbackService
from actions.adapters.sql_booking import SqlBookingService
from actions.adapters.sql_commerce import SqlCommerceService
from actions.adapters.sql_crm import SqlCrmService
from actions.adapters.sql_db import Database
from actions.adapters.sql_feedback import SqlFeedbackService
from actions.ports import (
    BookingService,
    CommerceService,
    CrmService,
    EmptyCart,
    FeedbackService,
    InvalidState,
    NotFound,
    OutOfStock,
    ServiceUnavailable,
    SlotUnavailable,
)
from tests.actions.conftest import far_open_day, unique


@pytest.fixture(params=["sql", "http"])
def ports(request, business):
    """(booking, commerce, crm, feedback) of one adapter family."""
    if request.param == "sql":
        db = request.getfixturevalue("pg_db")
        return (SqlBookingService(db, business), SqlCommerceService(db), SqlCrmService(db), SqlFeedbackService(db))
    server = request.getfixturevalue("contract")
    server.fail_with, server.delay = None, 0.0
    client = JsonClient(server.base, timeout=2.0)
    return (
        HttpBookingService(client, tz=business.tz),
        HttpCommerceService(client),
        HttpCrmService(client),
        HttpFeedbackService(client),
    )


def test_adapters_satisfy_the_ports(ports):
    booking, commerce, crm, feedback = ports
    assert isinstance(booking, BookingService) and isinstance(commerce, CommerceService)
    assert isinstance(crm, CrmService) and isinstance(feedback, FeedbackService)


def test_booking_lifecycle(ports, business):
    booking = ports[0]
    customer = unique("cust")
    day = far_open_day(business, 10 + (uuid.uuid4().int % 20))
    start = datetime.combine(day, time(10, 0), tzinfo=business.tz)
    # Three staff can beard-trim or cut; book the barbers out at 10:00 for a beard trim.
    free_before = booking.free_slots(service="beard trim", day=day, limit=100)
    assert start in free_before
    first = booking.book(customer_id=customer, service="beard trim", start=start)
    assert first.start == start and first.service == "beard trim"
    second = booking.book(customer_id=customer, service="beard trim", start=start)
    assert {first.staff, second.staff} == {"Maria", "Tom"}
    with pytest.raises(SlotUnavailable):
        booking.book(customer_id=customer, service="beard trim", start=start)
    assert start not in booking.free_slots(service="beard trim", day=day, limit=100)
    with pytest.raises(SlotUnavailable):  # 20:00 is after closing
        booking.book(customer_id=customer, service="haircut", start=start.replace(hour=20))
    assert [a.id for a in booking.upcoming(customer_id=customer)] == [first.id, second.id]
    moved = booking.reschedule(appointment_id=first.id, customer_id=customer, start=start + timedelta(hours=2))
    assert moved.start == start + timedelta(hours=2)
    with pytest.raises(NotFound):
        booking.reschedule(appointment_id=first.id, customer_id="someone-else", start=start)
    cancelled = booking.cancel(appointment_id=second.id, customer_id=customer)
    assert cancelled.status == "cancelled"
    with pytest.raises(InvalidState):
        booking.cancel(appointment_id=second.id, customer_id=customer)
    assert [a.id for a in booking.upcoming(customer_id=customer)] == [first.id]


def test_closed_days_have_no_slots(ports, business):
    day = business.now().date() + timedelta(days=1)
    while business.hours_on(day) is not None:
        day += timedelta(days=1)
    assert ports[0].free_slots(service="haircut", day=day) == []


def test_shop_lifecycle(ports):
    commerce = ports[1]
    customer = unique("shopper")
    [shampoo] = [p for p in commerce.search(query="argan shampoo") if p.sku == "SH-001"]
    assert commerce.search(query="argan oil")[0].sku == "OI-001"  # a synonym
    assert {p.category for p in commerce.search(query="nail polish")} == {"nail polish"}
    assert commerce.search(query="lawnmower") == []
    with pytest.raises(EmptyCart):
        commerce.place_order(customer_id=customer)
    commerce.add_to_cart(customer_id=customer, sku="SH-001", quantity=2)
    cart = commerce.add_to_cart(customer_id=customer, sku="NP-001", quantity=1)
    assert cart.total == pytest.approx(32.5) and len(cart.lines) == 2
    with pytest.raises(OutOfStock):
        commerce.add_to_cart(customer_id=customer, sku="SH-001", quantity=10_000)
    order = commerce.place_order(customer_id=customer)
    assert order.id.startswith("ORD-") and order.total == pytest.approx(32.5) and order.status == "placed"
    assert commerce.get_cart(customer_id=customer).lines == []
    [after] = [p for p in commerce.search(query="argan shampoo") if p.sku == "SH-001"]
    assert after.stock == shampoo.stock - 2
    assert commerce.get_order(order_id=order.id, customer_id=customer).lines == order.lines
    assert commerce.last_order(customer_id=customer).id == order.id
    with pytest.raises(NotFound):
        commerce.get_order(order_id=order.id, customer_id="someone-else")
    cancelled = commerce.cancel_order(order_id=order.id, customer_id=customer)
    assert cancelled.status == "cancelled"
    [restored] = [p for p in commerce.search(query="argan shampoo") if p.sku == "SH-001"]
    assert restored.stock == shampoo.stock
    with pytest.raises(InvalidState):
        commerce.cancel_order(order_id=order.id, customer_id=customer)
    assert commerce.last_order(customer_id=unique("nobody")) is None


def test_crm_and_feedback(ports):
    crm, feedback = ports[2], ports[3]
    customer = unique("crm")
    assert crm.get(customer_id=customer) is None
    created = crm.get_or_create(customer_id=customer, channel="api")
    assert created.id == customer and created.name is None
    assert crm.get_or_create(customer_id=customer).id == customer  # idempotent
    updated = crm.update(customer_id=customer, name="Anna Smith", email="anna@example.com")
    assert (updated.name, updated.email) == ("Anna Smith", "anna@example.com")
    assert crm.get(customer_id=customer).email == "anna@example.com"
    record = feedback.record(customer_id=customer, rating=4, comment="Lovely", conversation_id="conv-1")
    assert record.rating == 4 and record.comment == "Lovely"


def test_whatsapp_customers_keep_their_number(ports):
    crm = ports[2]
    number = str(447700900000 + uuid.uuid4().int % 999)
    assert crm.get_or_create(customer_id=number, channel="whatsapp").phone == "+" + number


def test_stock_cannot_be_oversold_under_concurrency(pg_db, business):
    commerce = SqlCommerceService(pg_db)
    [gift] = [p for p in commerce.search(query="keratin hair mask") if p.sku == "MA-002"]
    buyers = [unique("rush") for _ in range(gift.stock + 3)]
    for buyer in buyers:
        commerce.add_to_cart(customer_id=buyer, sku="MA-002", quantity=1)
    results = []

    def buy(buyer):
        try:
            results.append(commerce.place_order(customer_id=buyer).id)
        except OutOfStock:
            results.append(None)

    threads = [threading.Thread(target=buy, args=(b,)) for b in buyers]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len([r for r in results if r]) == gift.stock
    [after] = [p for p in commerce.search(query="keratin hair mask") if p.sku == "MA-002"]
    assert after.stock == 0


@pytest.mark.parametrize("status", [500, 502, 503])
def test_http_5xx_is_service_unavailable(contract, business, status):
    contract.fail_with = status
    try:
        client = JsonClient(contract.base, timeout=2.0)
        with pytest.raises(ServiceUnavailable):
            HttpBookingService(client, tz=business.tz).upcoming(customer_id="x")
        with pytest.raises(ServiceUnavailable):
            HttpCommerceService(client).place_order(customer_id="x")
    finally:
        contract.fail_with = None


def test_http_timeout_is_service_unavailable(contract):
    contract.delay = 1.0
    try:
        with pytest.raises(ServiceUnavailable):
            HttpCrmService(JsonClient(contract.base, timeout=0.2)).get_or_create(customer_id="slow")
    finally:
        contract.delay = 0.0


def test_http_unreachable_is_service_unavailable():
    with pytest.raises(ServiceUnavailable):
        HttpFeedbackService(JsonClient("http://127.0.0.1:9", timeout=0.5)).record(
            customer_id="x", rating=5, comment=None, conversation_id=None
        )


def test_database_down_is_service_unavailable(business):
    db = Database("postgresql+psycopg2://postgres@127.0.0.1:1/none", business=business)
    with pytest.raises(ServiceUnavailable):
        SqlCrmService(db).get(customer_id="x")


def test_bootstrap_picks_adapters_from_settings(monkeypatch, tmp_path):
    from actions import bootstrap

    monkeypatch.setenv("DATABASE_URL", f"sqlite+aiosqlite:///{tmp_path}/x.db")
    monkeypatch.setenv("CRM_SERVICE_URL", "http://crm.internal:8080")
    monkeypatch.delenv("BOOKING_SERVICE_URL", raising=False)
    bootstrap.reset()
    try:
        assert type(bootstrap.crm()).__name__ == "HttpCrmService"
        assert type(bootstrap.booking()).__name__ == "SqlBookingService"
        assert bootstrap.database().url == f"sqlite:///{tmp_path}/x.db"
    finally:
        bootstrap.reset()
