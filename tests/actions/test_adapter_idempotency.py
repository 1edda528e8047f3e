"""The ports' idempotency contract, against every adapter kind: SQL on SQLite and PostgreSQL, HTTP.

The concurrent tests hold the idempotency table against writers while the calls start,
so every call gets past its look-up (nothing stored yet) and they all meet at the claim:
the database, not the process, must let one through. The SQL calls alternate between
two `Database` objects, as two action-server processes would.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime
from datetime import time as clock
from typing import Any

import psycopg2
import pytest
from sqlalchemy import create_engine, func, inspect, select

from actions.adapters.sql_booking import SqlBookingService
from actions.adapters.sql_commerce import SqlCommerceService
from actions.adapters.sql_crm import SqlCrmService
from actions.adapters.sql_db import Database, customers, idempotency, metadata, orders
from actions.adapters.sql_db import feedback as feedback_table
from actions.adapters.sql_feedback import SqlFeedbackService
from actions.ports import SlotUnavailable
from tests.actions.conftest import PG_DSN, Family, day_for, unique

CALLERS = 4


@contextmanager
def claims_held(db: Database) -> Iterator[None]:
    """Writers to biz_idempotency wait while this is open; readers do not."""
    db.ensure_ready()
    if db.is_postgres:
        connection = psycopg2.connect(PG_DSN)
        with connection.cursor() as cursor:
            cursor.execute(f'SET search_path TO "{db.schema}"')
            cursor.execute("LOCK TABLE biz_idempotency IN SHARE MODE")  # blocks INSERT, not SELECT
        try:
            yield
        finally:
            connection.rollback()
            connection.close()
        return
    connection = sqlite3.connect(db.url.removeprefix("sqlite:///"), isolation_level=None)
    connection.execute("BEGIN IMMEDIATE")  # the write lock: the claims queue behind it
    try:
        yield
    finally:
        connection.execute("ROLLBACK")
        connection.close()


def twin(family: Family, business: Any) -> Family:
    """The same ports on a second Database (own engine, own in-process booking lock); HTTP: the same ones."""
    if family.name == "http":
        return family
    db = Database(family.db.url, schema=family.db.schema, business=business)
    return Family(
        family.name,
        SqlBookingService(db, business),
        SqlCommerceService(db),
        SqlCrmService(db),
        SqlFeedbackService(db),
        db,
    )


def concurrently(family: Family, business: Any, call: Callable[[Family], Any]) -> list[Any]:
    """`call` from CALLERS threads at once, half of them through the twin; their results in order."""
    other = twin(family, business)
    results: list[Any] = [None] * CALLERS
    errors: list[BaseException] = []

    def target(index: int) -> None:
        try:
            results[index] = call(family if index % 2 == 0 else other)
        except BaseException as exc:  # reported below, in the test's thread
            errors.append(exc)

    threads = [threading.Thread(target=target, args=(i,)) for i in range(CALLERS)]
    with claims_held(family.db):
        for thread in threads:
            thread.start()
        time.sleep(0.5)  # long enough for every caller to be waiting at its claim
    for thread in threads:
        thread.join(timeout=30)
    if other is not family:
        other.db.dispose()
    assert not errors, errors
    return results


def rows(db: Database, table: Any, customer: str) -> int:
    with db.begin() as connection:
        return connection.execute(
            select(func.count()).select_from(table).where(table.c.customer_id == customer)
        ).scalar_one()


def test_same_key_concurrently_books_once(family, business):
    customer, day = unique("race-book"), day_for(business, family, 10)
    start = datetime.combine(day, clock(10, 0), tzinfo=business.tz)
    key = unique("key")
    results = concurrently(
        family,
        business,
        lambda f: f.booking.book(customer_id=customer, service="haircut", start=start, idempotency_key=key),
    )
    assert len({r.id for r in results}) == 1 and len(set(results)) == 1
    assert [a.id for a in family.booking.upcoming(customer_id=customer)] == [results[0].id]


def test_same_key_concurrently_orders_once(family, business):
    customer, key = unique("race-order"), unique("key")
    before = next(p.stock for p in family.commerce.search(query="nail polish remover") if p.sku == "NP-004")
    family.commerce.add_to_cart(customer_id=customer, sku="NP-004", quantity=2)
    results = concurrently(
        family, business, lambda f: f.commerce.place_order(customer_id=customer, idempotency_key=key)
    )
    assert len({r.id for r in results}) == 1 and all(r == results[0] for r in results)
    assert rows(family.db, orders, customer) == 1
    after = next(p.stock for p in family.commerce.search(query="nail polish remover") if p.sku == "NP-004")
    assert after == before - 2


def test_same_key_concurrently_records_feedback_once(family, business):
    customer, key = unique("race-feedback"), unique("key")
    results = concurrently(
        family,
        business,
        lambda f: f.feedback.record(
            customer_id=customer, rating=5, comment="Great", conversation_id="conv-r", idempotency_key=key
        ),
    )
    assert len(set(results)) == 1
    assert rows(family.db, feedback_table, customer) == 1


def test_same_key_concurrently_updates_once(family, business):
    customer, key = unique("race-crm"), unique("key")
    family.crm.get_or_create(customer_id=customer)
    results = concurrently(
        family, business, lambda f: f.crm.update(customer_id=customer, email="race@example.com", idempotency_key=key)
    )
    assert len(set(results)) == 1
    family.crm.update(customer_id=customer, email="later@example.com")
    # The key is used up: a late repeat answers with the first result and leaves the later change.
    assert family.crm.update(customer_id=customer, email="race@example.com", idempotency_key=key) == results[0]
    assert family.crm.get(customer_id=customer).email == "later@example.com"


def test_a_refused_call_leaves_its_key_unused(family, business):
    customer, key, day = unique("refused"), unique("key"), day_for(business, family, 11)
    with pytest.raises(SlotUnavailable):  # 20:00 is after closing
        closed = datetime.combine(day, clock(20, 0), tzinfo=business.tz)
        family.booking.book(customer_id=customer, service="haircut", start=closed, idempotency_key=key)
    start = datetime.combine(day, clock(11, 0), tzinfo=business.tz)
    booked = family.booking.book(customer_id=customer, service="haircut", start=start, idempotency_key=key)
    assert booked.start == start


def test_a_key_belongs_to_one_operation(family, business):
    customer, key, day = unique("ops"), unique("key"), day_for(business, family, 12)
    start = datetime.combine(day, clock(12, 0), tzinfo=business.tz)
    booked = family.booking.book(customer_id=customer, service="haircut", start=start, idempotency_key=key)
    cancelled = family.booking.cancel(appointment_id=booked.id, customer_id=customer, idempotency_key=key)
    assert cancelled.status == "cancelled"  # not the booking handed back


def test_a_long_key_works(family, business):
    customer, key = unique("long"), unique("key") * 40
    first = family.feedback.record(
        customer_id=customer, rating=3, comment=None, conversation_id=None, idempotency_key=key
    )
    again = family.feedback.record(
        customer_id=customer, rating=3, comment=None, conversation_id=None, idempotency_key=key
    )
    assert first == again and rows(family.db, feedback_table, customer) == 1


def test_http_adapters_send_the_key_as_a_header(contract, business):
    from actions.adapters.http_client import JsonClient
    from actions.adapters.http_feedback import HttpFeedbackService

    HttpFeedbackService(JsonClient(contract.base)).record(
        customer_id=unique("hdr"), rating=4, comment=None, conversation_id=None, idempotency_key="conv-1:7:step"
    )
    assert contract.idempotency_keys[-1] == ("POST", "/feedback", "conv-1:7:step")


@pytest.mark.parametrize("kind", ["sqlite", "postgresql"])
def test_an_existing_database_gains_the_idempotency_table(kind, business, tmp_path):
    """A database the actions created before this table existed: create_all adds it, nothing is altered."""
    if kind == "sqlite":
        url, schema = f"sqlite:///{tmp_path}/old.db", None
        engine = create_engine(url)
    else:
        url, schema = PG_DSN.replace("postgresql://", "postgresql+psycopg2://", 1), unique("t_old").replace("-", "_")
        with psycopg2.connect(PG_DSN) as connection, connection.cursor() as cursor:
            cursor.execute(f'CREATE SCHEMA "{schema}"')
        engine = create_engine(url, connect_args={"options": f"-csearch_path={schema}"})
    old_tables = [t for t in metadata.sorted_tables if t is not idempotency]
    metadata.create_all(engine, tables=old_tables)
    with engine.begin() as connection:
        now = datetime(2024, 1, 1)
        connection.execute(customers.insert().values(id="old-1", created_at=now, updated_at=now))
    assert "biz_idempotency" not in inspect(engine).get_table_names()

    db = Database(url, schema=schema, business=business)
    try:
        crm = SqlCrmService(db)
        first = crm.update(customer_id="old-1", name="Old Customer", idempotency_key="k-old")
        assert crm.update(customer_id="old-1", name="Someone Else", idempotency_key="k-old") == first
        assert crm.get(customer_id="old-1").name == "Old Customer"
        assert "biz_idempotency" in inspect(engine).get_table_names()
    finally:
        db.dispose()
        engine.dispose()
        if kind == "postgresql":
            with psycopg2.connect(PG_DSN) as connection, connection.cursor() as cursor:
                cursor.execute(f'DROP SCHEMA "{schema}" CASCADE')
