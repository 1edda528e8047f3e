from __future__ import annotations

from datetime import date, time
from zoneinfo import ZoneInfo

import pytest

from actions.settings import ActionSettings, normalise_database_url
from actions.timeparse import parse_date, parse_time

TZ = ZoneInfo("Europe/London")
WEDNESDAY = date(2026, 11, 25)


@pytest.mark.parametrize(
    "text, expected",
    [
        ("tomorrow", date(2026, 11, 26)),
        ("tmrw", date(2026, 11, 26)),
        ("next Friday at 3pm", date(2026, 11, 27)),
        ("25/12", date(2026, 12, 25)),
        ("sat", date(2026, 11, 28)),
        ("next wednesday", date(2026, 12, 2)),
        ("2027-01-10", date(2027, 1, 10)),
        ("the 14th", date(2026, 12, 14)),
        ("3rd of december", date(2026, 12, 3)),
        ("in 3 days", date(2026, 11, 28)),
        ("24 dec at 10.30am", date(2026, 12, 24)),
        ("3pm", None),
        ("4", None),
        ("book a haircut", None),
    ],
)
def test_parse_date(text, expected):
    assert parse_date(text, tz=TZ, today=WEDNESDAY) == expected


@pytest.mark.parametrize(
    "text, expected",
    [
        ("3pm", time(15)),
        ("15:30", time(15, 30)),
        ("half past 2", time(14, 30)),
        ("at 4", time(16)),
        ("10am", time(10)),
        ("noon", time(12)),
        ("tomorrow 11:30", time(11, 30)),
        ("5 o'clock", time(17)),
        ("11", time(11)),
        ("2 shampoos", None),
        ("25/12", None),
    ],
)
def test_parse_time(text, expected):
    assert parse_time(text) == expected


def test_database_urls_are_normalised_to_sync_drivers():
    assert normalise_database_url("postgresql+psycopg://u@h/db") == "postgresql+psycopg2://u@h/db"
    assert normalise_database_url("postgres://u@h/db") == "postgresql+psycopg2://u@h/db"
    assert normalise_database_url("sqlite+aiosqlite:///./x.db") == "sqlite:///./x.db"
    settings = ActionSettings.from_env({"BOOKING_SERVICE_URL": " ", "CRM_SERVICE_URL": "http://crm"})
    assert settings.booking_service_url is None and settings.crm_service_url == "http://crm"


def test_services_resolve_by_synonym_and_longest_match(business):
    assert business.service("hair cut").name == "haircut"
    assert business.service("i need a beard trim").name == "beard trim"
    assert business.service("highlights").name == "hair colouring"
    assert business.service("tattoo") is None


def test_catalogue_has_enough_products(business):
    assert len(business.products) >= 20
    assert {s.name for s in business.services} >= {
        "haircut",
        "hair colouring",
        "beard trim",
        "manicure",
        "pedicure",
        "massage",
        "facial",
    }


def test_every_domain_action_is_registered_and_built_without_arguments():
    """rasa-sdk imports every module in actions/ and builds each action with no arguments."""
    from pathlib import Path

    import yaml
    from rasa_sdk.executor import ActionExecutor

    executor = ActionExecutor()
    executor.register_package("actions")
    domain = yaml.safe_load(Path("domain.yml").read_text())
    custom = {a for a in domain["actions"] if not a.startswith("utter_")}
    assert custom == set(executor.actions)
