"""The alerting rules: valid for Prometheus, on metrics the code exports, each explained in the runbook."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
ALERTS = ROOT / "monitoring" / "alerts.yml"


def rules() -> list[dict]:
    return [rule for group in yaml.safe_load(ALERTS.read_text())["groups"] for rule in group["rules"]]


@pytest.mark.skipif(shutil.which("promtool") is None, reason="promtool (Debian package prometheus) not installed")
def test_promtool_accepts_the_rules() -> None:
    result = subprocess.run(["promtool", "check", "rules", str(ALERTS)], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_prometheus_loads_the_rules_everywhere_it_runs() -> None:
    assert "alerts.yml" in yaml.safe_load((ROOT / "monitoring" / "prometheus.yml").read_text())["rule_files"]
    assert "./monitoring/alerts.yml:/etc/prometheus/alerts.yml:ro" in (ROOT / "docker-compose.yml").read_text()


def test_every_alert_is_on_an_exported_metric_and_explained_in_the_runbook() -> None:
    sources = [p for d in ("conversation_api", "connectors", "actions") for p in (ROOT / d).rglob("*.py")]
    code = "".join(p.read_text() for p in sources)
    exported = set(re.findall(r'"(reviewbot_[a-z_]+)"', code))
    runbook = (ROOT / "docs" / "operations.md").read_text()
    assert len(rules()) >= 10
    for rule in rules():
        assert f"**{rule['alert']}**" in runbook, rule["alert"]
        for name in re.findall(r"\breviewbot_[a-z_]+", rule["expr"]):
            base = re.sub(r"_(total|bucket|count|sum)$", "", name)
            assert base in exported, f"{rule['alert']}: {name} is not a metric the code exports"
