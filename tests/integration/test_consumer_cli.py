"""`python -m conversation_api.events consume` as its own process, on the real Redis and PostgreSQL."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from redis.asyncio import Redis

from conversation_api.db import create_engine, create_session_factory
from conversation_api.events.crm_sync import CustomerProfile
from conversation_api.events.envelope import Event
from conversation_api.events.redis_streams import RedisStreamsBus
from conversation_api.settings import Settings
from tests.support.events import REDIS_URL, delete_prefix, unique_prefix
from tests.support.processes import ROOT
from tests.support.whatsapp import wait_until


@pytest.fixture
def prefix() -> Iterator[str]:
    value = unique_prefix()
    yield value
    delete_prefix(REDIS_URL, value)


def cli_env(settings: Settings, prefix: str) -> dict[str, str]:
    return {
        **os.environ,
        "REDIS_URL": REDIS_URL,
        "EVENTS_STREAM_PREFIX": prefix,
        "DATABASE_URL": settings.database_url,
        "DATABASE_SCHEMA": settings.database_schema or "",
        "LOG_LEVEL": "WARNING",
    }


def cli(settings: Settings, prefix: str, *args: str) -> subprocess.Popen[str]:
    command = [sys.executable, "-m", "conversation_api.events", "consume", *args, "--block-ms", "200"]
    return subprocess.Popen(
        command, cwd=ROOT, env=cli_env(settings, prefix), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )


def run_cli(settings: Settings, prefix: str, *args: str) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "conversation_api.events", *args]
    return subprocess.run(command, cwd=ROOT, env=cli_env(settings, prefix), capture_output=True, text=True, timeout=60)


async def publish(prefix: str, events: list[Event]) -> None:
    bus = RedisStreamsBus(Redis.from_url(REDIS_URL), prefix=prefix)
    await bus.publish(events)
    await bus.aclose()


def stop(process: subprocess.Popen[str]) -> tuple[str, str]:
    process.terminate()
    return process.communicate(timeout=20)


async def test_the_print_handler_writes_each_subscribed_event_once(pg_settings: Settings, prefix: str) -> None:
    wanted = Event(type="order.placed", conversation_id="c1", user_id="u1", channel="api", payload={"total": 12})
    other = Event(type="message.received", conversation_id="c1", user_id="u1", channel="api", payload={})
    await publish(prefix, [wanted, other, wanted])  # the repeat is a redelivery of the same event
    process = cli(pg_settings, prefix, "--group", "printer", "--types", "order.placed")
    await asyncio.sleep(4)
    out, err = stop(process)
    lines = [json.loads(line) for line in out.splitlines()]
    assert [line["id"] for line in lines] == [wanted.id], err
    assert lines[0]["payload"] == {"total": 12} and lines[0]["type"] == "order.placed"


async def test_crm_sync_keeps_the_last_intent_and_the_contact_details(pg_settings: Settings, prefix: str) -> None:
    now = datetime.now(UTC)
    user = f"crm-{prefix.split(':')[1]}"

    def intent(name: str, at: datetime) -> Event:
        payload = {"intent": name, "confidence": 0.9, "entities": [], "message_id": 1}
        return Event(
            type="intent.detected",
            conversation_id="c9",
            user_id=user,
            channel="whatsapp",
            payload=payload,
            occurred_at=at,
        )

    contact = Event(
        type="contact.updated",
        conversation_id="c9",
        user_id=user,
        channel="whatsapp",
        payload={"workflow": "contact_update", "success": True, "source": "bot", "data": {"email": "a@b.c"}},
    )
    # The late "greet" happened before "book_appointment": it must not overwrite it.
    await publish(prefix, [intent("book_appointment", now), contact, intent("greet", now - timedelta(seconds=5))])
    process = cli(
        pg_settings,
        prefix,
        "--group",
        "crm-sync",
        "--types",
        "intent.detected,contact.updated",
        "--handler",
        "crm-sync",
    )
    engine = create_engine(pg_settings)
    try:
        deadline = time.monotonic() + 20
        profile = None
        while time.monotonic() < deadline:
            async with create_session_factory(engine)() as session:
                profile = await session.get(CustomerProfile, user)
            if profile is not None and profile.contact and profile.last_intent:
                await asyncio.sleep(1)  # let the third event land too
                async with create_session_factory(engine)() as session:
                    profile = await session.get(CustomerProfile, user)
                break
            await asyncio.sleep(0.2)
    finally:
        await engine.dispose()
        _, err = stop(process)
    assert profile is not None, err
    assert (profile.last_intent, profile.channel, profile.last_conversation_id) == (
        "book_appointment",
        "whatsapp",
        "c9",
    )
    assert profile.contact == {"email": "a@b.c"}


def test_the_cli_refuses_unknown_types_and_a_missing_redis() -> None:
    env = {**os.environ, "REDIS_URL": "", "EVENTS_REDIS_URL": ""}
    base = [sys.executable, "-m", "conversation_api.events", "consume", "--group", "g"]
    unknown = subprocess.run(
        [*base, "--types", "order.shipped"],
        cwd=ROOT,
        env={**env, "REDIS_URL": REDIS_URL},
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert unknown.returncode != 0 and "order.shipped" in unknown.stderr
    no_redis = subprocess.run(
        [*base, "--types", "order.placed"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=30
    )
    assert no_redis.returncode != 0 and "REDIS_URL" in no_redis.stderr


async def test_an_event_the_handler_fails_on_is_dead_lettered_listed_and_re_driven(
    pg_settings: Settings, prefix: str
) -> None:
    order = Event(type="order.placed", conversation_id="c1", user_id="u1", channel="api", payload={"total": 12})
    await publish(prefix, [order])
    # The "audit" group handles it; "billing" fails on it, and with --max-deliveries 1 gives up at once.
    audit = cli(pg_settings, prefix, "--group", "audit", "--types", "order.placed")
    billing = cli(
        pg_settings,
        prefix,
        "--group",
        "billing",
        "--types",
        "order.placed",
        "--handler",
        "tests.support.events:refuse_orders",
        "--max-deliveries",
        "1",
    )
    try:
        wait_until(lambda: run_cli(pg_settings, prefix, "dead").stdout, within=20, interval=0.2)
    finally:
        _, billing_err = stop(billing)
    assert "event dead-lettered group=billing" in billing_err

    listed = run_cli(pg_settings, prefix, "dead", "--group", "billing")
    [letter] = [json.loads(line) for line in listed.stdout.splitlines()]
    assert (letter["group"], letter["stream"], letter["deliveries"]) == ("billing", f"{prefix}:order.placed", 1)
    assert letter["error"] == "RuntimeError: order 12 refused"
    assert letter["event"]["id"] == order.id and letter["event"]["payload"] == {"total": 12}
    assert run_cli(pg_settings, prefix, "dead", "--group", "audit").stdout == ""

    # Billing's handler is fixed (here: the printing one); the re-driven event reaches billing, not audit again.
    again = run_cli(pg_settings, prefix, "redrive", "--group", "billing")
    assert again.returncode == 0, again.stderr
    assert again.stdout.split() == [letter["dead_id"], order.id]
    assert run_cli(pg_settings, prefix, "dead").stdout == ""
    fixed = cli(pg_settings, prefix, "--group", "billing", "--types", "order.placed")
    await asyncio.sleep(4)
    fixed_out, fixed_err = stop(fixed)
    audit_out, _ = stop(audit)
    assert [json.loads(line)["id"] for line in fixed_out.splitlines()] == [order.id], fixed_err
    assert [json.loads(line)["id"] for line in audit_out.splitlines()] == [order.id]  # once: the repeat is skipped
    assert run_cli(pg_settings, prefix, "redrive", "--group", "billing", "0-1").returncode == 1
