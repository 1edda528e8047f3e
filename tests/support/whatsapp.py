"""WhatsApp test helpers: Meta-shaped payload fixtures, signing, settings and waiting for the worker."""

from __future__ import annotations

import asyncio
import itertools
import json
import time
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import orjson

from connectors.whatsapp.signature import sign
from conversation_api.settings import Settings
from tests.support.fake_graph import ACCESS_TOKEN, PHONE_NUMBER_ID, FakeGraph

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "whatsapp"
APP_SECRET = "test-whatsapp-app-secret"
VERIFY_TOKEN = "test-whatsapp-verify-token"
WEBHOOK = "/webhooks/whatsapp"

_numbers = itertools.count(1)


def new_wa_id() -> str:
    """A phone-number-like wa_id unique to this test run (the PostgreSQL schema is shared by a session)."""
    return f"44{uuid.uuid4().int % 10**9:09d}{next(_numbers) % 10}"


def new_wamid() -> str:
    return f"wamid.TEST{uuid.uuid4().hex.upper()}"


def _substitute(value: Any, values: dict[str, str]) -> Any:
    if isinstance(value, dict):
        return {k: _substitute(v, values) for k, v in value.items()}
    if isinstance(value, list):
        return [_substitute(v, values) for v in value]
    if isinstance(value, str):
        for key, replacement in values.items():
            value = value.replace("{{" + key + "}}", replacement)
    return value


def fixture(name: str, **values: str | int) -> dict[str, Any]:
    """A payload from tests/fixtures/whatsapp/<name>.json with its {{PLACEHOLDERS}} filled in.

    Defaults: a fresh WA_ID and WAMID, TIMESTAMP = now, PHONE_NUMBER_ID = the fake's, NAME, TEXT.
    """
    defaults: dict[str, str] = {
        "WA_ID": new_wa_id(),
        "WAMID": new_wamid(),
        "TIMESTAMP": str(int(time.time())),
        "PHONE_NUMBER_ID": PHONE_NUMBER_ID,
        "NAME": "Maria Lopez",
        "TEXT": "hello",
    }
    defaults.update({k: str(v) for k, v in values.items()})
    return _substitute(json.loads((FIXTURES / f"{name}.json").read_text()), defaults)


def text_payload(
    wa_id: str, text: str, *, wamid: str | None = None, name: str = "Maria Lopez", at: int | None = None
) -> dict[str, Any]:
    return fixture(
        "text", WA_ID=wa_id, WAMID=wamid or new_wamid(), TEXT=text, NAME=name, TIMESTAMP=at or int(time.time())
    )


def status_payload(wamid: str, status: str, wa_id: str, *, at: int | None = None) -> dict[str, Any]:
    return fixture(f"status_{status}", WAMID=wamid, WA_ID=wa_id, TIMESTAMP=at or int(time.time()))


def signed(payload: dict[str, Any] | bytes, secret: str = APP_SECRET) -> tuple[bytes, dict[str, str]]:
    """The raw body and headers Meta would send (orjson keeps non-ASCII as UTF-8, as Meta does)."""
    body = payload if isinstance(payload, bytes) else orjson.dumps(payload)
    return body, {"Content-Type": "application/json", "X-Hub-Signature-256": sign(body, secret)}


def whatsapp_settings(settings: Settings, graph: FakeGraph, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "whatsapp_verify_token": VERIFY_TOKEN,
        "whatsapp_app_secret": APP_SECRET,
        "whatsapp_access_token": ACCESS_TOKEN,
        "whatsapp_phone_number_id": PHONE_NUMBER_ID,
        "whatsapp_graph_url": graph.url,
        "whatsapp_backoff_initial_seconds": 0.05,
        "whatsapp_retry_base_seconds": 0.2,
        "whatsapp_retry_max_seconds": 1.0,
        "whatsapp_send_timeout": 2.0,
    }
    values.update(overrides)
    return settings.model_copy(update=values)


def whatsapp_env(graph: FakeGraph, **extra: str) -> dict[str, str]:
    """The same settings as environment variables, for an API server process."""
    return {
        "WHATSAPP_VERIFY_TOKEN": VERIFY_TOKEN,
        "WHATSAPP_APP_SECRET": APP_SECRET,
        "WHATSAPP_ACCESS_TOKEN": ACCESS_TOKEN,
        "WHATSAPP_PHONE_NUMBER_ID": PHONE_NUMBER_ID,
        "WHATSAPP_GRAPH_URL": graph.url,
        **extra,
    }


async def eventually(check: Callable[[], Awaitable[Any]], *, within: float = 10.0, interval: float = 0.05) -> Any:
    """Poll `check` until it returns something truthy; fail with its last value after `within` seconds."""
    deadline = time.monotonic() + within
    while True:
        value = await check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {within}s (last value: {value!r})")
        await asyncio.sleep(interval)


def wait_until(check: Callable[[], Any], *, within: float = 30.0, interval: float = 0.1) -> Any:
    """The synchronous `eventually`, for tests that drive a server over HTTP."""
    deadline = time.monotonic() + within
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {within}s (last value: {value!r})")
        time.sleep(interval)


def template_status_payload(
    template: str, event: str, *, language: str = "en_US", reason: str = "NONE", at: int | None = None
) -> dict[str, Any]:
    """A `message_template_status_update` notification (Meta sends the time and template id as numbers)."""
    payload = fixture(
        "template_status_update",
        TEMPLATE=template,
        LANGUAGE=language,
        EVENT=event,
        REASON=reason,
        CATEGORY="UTILITY",
        TEMPLATE_ID="806312974732579",
    )
    entry = payload["entry"][0]
    entry["time"] = at or int(time.time())
    entry["changes"][0]["value"]["message_template_id"] = 806312974732579
    return payload


def template_quality_payload(
    template: str, quality: str, previous: str = "GREEN", *, language: str = "en_US", at: int | None = None
) -> dict[str, Any]:
    payload = fixture(
        "template_quality_update",
        TEMPLATE=template,
        LANGUAGE=language,
        QUALITY=quality,
        PREVIOUS=previous,
        TEMPLATE_ID="806312974732579",
    )
    entry = payload["entry"][0]
    entry["time"] = at or int(time.time())
    entry["changes"][0]["value"]["message_template_id"] = 806312974732579
    return payload


def preferences_payload(wa_id: str, preference: str, *, at: int | None = None) -> dict[str, Any]:
    """A `user_preferences` notification: the customer stopped (`stop`) or resumed (`resume`) marketing messages."""
    detail = f"User requested to {preference} marketing messages"
    payload = fixture("user_preferences", WA_ID=wa_id, PREFERENCE=preference, DETAIL=detail)
    payload["entry"][0]["changes"][0]["value"]["user_preferences"][0]["timestamp"] = at or int(time.time())
    return payload


def button_payload(wa_id: str, text: str, payload: str, *, wamid: str | None = None) -> dict[str, Any]:
    """A tap on a template's quick-reply button (`type: button`)."""
    message = fixture("button", WA_ID=wa_id, WAMID=wamid or new_wamid())
    message["entry"][0]["changes"][0]["value"]["messages"][0]["button"] = {"payload": payload, "text": text}
    return message


# The appointment reminder template as the operator's registry file holds it (docs/whatsapp.md).
REMINDER_TEMPLATES = """
templates:
  - name: appointment_reminder
    language: en_US
    category: utility
    body: "Reminder: your {{1}} on {{2}} at {{3}}. Will you make it?"
    parameters: [service, date, time]
    buttons:
      - {text: Confirm, payload: /affirm}
      - {text: Reschedule, payload: /reschedule_appointment}
      - {text: Cancel, payload: /cancel_appointment}
"""


def reminder_graph() -> FakeGraph:
    """A started Graph stand-in on which Meta approved the reminder template."""
    fake = FakeGraph().start()
    fake.approve("appointment_reminder", "en_US", "utility", parameters=3, quick_replies=3)
    return fake


def write_reminder_templates(directory: Path) -> Path:
    path = directory / "templates.yml"
    path.write_text(REMINDER_TEMPLATES)
    return path
