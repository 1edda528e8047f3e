"""Prometheus metrics and the summary, driven through the API in-process on PostgreSQL and SQLite."""

from __future__ import annotations

import asyncio
from collections import defaultdict
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from sqlalchemy import select

from conversation_api.conversations.models import Message
from conversation_api.db import create_engine, create_session_factory
from conversation_api.metrics import sessions as session_metrics
from conversation_api.settings import Settings
from tests.conftest import TokenFactory, auth
from tests.support.events import ScriptedBot, app_client, fresh_database, metric_value


@pytest.fixture(params=["postgresql", "sqlite"])
def fresh_settings(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Settings]:
    """A database of its own, so the summary sees only this test's conversations."""
    with fresh_database(request.param, tmp_path) as settings:
        yield settings


async def say(client: httpx.AsyncClient, token: str, user: str, text: str, cid: str = "") -> httpx.Response:
    body = {"conversation_id": cid, "user_id": user, "message": text}
    return await client.post("/api/v1/messages", headers=auth(token), json=body)


async def scrape(client: httpx.AsyncClient) -> str:
    response = await client.get("/metrics")
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/plain")
    return response.text


def as_utc(moment: datetime) -> datetime:
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment


async def all_messages(settings: Settings) -> list[Message]:
    engine = create_engine(settings)
    try:
        async with create_session_factory(engine)() as session:
            return list(await session.scalars(select(Message).order_by(Message.id)))
    finally:
        await engine.dispose()


async def test_counters_and_histograms_move_with_the_conversation(
    fresh_settings: Settings, token: TokenFactory
) -> None:
    alice = token("m-alice")
    async with app_client(fresh_settings, bot=ScriptedBot()) as (_, client):
        before = await scrape(client)
        cid = (await say(client, alice, "m-alice", "hello")).json()["conversation_id"]
        await say(client, alice, "m-alice", "book a haircut", cid)
        await say(client, alice, "m-alice", "order fails please", cid)
        await say(client, alice, "m-alice", "human please", cid)
        assert (await say(client, alice, "m-alice", "boom")).status_code == 503
        assert (await client.get("/api/v1/user/m-alice/messages/nope", headers=auth(alice))).status_code == 404
        after = await scrape(client)

    def delta(name: str, **labels: str) -> float:
        return metric_value(after, name, **labels) - metric_value(before, name, **labels)

    assert delta("reviewbot_messages_total", direction="received", sender="user", channel="api") == 5
    assert delta("reviewbot_messages_total", direction="sent", sender="bot", channel="api") == 4
    assert delta("reviewbot_messages_total", sender="csr") == 0
    assert delta("reviewbot_intents_total", intent="book_appointment", channel="api") == 1
    assert delta("reviewbot_workflows_total", workflow="booking", outcome="success") == 1
    assert delta("reviewbot_workflows_total", workflow="order", outcome="failure") == 1
    assert delta("reviewbot_handoffs_requested_total", reason="customer_request", channel="api") == 1
    assert delta("reviewbot_bot_response_seconds_count", channel="api") == 4
    assert 0 < delta("reviewbot_bot_response_seconds_sum", channel="api") < 10
    assert delta("reviewbot_bot_call_duration_seconds_count", outcome="ok") == 4
    assert delta("reviewbot_bot_call_duration_seconds_count", outcome="error") == 1
    assert delta("reviewbot_bot_call_failures_total") == 1
    messages_route = {"method": "POST", "route": "/api/v1/messages"}
    assert delta("reviewbot_http_requests_total", status="200", **messages_route) == 4
    assert delta("reviewbot_http_requests_total", status="503", **messages_route) == 1
    history = {"route": "/api/v1/user/{user_id}/messages/{conversation_id}", "status": "404"}
    assert delta("reviewbot_http_requests_total", **history) == 1
    assert delta("reviewbot_http_request_duration_seconds_count", **messages_route) == 5
    assert "nope" not in after and "m-alice" not in after  # ids never become labels


async def test_session_duration_is_observed_once_a_session_goes_quiet(
    fresh_settings: Settings, token: TokenFactory
) -> None:
    bob = token("m-bob")
    settings = fresh_settings.model_copy(update={"session_idle_gap_seconds": 1})
    async with app_client(settings, bot=ScriptedBot()) as (app, client):
        before = await scrape(client)
        cid = (await say(client, bob, "m-bob", "hello")).json()["conversation_id"]
        await asyncio.sleep(0.3)
        await say(client, bob, "m-bob", "still here", cid)
        await asyncio.sleep(1.3)  # longer than the idle gap: the next message opens a new session
        await say(client, bob, "m-bob", "back again", cid)
        middle = await scrape(client)
        await asyncio.sleep(1.3)
        # The app's sweeper (every half gap here) may have closed it already; closing is idempotent.
        await session_metrics.close_idle_sessions(sessions=app.state.container.sessions)
        assert await session_metrics.close_idle_sessions(sessions=app.state.container.sessions) == 0
        after = await scrape(client)
    first = metric_value(middle, "reviewbot_session_duration_seconds_count") - metric_value(
        before, "reviewbot_session_duration_seconds_count"
    )
    first_length = metric_value(middle, "reviewbot_session_duration_seconds_sum") - metric_value(
        before, "reviewbot_session_duration_seconds_sum"
    )
    assert first == 1 and 0.3 <= first_length < 1.3
    assert (
        metric_value(after, "reviewbot_session_duration_seconds_count", channel="api")
        - metric_value(middle, "reviewbot_session_duration_seconds_count", channel="api")
        == 1
    )


def expected_summary(messages: list[Message], gap: timedelta) -> dict:
    """The summary's message, response and session figures, recomputed from the raw rows."""
    by_conversation: dict[str, list[Message]] = defaultdict(list)
    for message in messages:
        by_conversation[message.conversation_id].append(message)
    response_times, durations = [], []
    for rows in by_conversation.values():
        for current, following in zip(rows, rows[1:], strict=False):
            if current.sender == "user" and following.sender == "bot":
                response_times.append((as_utc(following.created_at) - as_utc(current.created_at)).total_seconds())
        start = previous = as_utc(rows[0].created_at)
        for row in rows[1:]:
            at = as_utc(row.created_at)
            if at - previous > gap:
                durations.append((previous - start).total_seconds())
                start = at
            previous = at
        durations.append((previous - start).total_seconds())
    return {
        "total": len(messages),
        "by_sender": {s: sum(1 for m in messages if m.sender == s) for s in ("user", "bot", "csr")},
        "conversations": len(by_conversation),
        "replies": len(response_times),
        "average_response": sum(response_times) / len(response_times),
        "sessions": len(durations),
        "average_session": sum(durations) / len(durations),
    }


async def test_the_summary_agrees_with_the_database(fresh_settings: Settings, token: TokenFactory) -> None:
    users = {name: token(name) for name in ("s-ann", "s-ben", "s-cat")}
    admin = token("s-admin", "admin")
    start = datetime.now(UTC) - timedelta(seconds=1)
    async with app_client(fresh_settings, bot=ScriptedBot()) as (_, client):
        ann = (await say(client, users["s-ann"], "s-ann", "hello")).json()["conversation_id"]
        await say(client, users["s-ann"], "s-ann", "book tomorrow", ann)
        await say(client, users["s-ann"], "s-ann", "rate 4 lovely", ann)
        ben = (await say(client, users["s-ben"], "s-ben", "order fails")).json()["conversation_id"]
        await say(client, users["s-ben"], "s-ben", "book next week", ben)
        await say(client, users["s-ben"], "s-ben", "human now", ben)  # last: a human answers from here on
        cat = (await say(client, users["s-cat"], "s-cat", "boom")).json()["conversation_id"]
        await say(client, users["s-cat"], "s-cat", "hello again", cat)
        feedback = await client.post(
            f"/api/v1/conversations/{cat}/feedback", headers=auth(users["s-cat"]), json={"rating": 1}
        )
        assert feedback.status_code == 201
        end = datetime.now(UTC) + timedelta(seconds=1)
        period = {"from": start.isoformat(), "to": end.isoformat()}
        response = await client.get("/api/v1/metrics/summary", params=period, headers=auth(admin))
        assert response.status_code == 200, response.text
        summary = response.json()

        for role in ("client", "csr"):
            refused = await client.get("/api/v1/metrics/summary", headers=auth(token("s-someone", role)))
            assert refused.status_code == 403
        assert (await client.get("/api/v1/metrics/summary")).status_code == 401
        backwards = {"from": end.isoformat(), "to": start.isoformat()}
        assert (await client.get("/api/v1/metrics/summary", params=backwards, headers=auth(admin))).status_code == 422
        assert (
            await client.get("/api/v1/metrics/summary", params={"from": "soon"}, headers=auth(admin))
        ).status_code == 422
        later = {"from": end.isoformat(), "to": (end + timedelta(hours=1)).isoformat()}
        empty = (await client.get("/api/v1/metrics/summary", params=later, headers=auth(admin))).json()
        assert empty["messages"]["total"] == 0 and empty["csat"]["average_rating"] is None

    expected = expected_summary(
        await all_messages(fresh_settings), timedelta(seconds=fresh_settings.session_idle_gap_seconds)
    )
    assert summary["messages"] == {
        "total": expected["total"],
        "by_sender": expected["by_sender"],
        "by_channel": {"api": expected["total"]},
        "conversations": 3,
    }
    assert expected["by_sender"] == {"user": 8, "bot": 7, "csr": 0}
    assert summary["bot_response"]["replies"] == expected["replies"] == 7
    assert summary["bot_response"]["average_seconds"] == pytest.approx(expected["average_response"], abs=0.002)
    assert summary["sessions"]["count"] == expected["sessions"] == 3
    assert summary["sessions"]["average_duration_seconds"] == pytest.approx(expected["average_session"], abs=0.002)
    assert summary["workflows"] == {
        "booking": {"succeeded": 2, "failed": 0, "success_rate": 1.0},
        "feedback": {"succeeded": 1, "failed": 0, "success_rate": 1.0},
        "order": {"succeeded": 0, "failed": 1, "success_rate": 0.0},
    }
    assert summary["csat"] == {
        "responses": 2,
        "average_rating": 2.5,
        "satisfied_share": 0.5,
        "distribution": {"1": 1, "2": 0, "3": 0, "4": 1, "5": 0},
    }
    assert summary["handoff"] == {"conversations": 1, "rate": round(1 / 3, 4)}
    assert summary["errors"] == {"bot_unavailable": 1, "rate": round(1 / 8, 4)}
