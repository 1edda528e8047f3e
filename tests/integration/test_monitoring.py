"""The Prometheus config and the Grafana dashboard parse, and every panel queries a metric that is exported."""

from __future__ import annotations

import ast
import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from conversation_api.settings import Settings
from tests.support.events import app_client, metric_names

ROOT = Path(__file__).resolve().parents[2]
MONITORING = ROOT / "monitoring"
DASHBOARD = MONITORING / "grafana" / "dashboards" / "reviewbot.json"
METRIC = re.compile(r"\breviewbot_[a-z_]+\b")

# One panel (at least) per metric the seed lists.
SEED_METRICS = {
    "reviewbot_messages_total",
    "reviewbot_session_duration_seconds_bucket",
    "reviewbot_bot_response_seconds_bucket",
    "reviewbot_csr_first_response_seconds_bucket",
    "reviewbot_workflows_total",
    "reviewbot_feedback_rating_sum",
    "reviewbot_http_requests_total",
    "reviewbot_http_request_duration_seconds_bucket",
    "reviewbot_bot_call_duration_seconds_bucket",
    "reviewbot_bot_call_failures_total",
    "reviewbot_event_outbox_backlog",
    "reviewbot_whatsapp_send_failures_total",
    "reviewbot_action_runs_total",
}


def panels() -> list[dict]:
    return [p for p in json.loads(DASHBOARD.read_text())["panels"] if p["type"] != "row"]


def queries() -> list[str]:
    return [target["expr"] for panel in panels() for target in panel["targets"]]


def action_server_metrics() -> set[str]:
    """Names the action server defines (its module runs under Rasa's Python, so read it rather than import it)."""
    tree = ast.parse((ROOT / "connectors" / "rasa" / "action_server.py").read_text())
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and getattr(node.func, "id", "") in {"Counter", "Histogram"}:
            name = node.args[0].value  # type: ignore[attr-defined]
            kind = node.func.id  # type: ignore[attr-defined]
            names |= {name + "_total"} if kind == "Counter" else {name + s for s in ("_bucket", "_sum", "_count")}
    return names


async def test_every_panel_queries_metrics_the_api_or_the_action_server_exports(sqlite_db_settings: Settings) -> None:
    async with app_client(sqlite_db_settings) as (_, client):
        exported = metric_names((await client.get("/metrics")).text)
    exported |= action_server_metrics()
    assert len(panels()) >= 12
    used: set[str] = set()
    for panel in panels():
        assert panel["title"] and panel["targets"], panel
        assert panel["datasource"]["uid"] == "prometheus"
        for target in panel["targets"]:
            names = set(METRIC.findall(target["expr"]))
            assert names, f"panel {panel['title']!r} queries no ReviewBot metric"
            assert names <= exported, f"panel {panel['title']!r} queries unknown {names - exported}"
            used |= names
    assert used >= SEED_METRICS, SEED_METRICS - used


def test_prometheus_scrapes_the_api_and_the_action_server() -> None:
    config = yaml.safe_load((MONITORING / "prometheus.yml").read_text())
    targets = {
        job["job_name"]: (job.get("metrics_path", "/metrics"), target)
        for job in config["scrape_configs"]
        for group in job.get("static_configs", [])
        for target in group["targets"]
    } | {
        # Each API replica separately: the service name resolves to every replica's address.
        job["job_name"]: (job.get("metrics_path", "/metrics"), f"{name}:{sd['port']}")
        for job in config["scrape_configs"]
        for sd in job.get("dns_sd_configs", [])
        for name in sd["names"]
    }
    assert set(targets.values()) == {("/metrics", "api:8000"), ("/metrics", "actions:5055")}


def test_grafana_is_provisioned_with_the_dashboard_and_the_datasource() -> None:
    datasource = yaml.safe_load((MONITORING / "grafana/provisioning/datasources/prometheus.yml").read_text())
    assert datasource["datasources"][0]["uid"] == "prometheus"
    assert datasource["datasources"][0]["url"] == "http://prometheus:9090"
    provider = yaml.safe_load((MONITORING / "grafana/provisioning/dashboards/reviewbot.yml").read_text())
    dashboards_path = provider["providers"][0]["options"]["path"]
    services = yaml.safe_load((ROOT / "docker-compose.yml").read_text())["services"]
    mounts = {v.split(":")[1]: v.split(":")[0] for v in services["grafana"]["volumes"]}
    assert (ROOT / mounts[dashboards_path]).resolve() == DASHBOARD.parent
    assert (ROOT / mounts["/etc/grafana/provisioning"]).resolve() == MONITORING / "grafana/provisioning"
    prometheus_mount = services["prometheus"]["volumes"][0].split(":")
    assert (ROOT / prometheus_mount[0]).resolve() == MONITORING / "prometheus.yml"
    assert services["actions"]["command"][:3] == ["python", "-m", "connectors.rasa.action_server"]


@pytest.mark.skipif(shutil.which("promtool") is None, reason="promtool (Debian package prometheus) not installed")
def test_promtool_accepts_the_config_and_every_panel_query(tmp_path: Path) -> None:
    checked = subprocess.run(
        ["promtool", "check", "config", str(MONITORING / "prometheus.yml")], capture_output=True, text=True
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr
    # promtool parses PromQL in rule files: one recording rule per panel query checks every query's syntax.
    rules = {
        "groups": [
            {
                "name": "dashboard",
                "rules": [{"record": f"reviewbot:panel_query_{i}", "expr": q} for i, q in enumerate(queries())],
            }
        ]
    }
    (tmp_path / "rules.yml").write_text(yaml.safe_dump(rules))
    result = subprocess.run(["promtool", "check", "rules", str(tmp_path / "rules.yml")], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
    (tmp_path / "broken.yml").write_text(
        yaml.safe_dump({"groups": [{"name": "x", "rules": [{"record": "a:b", "expr": "sum("}]}]})
    )
    assert subprocess.run(["promtool", "check", "rules", str(tmp_path / "broken.yml")], capture_output=True).returncode
