"""Metrics and events with the real stack: API over HTTP -> real Rasa -> real action server, on PostgreSQL."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import psycopg
import pytest

from conversation_api.settings import Settings
from tests.conftest import TokenFactory, auth
from tests.support.database import plain_dsn
from tests.support.events import metric_names, metric_value
from tests.support.stack import BotStack

pytestmark = pytest.mark.e2e
DASHBOARD = Path(__file__).resolve().parents[2] / "monitoring" / "grafana" / "dashboards" / "reviewbot.json"


def say(api: httpx.Client, token: str, user: str, text: str, cid: str = "") -> dict:
    response = api.post(
        "/api/v1/messages", headers=auth(token), json={"conversation_id": cid, "user_id": user, "message": text}
    )
    assert response.status_code == 200, response.text
    return response.json()


def query(settings: Settings, sql: str, *params: object) -> list[tuple]:
    with psycopg.connect(plain_dsn(settings.database_url), options=f"-csearch_path={settings.database_schema}") as db:
        return db.execute(sql, params).fetchall()


def test_a_real_conversation_moves_the_metrics_and_records_its_events(
    api: httpx.Client, real_bot: BotStack, token: TokenFactory, stack_settings: Settings
) -> None:
    actions = httpx.Client(base_url=real_bot.actions.url, timeout=10)
    before, actions_before = api.get("/metrics").text, actions.get("/metrics").text
    start = datetime.now(UTC)

    frank = token("e2e-metrics-frank")
    cid = say(api, frank, "e2e-metrics-frank", "hello")["conversation_id"]
    say(api, frank, "e2e-metrics-frank", "what are your opening hours?", cid)
    say(api, frank, "e2e-metrics-frank", "i want to talk to a human", cid)
    grace = token("e2e-metrics-grace")
    say(api, grace, "e2e-metrics-grace", "hello")

    after, actions_after = api.get("/metrics").text, actions.get("/metrics").text
    end = datetime.now(UTC) + timedelta(seconds=1)

    def delta(name: str, **labels: str) -> float:
        return metric_value(after, name, **labels) - metric_value(before, name, **labels)

    bot_messages = query(
        stack_settings,
        "SELECT count(*) FROM message m JOIN conversation c ON c.id = m.conversation_id "
        "WHERE c.user_id LIKE 'e2e-metrics-%%' AND m.sender = 'bot' AND m.created_at >= %s",
        start,
    )[0][0]
    assert bot_messages >= 4
    assert delta("reviewbot_messages_total", direction="received", sender="user", channel="api") == 4
    assert delta("reviewbot_messages_total", direction="sent", sender="bot", channel="api") == bot_messages
    assert delta("reviewbot_intents_total", intent="greet", channel="api") == 2
    assert delta("reviewbot_intents_total", intent="faq", channel="api") == 1
    assert delta("reviewbot_intents_total", intent="request_human", channel="api") == 1
    assert delta("reviewbot_handoffs_requested_total", reason="customer_request", channel="api") == 1
    assert delta("reviewbot_bot_response_seconds_count", channel="api") == 4
    assert 0 < delta("reviewbot_bot_response_seconds_sum", channel="api") < 40
    assert delta("reviewbot_bot_call_duration_seconds_count", outcome="ok") == 4
    assert delta("reviewbot_http_requests_total", method="POST", route="/api/v1/messages", status="200") == 4
    action_runs = metric_value(
        actions_after, "reviewbot_action_runs_total", action="action_request_human", status="200"
    )
    assert (
        action_runs
        - metric_value(actions_before, "reviewbot_action_runs_total", action="action_request_human", status="200")
        == 1
    )

    # The events are on record with what NLU understood.
    events = query(
        stack_settings,
        "SELECT type, payload FROM outbox_event WHERE conversation_id = %s ORDER BY id",
        cid,
    )
    assert [t for t, _ in events] == ["message.received", "intent.detected"] * 3 + ["handoff.requested"]
    assert [p["intent"] for t, p in events if t == "intent.detected"] == ["greet", "faq", "request_human"]
    assert events[-1][1]["reason"] == "customer_request"

    # The summary agrees with the database for the same period.
    admin = token("e2e-metrics-admin", "admin")
    period = {"from": start.isoformat(), "to": end.isoformat()}
    summary = api.get("/api/v1/metrics/summary", params=period, headers=auth(admin)).json()
    rows = query(
        stack_settings,
        "SELECT sender, count(*) FROM message WHERE created_at >= %s AND created_at < %s GROUP BY sender",
        start,
        end,
    )
    assert summary["messages"]["by_sender"] == {"user": 0, "bot": 0, "csr": 0} | dict(rows)
    assert summary["messages"]["conversations"] == 2
    assert summary["bot_response"]["replies"] == 4 and summary["bot_response"]["average_seconds"] > 0
    assert summary["handoff"] == {"conversations": 1, "rate": 0.5}
    assert summary["errors"] == {"bot_unavailable": 0, "rate": 0.0}
    assert summary["sessions"]["count"] == 2

    # Every dashboard query names a metric one of the two real servers exports.
    exported = metric_names(after) | metric_names(actions_after)
    dashboard = json.loads(DASHBOARD.read_text())
    used = {
        name
        for panel in dashboard["panels"]
        for target in panel.get("targets", [])
        for name in re.findall(r"\breviewbot_[a-z_]+\b", target["expr"])
    }
    assert used and used <= exported, used - exported
