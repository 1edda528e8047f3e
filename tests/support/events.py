"""Helpers for event and metrics tests: Redis prefixes, a private Redis server, a scripted bot, /metrics parsing."""

from __future__ import annotations

import subprocess
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path
from typing import Any

import httpx
import redis
from fastapi import FastAPI
from prometheus_client.parser import text_string_to_metric_families

from connectors.rasa.outcome import rasa_turn
from conversation_api.bot import Bot, BotMessage, BotTurn, BotUnavailable
from conversation_api.events.envelope import Event
from conversation_api.settings import Settings
from tests.support.database import migrate, migrated_schema, sqlite_settings
from tests.support.processes import free_port

REDIS_URL = "redis://127.0.0.1:6379/0"


def unique_prefix() -> str:
    return f"test:{uuid.uuid4().hex[:12]}:events"


def delete_prefix(url: str, prefix: str) -> None:
    client = redis.Redis.from_url(url)
    try:
        keys = list(client.scan_iter(match=f"{prefix}:*", count=1000))
        if keys:
            client.delete(*keys)
    finally:
        client.close()


@contextmanager
def redis_server(port: int | None = None) -> Iterator[str]:
    """A throwaway redis-server of our own (so a test may stop and start it); yields its URL."""
    port = port or free_port()
    process = subprocess.Popen(
        ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"redis://127.0.0.1:{port}/0"
    client = redis.Redis.from_url(url)
    try:
        for _ in range(100):
            try:
                if client.ping():
                    break
            except redis.ConnectionError:
                time.sleep(0.05)
        yield url
    finally:
        client.close()
        process.terminate()
        process.wait(timeout=10)


async def refuse_orders(event: Event) -> None:
    """A consumer handler (`--handler tests.support.events:refuse_orders`) that fails on every order."""
    if event.type == "order.placed":
        raise RuntimeError(f"order {event.payload.get('total')} refused")


def slot(name: str, value: Any) -> dict[str, Any]:
    return {"event": "slot", "name": name, "value": value}


class ScriptedBot:
    """A bot port double whose turns report what the real actions report (the bot contract).

    "book" -> appointment.booked (success), "order fails" -> order.placed (failure),
    "human" -> handoff_requested, "rate N <comment>" -> feedback.received with rating N,
    "boom" -> the bot is unavailable. Anything else is a plain answer with intent "chitchat".
    """

    def __init__(self) -> None:
        self.paused: set[str] = set()

    async def send(self, *, sender_id: str, text: str, metadata: dict[str, Any]) -> BotTurn:
        if text.startswith("boom"):
            raise BotUnavailable("scripted failure")
        events: list[dict[str, Any]] = []
        intent = "chitchat"
        if text.startswith("book"):
            intent = "book_appointment"
            report = {"type": "appointment.booked", "workflow": "booking", "success": True, "data": {"id": 7}}
            events.append(slot("workflow_events", [report]))
        elif text.startswith("order fails"):
            intent = "place_order"
            report = {"type": "order.placed", "workflow": "order", "success": False, "data": {"error": "stock"}}
            events.append(slot("workflow_events", [report]))
        elif text.startswith("human"):
            intent = "request_human"
            events += [slot("handoff_requested", True), slot("handoff_reason", "customer_request")]
        elif text.startswith("rate"):
            intent = "give_feedback"
            _, rating, *comment = text.split()
            data = {"rating": int(rating), "comment": " ".join(comment) or None}
            report = {"type": "feedback.received", "workflow": "feedback", "success": True, "data": data}
            events.append(slot("workflow_events", [report]))
        return rasa_turn(
            messages=[BotMessage(text=f"re: {text}")],
            intent=intent,
            confidence=0.8,
            entities=[],
            events=events,
        )

    async def ping(self) -> None:
        return None

    async def pause(self, sender_id: str) -> None:
        self.paused.add(sender_id)

    async def resume(self, sender_id: str) -> None:
        self.paused.discard(sender_id)

    async def aclose(self) -> None:
        return None


def metric_samples(text: str) -> list[tuple[str, dict[str, str], float]]:
    return [
        (sample.name, dict(sample.labels), sample.value)
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    ]


def metric_value(text: str, name: str, **labels: str) -> float:
    """Sum of the samples called `name` whose labels include `labels`."""
    return sum(
        value
        for sample_name, sample_labels, value in metric_samples(text)
        if sample_name == name and all(sample_labels.get(k) == v for k, v in labels.items())
    )


def metric_names(text: str) -> set[str]:
    """Every family and sample name in an exposition (families without samples included)."""
    names = set()
    for family in text_string_to_metric_families(text):
        names.add(family.name)
        if family.type == "counter":
            names.add(family.name + "_total")
        if family.type == "histogram":
            names |= {family.name + suffix for suffix in ("_bucket", "_sum", "_count")}
        names |= {sample.name for sample in family.samples}
    return names


@asynccontextmanager
async def app_client(settings: Settings, bot: Bot | None = None) -> AsyncIterator[tuple[FastAPI, httpx.AsyncClient]]:
    """`running_app` as a context manager, so a failing assertion still shuts the app down cleanly."""
    from tests.conftest import running_app

    apps = running_app(settings, bot=bot)
    try:
        yield await anext(apps)
    finally:
        await apps.aclose()


@contextmanager
def fresh_database(kind: str, directory: Path) -> Iterator[Settings]:
    """A migrated database of the test's own (a new PostgreSQL schema, or a SQLite file).

    The session-wide schema is shared with the end-to-end API server, whose relay
    publishes every outbox row it finds; tests that watch the outbox need their own.
    """
    if kind == "sqlite":
        settings = sqlite_settings(directory / "own.db")
        migrate(settings)
        yield settings
        return
    with migrated_schema() as settings:
        yield settings
