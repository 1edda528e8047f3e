from __future__ import annotations

import asyncio
import inspect
import os
import uuid
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from typing import Any

import psycopg2
import pytest

os.environ.setdefault("RASA_TELEMETRY_ENABLED", "false")

from rasa_sdk.executor import CollectingDispatcher  # noqa: E402

from actions.adapters.http_booking import HttpBookingService  # noqa: E402
from actions.adapters.http_client import JsonClient  # noqa: E402
from actions.adapters.http_commerce import HttpCommerceService  # noqa: E402
from actions.adapters.http_crm import HttpCrmService  # noqa: E402
from actions.adapters.http_feedback import HttpFeedbackService  # noqa: E402
from actions.adapters.sql_booking import SqlBookingService  # noqa: E402
from actions.adapters.sql_commerce import SqlCommerceService  # noqa: E402
from actions.adapters.sql_crm import SqlCrmService  # noqa: E402
from actions.adapters.sql_db import Database  # noqa: E402
from actions.adapters.sql_feedback import SqlFeedbackService  # noqa: E402
from actions.business import Business, load_business  # noqa: E402
from tests.actions.contract_server import ContractServer  # noqa: E402
from tests.actions.fakes import FakeBooking, FakeCommerce, FakeCrm, FakeFeedback  # noqa: E402


@pytest.fixture(scope="session")
def business() -> Business:
    return load_business()


# --- real databases and the HTTP stand-in, one of each per test module ---------------
PG_DSN = os.environ.get("TEST_PG_DSN", "postgresql://postgres@127.0.0.1:5432/test")


@pytest.fixture(scope="module")
def pg_schema():
    schema = f"t_actions_{uuid.uuid4().hex[:10]}"
    try:
        connection = psycopg2.connect(PG_DSN)
    except psycopg2.OperationalError as exc:  # pragma: no cover - environment problem
        pytest.skip(f"PostgreSQL unavailable: {exc}")
    connection.autocommit = True
    connection.cursor().execute(f'CREATE SCHEMA "{schema}"')
    yield schema
    connection.cursor().execute(f'DROP SCHEMA "{schema}" CASCADE')
    connection.close()


@pytest.fixture(scope="module")
def pg_db(pg_schema, business):
    url = PG_DSN.replace("postgresql://", "postgresql+psycopg2://", 1)
    db = Database(url, schema=pg_schema, business=business)
    yield db
    db.dispose()


@pytest.fixture(scope="module")
def sqlite_db(tmp_path_factory, business):
    db = Database(f"sqlite:///{tmp_path_factory.mktemp('contract')}/biz.db", business=business)
    yield db
    db.dispose()


@pytest.fixture(scope="module")
def contract(sqlite_db, business):
    server = ContractServer(
        SqlBookingService(sqlite_db, business),
        SqlCommerceService(sqlite_db),
        SqlCrmService(sqlite_db),
        SqlFeedbackService(sqlite_db),
    )
    base = server.start()
    server.base = base
    yield server
    server.stop()


@dataclass
class Family:
    """The four ports of one adapter kind, and the database their rows end up in (to count them)."""

    name: str
    booking: Any
    commerce: Any
    crm: Any
    feedback: Any
    db: Database


@pytest.fixture(params=["sqlite", "postgresql", "http"])
def family(request, business) -> Family:
    """Real adapters: SQL on SQLite, SQL on PostgreSQL, HTTP against the contract server (SQLite behind it)."""
    if request.param == "http":
        server = request.getfixturevalue("contract")
        server.fail_with, server.delay = None, 0.0
        client = JsonClient(server.base, timeout=5.0)
        return Family(
            "http",
            HttpBookingService(client, tz=business.tz),
            HttpCommerceService(client),
            HttpCrmService(client),
            HttpFeedbackService(client),
            request.getfixturevalue("sqlite_db"),
        )
    db = request.getfixturevalue("sqlite_db" if request.param == "sqlite" else "pg_db")
    return Family(
        request.param,
        SqlBookingService(db, business),
        SqlCommerceService(db),
        SqlCrmService(db),
        SqlFeedbackService(db),
        db,
    )


@pytest.fixture
def booking(business: Business) -> FakeBooking:
    return FakeBooking(business)


@pytest.fixture
def commerce(business: Business) -> FakeCommerce:
    return FakeCommerce(business)


@pytest.fixture
def crm() -> FakeCrm:
    return FakeCrm()


@pytest.fixture
def feedback() -> FakeFeedback:
    return FakeFeedback()


@pytest.fixture
def dispatcher() -> CollectingDispatcher:
    return CollectingDispatcher()


@pytest.fixture
def open_day(business: Business) -> date:
    """A weekday at least two days ahead on which the salon is open."""
    day = business.now().date() + timedelta(days=2)
    while business.hours_on(day) is None or day.weekday() >= 5:
        day += timedelta(days=1)
    return day


@pytest.fixture
def closed_day(business: Business) -> date:
    day = business.now().date() + timedelta(days=1)
    while business.hours_on(day) is not None:
        day += timedelta(days=1)
    return day


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def far_open_day(business, offset: int):
    day = business.now().date() + timedelta(days=offset)
    while business.hours_on(day) is None or day.weekday() >= 5:
        day += timedelta(days=1)
    return day


def day_for(business: Business, family: Family, n: int) -> date:
    """The n-th test's day: open, a weekday, and not shared with another test or adapter kind on one database."""
    day, days = business.now().date() + timedelta(days=2), []
    while len(days) <= 2 * n + 1:
        if business.hours_on(day) is not None and day.weekday() < 5:
            days.append(day)
        day += timedelta(days=1)
    return days[2 * n + (family.name == "http")]


def at(business: Business, day: date, hour: int, minute: int = 0) -> datetime:
    return datetime.combine(day, time(hour, minute), tzinfo=business.tz)


@pytest.hookimpl(tryfirst=True)
def pytest_pyfunc_call(pyfuncitem):  # the Rasa venv has no pytest-asyncio: run coroutine tests here
    if inspect.iscoroutinefunction(pyfuncitem.obj):
        names = pyfuncitem._fixtureinfo.argnames
        asyncio.run(pyfuncitem.obj(**{name: pyfuncitem.funcargs[name] for name in names}))
        return True
    return None
