"""Conversation review through the HTTP API in-process, on PostgreSQL and SQLite, with a scripted bot.

The bot here says exactly how sure it is, so each criterion (low confidence included,
which the real model rarely produces on cue) is driven on purpose; the real-Rasa
version of the queue is tests/e2e/test_review_e2e.py.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from connectors.rasa.outcome import rasa_turn
from conversation_api.bot import BotMessage, BotTurn
from conversation_api.metrics.instruments import set_review_backlog
from conversation_api.settings import Settings
from tests.conftest import TokenFactory, auth
from tests.support.events import app_client, fresh_database, metric_value
from tests.support.fakes import ScriptedBot


class UnsureBot(ScriptedBot):
    """The scripted bot, plus: "unsure …" → order_status at 0.41; "weather …" → out_of_scope;
    "mail me at …" → update_contact with the e-mail as an entity, sure of it."""

    async def send(self, *, sender_id: str, text: str, metadata: dict[str, Any]) -> BotTurn:
        if text.startswith("unsure"):
            self.calls.append({"sender_id": sender_id, "text": text, "metadata": metadata})
            return BotTurn(
                messages=[BotMessage(text="Let me check your order.")], intent="order_status", confidence=0.41
            )
        if text.startswith("weather"):
            self.calls.append({"sender_id": sender_id, "text": text, "metadata": metadata})
            return BotTurn(
                messages=[BotMessage(text="I can't help with that.")], intent="out_of_scope", confidence=0.93
            )
        if text.startswith("mail me at"):
            self.calls.append({"sender_id": sender_id, "text": text, "metadata": metadata})
            address = text.split()[-1]
            start = text.index(address)
            entity = {"entity": "email", "value": address, "start": start, "end": start + len(address)}
            return rasa_turn(
                messages=[BotMessage(text="Noted.")], intent="update_contact", confidence=0.95, entities=[entity]
            )
        return await super().send(sender_id=sender_id, text=text, metadata=metadata)


@dataclass
class Studio:
    app: FastAPI
    http: httpx.AsyncClient
    token: TokenFactory
    settings: Settings

    async def say(self, user: str, text: str, cid: str = "") -> dict:
        body = {"conversation_id": cid, "user_id": user, "message": text}
        response = await self.http.post("/api/v1/messages", headers=auth(self.token(user)), json=body)
        assert response.status_code == 200, response.text
        return response.json()

    async def as_(self, role: str, method: str, path: str, who: str | None = None, **kwargs: Any) -> httpx.Response:
        headers = auth(self.token(who or f"{role}-dana", role))
        return await self.http.request(method, f"/api/v1/review{path}", headers=headers, **kwargs)

    async def queue(self, **params: Any) -> dict:
        response = await self.as_("designer", "GET", "/queue", params=params)
        assert response.status_code == 200, response.text
        return response.json()

    async def queued(self, **params: Any) -> dict[str, list[str]]:
        """Text → reasons of every item in the queue (all pages)."""
        found: dict[str, list[str]] = {}
        before = None
        while True:
            page = await self.queue(**params, limit=100, **({"before": before} if before else {}))
            found |= {i["message"]["text"]: i["reasons"] for i in page["items"]}
            before = page["next_before"]
            if before is None:
                return found

    async def history(self, user: str, cid: str) -> list[dict]:
        response = await self.http.get(f"/api/v1/user/{user}/messages/{cid}", headers=auth(self.token(user)))
        return response.json()["messages"]

    async def message_id(self, user: str, cid: str, text: str) -> int:
        return next(m["id"] for m in await self.history(user, cid) if m["text"] == text and m["sender"] == "user")


@pytest.fixture(params=["postgresql", "sqlite"])
def own_settings(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Settings]:
    """A database of the test's own: the queue is asserted whole."""
    with fresh_database(request.param, tmp_path) as settings:
        yield settings.model_copy(update={"handoff_sweep_interval": 3600, "review_confidence_threshold": 0.7})


@pytest.fixture
async def studio(own_settings: Settings, token: TokenFactory) -> AsyncIterator[Studio]:
    async with app_client(own_settings, bot=UnsureBot()) as (app, http):
        yield Studio(app, http, token, own_settings)


async def test_the_queue_holds_exactly_the_messages_that_meet_a_criterion(studio: Studio) -> None:
    started = datetime.now(UTC)
    a = (await studio.say("rv-ann", "hello"))["conversation_id"]
    for text in ("unsure where is my parcel", "gibberish blorp", "weather in paris"):
        await studio.say("rv-ann", text, a)
    b = (await studio.say("rv-ben", "hello"))["conversation_id"]
    await studio.say("rv-ben", "hello again", b)
    assert (await studio.say("rv-ben", "human please", b))["handoff_state"] == "pending_human"
    await studio.say("rv-ben", "are you there?", b)  # written to the CSR queue, not read by the bot
    c = (await studio.say("rv-cat", "hello there"))["conversation_id"]
    rated = await studio.http.post(
        f"/api/v1/conversations/{c}/feedback", headers=auth(studio.token("rv-cat")), json={"rating": 2}
    )
    assert rated.status_code == 201
    d = (await studio.say("rv-dan", "hello fine"))["conversation_id"]
    await studio.http.post(
        f"/api/v1/conversations/{d}/feedback", headers=auth(studio.token("rv-dan")), json={"rating": 4}
    )
    e = (await studio.say("rv-eve", "hello i want the blue one"))["conversation_id"]
    flagged_id = await studio.message_id("rv-eve", e, "hello i want the blue one")
    flagged = await studio.as_("csr", "POST", f"/messages/{flagged_id}/flag", json={"note": "colour not understood"})
    assert flagged.status_code == 201, flagged.text

    assert await studio.queued() == {
        "unsure where is my parcel": ["low_confidence"],
        "gibberish blorp": ["nlu_fallback"],
        "weather in paris": ["out_of_scope"],
        "hello again": ["before_handoff"],
        "human please": ["before_handoff"],
        "hello there": ["low_rating"],
        "hello i want the blue one": ["flagged"],
    }
    assert set(await studio.queued(reason="before_handoff")) == {"hello again", "human please"}
    assert set(await studio.queued(reason=["nlu_fallback", "out_of_scope"])) == {"gibberish blorp", "weather in paris"}
    assert set(await studio.queued(intent="order_status")) == {"unsure where is my parcel"}
    assert await studio.queued(**{"from": (datetime.now(UTC) + timedelta(minutes=1)).isoformat()}) == {}
    assert len(await studio.queued(**{"from": started.isoformat()})) == 7

    # Newest first, paged; each item carries its prediction and the turns around it.
    first = await studio.queue(limit=3)
    assert first["total"] == 7 and len(first["items"]) == 3 and first["next_before"] is not None
    rest = await studio.queue(limit=10, before=first["next_before"])
    assert rest["next_before"] is None and len(rest["items"]) == 4
    ids = [i["message"]["id"] for i in first["items"] + rest["items"]]
    assert ids == sorted(ids, reverse=True)
    unsure = next(i for i in first["items"] + rest["items"] if i["message"]["text"].startswith("unsure"))
    assert (unsure["message"]["intent"], unsure["message"]["confidence"]) == ("order_status", 0.41)
    assert unsure["user_id"] == "rv-ann" and unsure["conversation_id"] == a
    assert [t["text"] for t in unsure["before"]] == ["hello", "bot: hello"]
    assert [t["text"] for t in unsure["after"]][:2] == ["Let me check your order.", "gibberish blorp"]
    blue = next(i for i in first["items"] + rest["items"] if i["message"]["text"].startswith("hello i want"))
    assert (blue["flag"]["flagged_by"], blue["flag"]["note"]) == ("csr-dana", "colour not understood")

    # A threshold is a setting: lower it and the unsure message no longer qualifies.
    studio.app.state.container.settings = studio.settings.model_copy(update={"review_confidence_threshold": 0.4})
    assert "unsure where is my parcel" not in await studio.queued()


async def test_who_may_read_annotate_flag_and_export(studio: Studio) -> None:
    cid = (await studio.say("rv-fay", "gibberish zzz"))["conversation_id"]
    mid = await studio.message_id("rv-fay", cid, "gibberish zzz")
    for role in ("client", "csr"):
        assert (await studio.as_(role, "GET", "/queue")).status_code == 403
        assert (await studio.as_(role, "GET", f"/messages/{mid}")).status_code == 403
        assert (await studio.as_(role, "GET", "/domain")).status_code == 403
        refused = await studio.as_(role, "POST", f"/messages/{mid}/annotation", json={"intent": "greet"})
        assert refused.status_code == 403 and refused.json()["code"] == "forbidden"
    assert (await studio.http.get("/api/v1/review/queue")).status_code == 401
    for role in ("designer", "admin"):
        assert (await studio.as_(role, "GET", "/queue")).status_code == 200
    assert (await studio.as_("client", "POST", f"/messages/{mid}/flag")).status_code == 403
    assert (await studio.as_("csr", "POST", f"/messages/{mid}/flag")).status_code == 201
    again = await studio.as_("csr", "POST", f"/messages/{mid}/flag", who="csr-other")
    assert again.status_code == 200 and again.json()["created"] is False and again.json()["flagged_by"] == "csr-dana"
    assert (await studio.as_("designer", "GET", "/export")).status_code == 403
    assert (await studio.as_("admin", "GET", "/export")).status_code == 200
    # A designer is no CSR: the CSR API and other customers' conversations stay closed.
    designer = auth(studio.token("designer-dana", "designer"))
    assert (await studio.http.get("/api/v1/csr/queue", headers=designer)).status_code == 403
    assert (await studio.http.get(f"/api/v1/user/rv-fay/messages/{cid}", headers=designer)).status_code == 403


async def test_annotations_are_checked_against_the_domain_and_the_text(studio: Studio) -> None:
    text = "unsure where is order 10234"
    cid = (await studio.say("rv-gus", text))["conversation_id"]
    mid = await studio.message_id("rv-gus", cid, text)
    start = text.index("10234")

    async def refused(body: dict) -> tuple[list, str]:
        response = await studio.as_("designer", "POST", f"/messages/{mid}/annotation", json=body)
        assert response.status_code == 422, response.text
        detail = response.json()["detail"]
        return detail[0]["loc"], detail[0]["msg"]

    loc, msg = await refused({"intent": "order_stat"})
    assert loc == ["body", "intent"] and "unknown intent 'order_stat'" in msg
    loc, msg = await refused({"intent": "nlu_fallback"})
    assert loc == ["body", "intent"] and "the intent the customer meant" in msg
    span = {"start": start, "end": start + 5, "entity": "order_number"}
    loc, msg = await refused({"intent": "order_status", "entities": [span]})
    assert loc == ["body", "entities", 0, "entity"] and "unknown entity 'order_number'" in msg
    loc, msg = await refused({"intent": "order_status", "entities": [{**span, "entity": "order_id", "end": 99}]})
    assert loc == ["body", "entities", 0, "end"] and "after the text's 27 characters" in msg
    loc, _ = await refused({"intent": "order_status", "entities": [{**span, "entity": "order_id", "start": -1}]})
    assert loc == ["body", "entities", 0, "start"]
    loc, msg = await refused(
        {"intent": "order_status", "entities": [{"start": start, "end": start + 3, "entity": "order_id"}]}
    )
    assert loc == ["body", "entities", 0, "end"] and "inside a word" in msg
    overlapping = [
        {"start": start, "end": start + 5, "entity": "order_id"},
        {"start": start, "end": start + 5, "entity": "quantity"},
    ]
    loc, msg = await refused({"intent": "order_status", "entities": overlapping})
    assert loc == ["body", "entities", 1, "start"] and "overlaps" in msg
    loc, _ = await refused({"intent": "order_status", "ignore": True})
    assert loc == ["body"]
    loc, _ = await refused({})
    assert loc == ["body"]
    loc, _ = await refused({"intent": "order_status", "colour": "blue"})
    assert loc == ["body", "colour"]

    bot_reply = next(m["id"] for m in await studio.history("rv-gus", cid) if m["sender"] == "bot")
    not_customer = await studio.as_("designer", "POST", f"/messages/{bot_reply}/annotation", json={"intent": "greet"})
    assert not_customer.status_code == 422 and not_customer.json()["code"] == "not_a_customer_message"
    missing = await studio.as_("designer", "POST", "/messages/999999/annotation", json={"intent": "greet"})
    assert missing.status_code == 404 and missing.json()["code"] == "message_not_found"
    # Nothing was stored by the refusals.
    assert (await studio.as_("designer", "GET", f"/messages/{mid}")).json()["decisions"] == []


async def test_a_message_is_reviewed_once_unless_reopened(studio: Studio) -> None:
    text = "unsure where is order 10234"
    cid = (await studio.say("rv-hal", text))["conversation_id"]
    await studio.say("rv-hal", "gibberish qq", cid)
    mid = await studio.message_id("rv-hal", cid, text)
    other = await studio.message_id("rv-hal", cid, "gibberish qq")
    start = text.index("10234")
    assert set(await studio.queued()) == {text, "gibberish qq"}
    domain = (await studio.as_("designer", "GET", "/domain")).json()
    assert "order_status" in domain["intents"] and "nlu_fallback" not in domain["intents"]
    assert "order_id" in domain["entities"]
    before = metric_value(
        (await studio.http.get("/metrics")).text,
        "reviewbot_review_corrections_total",
        predicted_intent="order_status",
        intent="order_status",
    )

    body = {"intent": "order_status", "entities": [{"start": start, "end": start + 5, "entity": "order_id"}]}
    saved = await studio.as_("designer", "POST", f"/messages/{mid}/annotation", json=body, who="designer-ida")
    assert saved.status_code == 201, saved.text
    assert saved.json() | {"reviewed_at": None} == {
        "decision": "corrected",  # the bot found no order number
        "intent": "order_status",
        "entities": [{"start": start, "end": start + 5, "entity": "order_id", "value": "10234"}],
        "predicted_intent": "order_status",
        "note": None,
        "reviewed_by": "designer-ida",
        "reviewed_at": None,
    }
    assert set(await studio.queued()) == {"gibberish qq"}
    assert set(await studio.queued(state="reviewed")) == {text}
    twice = await studio.as_("admin", "POST", f"/messages/{mid}/annotation", json={"ignore": True})
    assert twice.status_code == 409
    assert twice.json() | {"detail": None} == {
        "code": "already_reviewed",
        "detail": None,
        "message_id": mid,
        "decision": "corrected",
        "reviewed_by": "designer-ida",
    }
    ignored = await studio.as_(
        "designer", "POST", f"/messages/{other}/annotation", json={"ignore": True, "note": "spam"}
    )
    assert ignored.status_code == 201 and ignored.json()["decision"] == "ignored"
    assert await studio.queued() == {}
    metrics = (await studio.http.get("/metrics")).text
    assert metric_value(metrics, "reviewbot_review_backlog") == 0
    after = metric_value(
        metrics, "reviewbot_review_corrections_total", predicted_intent="order_status", intent="order_status"
    )
    assert after == before + 1

    reopened = await studio.as_("designer", "POST", f"/messages/{mid}/reopen", json={"note": "wrong order"})
    assert reopened.status_code == 200 and reopened.json()["annotation"] is None
    assert set(await studio.queued()) == {text}
    assert (await studio.as_("designer", "POST", f"/messages/{mid}/reopen")).status_code == 409
    confirmed = await studio.as_("admin", "POST", f"/messages/{mid}/annotation", json={"intent": "order_status"})
    assert confirmed.status_code == 201 and confirmed.json()["decision"] == "confirmed"

    detail = (await studio.as_("designer", "GET", f"/messages/{mid}")).json()
    assert [(d["decision"], d["actor"], d["note"]) for d in detail["decisions"]] == [
        ("corrected", "designer-ida", None),
        ("reopened", "designer-dana", "wrong order"),
        ("confirmed", "admin-dana", None),
    ]
    assert all(d["timestamp"] for d in detail["decisions"])


async def test_the_summary_reports_the_share_needing_review(studio: Studio) -> None:
    start = datetime.now(UTC) - timedelta(seconds=1)
    cid = (await studio.say("rv-ivy", "hello"))["conversation_id"]
    for text in ("unsure one", "hello two", "gibberish three"):
        await studio.say("rv-ivy", text, cid)
    period = {"from": start.isoformat(), "to": (datetime.now(UTC) + timedelta(seconds=1)).isoformat()}
    admin = auth(studio.token("admin-ann", "admin"))
    summary = (await studio.http.get("/api/v1/metrics/summary", params=period, headers=admin)).json()
    assert summary["review"] == {"customer_messages": 4, "needing_review": 2, "share": 0.5}


async def test_the_backlog_gauge_is_set_when_the_api_starts(own_settings: Settings, token: TokenFactory) -> None:
    async with app_client(own_settings, bot=UnsureBot()) as (app, http):
        studio = Studio(app, http, token, own_settings)
        cid = (await studio.say("rv-jon", "gibberish a"))["conversation_id"]
        await studio.say("rv-jon", "weather b", cid)
    # Another replica starting (or this one restarted) reports the backlog without waiting for a decision.
    set_review_backlog(-1)
    async with app_client(own_settings, bot=UnsureBot()) as (app, http):
        for _ in range(50):
            if metric_value((await http.get("/metrics")).text, "reviewbot_review_backlog") == 2:
                break
            await asyncio.sleep(0.1)
        assert metric_value((await http.get("/metrics")).text, "reviewbot_review_backlog") == 2
