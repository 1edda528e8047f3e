from __future__ import annotations

import asyncio
import inspect
import os
from datetime import date, datetime, time, timedelta

import pytest

os.environ.setdefault("RASA_TELEMETRY_ENABLED", "false")

from rasa_sdk.executor import CollectingDispatcher  # noqa: E402

from actions.business import Business, load_business  # noqa: E402
from tests.actions.fakes import FakeBooking, FakeCommerce, FakeCrm, FakeFeedback  # noqa: E402


@pytest.fixture(scope="session")
def business() -> Business:
    return load_business()


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


def at(business: Business, day: date, hour: int, minute: int = 0) -> datetime:
    return datetime.combine(day, time(hour, minute), tzinfo=business.tz)


@pytest.hookimpl(tryfirst=True)
def pytest_pyfunc_call(pyfuncitem):  # the Rasa venv has no pytest-asyncio: run coroutine tests here
    if inspect.iscoroutinefunction(pyfuncitem.obj):
        names = pyfuncitem._fixtureinfo.argnames
        asyncio.run(pyfuncitem.obj(**{name: pyfuncitem.funcargs[name] for name in names}))
        return True
    return None
