"""docker-compose.yml wires the stack the way the settings expect."""

import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
ENV = {
    "POSTGRES_PASSWORD": "pw",
    "RASA_TOKEN": "rasa-token",
    "ACTION_SERVER_TOKEN": "action-token",
    "JWT_SECRET": "j" * 40,
    "GRAFANA_ADMIN_PASSWORD": "g" * 16,
    "PATH": "/usr/bin:/bin",
}


def compose() -> dict:
    return yaml.safe_load((ROOT / "docker-compose.yml").read_text())


def test_the_api_reaches_postgres_redis_and_rasa_by_service_name() -> None:
    services = compose()["services"]
    assert {"postgres", "redis", "rasa", "actions", "api"} <= set(services)
    api = services["api"]["environment"]
    assert api["ENVIRONMENT"] == "production"
    assert api["DATABASE_URL"].startswith("postgresql+psycopg://") and "@postgres:5432/" in api["DATABASE_URL"]
    assert api["REDIS_URL"] == "redis://redis:6379/0"
    assert services["rasa"]["environment"]["ACTION_SERVER_URL"] == "http://actions:5055/webhook"


@pytest.mark.skipif(shutil.which("docker-compose") is None, reason="docker-compose (Debian package) not installed")
def test_docker_compose_config_accepts_the_file() -> None:
    result = subprocess.run(["docker-compose", "config", "-q"], cwd=ROOT, env=ENV, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    missing = subprocess.run(["docker-compose", "config", "-q"], cwd=ROOT, env={"PATH": "/usr/bin:/bin"},
                             capture_output=True, text=True)
    assert missing.returncode != 0 and "POSTGRES_PASSWORD" in missing.stderr


@pytest.mark.skipif(shutil.which("kubectl") is None, reason="kubectl not installed")
def test_kubernetes_manifests_render_with_probes_and_secrets() -> None:
    result = subprocess.run(["kubectl", "kustomize", str(ROOT / "deploy/k8s")], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    documents = [d for d in yaml.safe_load_all(result.stdout) if d]
    deployments = {d["metadata"]["name"]: d for d in documents if d["kind"] == "Deployment"}
    assert set(deployments) == {"api", "rasa", "actions"}
    for deployment in deployments.values():
        assert deployment["metadata"]["namespace"] == "reviewbot"
        container = deployment["spec"]["template"]["spec"]["containers"][0]
        assert container["readinessProbe"]["httpGet"]["path"]
    api = deployments["api"]["spec"]["template"]["spec"]["containers"][0]
    assert api["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert any(d["kind"] == "HorizontalPodAutoscaler" for d in documents)


@pytest.mark.skipif(shutil.which("kubectl") is None, reason="kubectl not installed")
def test_the_bot_tier_runs_several_replicas_with_probes_autoscaling_and_disruption_budgets() -> None:
    result = subprocess.run(["kubectl", "kustomize", str(ROOT / "deploy/k8s")], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    documents = [d for d in yaml.safe_load_all(result.stdout) if d]
    by_kind: dict[str, dict[str, dict]] = {}
    for document in documents:
        by_kind.setdefault(document["kind"], {})[document["metadata"]["name"]] = document
    for name in ("rasa", "actions"):
        deployment = by_kind["Deployment"][name]
        assert deployment["spec"]["replicas"] >= 2
        container = deployment["spec"]["template"]["spec"]["containers"][0]
        assert container["livenessProbe"]["httpGet"]["path"]
        assert by_kind["HorizontalPodAutoscaler"][name]["spec"]["minReplicas"] >= 2
        assert by_kind["PodDisruptionBudget"][name]["spec"]["minAvailable"] == 1
    # The model loads before liveness counts, so a slow start is not a restart loop.
    assert by_kind["Deployment"]["rasa"]["spec"]["template"]["spec"]["containers"][0]["startupProbe"]


def test_compose_gives_rasa_the_shared_tracker_and_lock_stores() -> None:
    services = compose()["services"]
    rasa = services["rasa"]["environment"]
    assert rasa["DATABASE_URL"] == services["api"]["environment"]["DATABASE_URL"]
    assert rasa["REDIS_URL"] == services["api"]["environment"]["REDIS_URL"]
    assert services["rasa"]["deploy"]["replicas"] >= 2
    endpoints = yaml.safe_load((ROOT / "rasa_project/endpoints.yml").read_text())
    assert endpoints["tracker_store"]["type"] == "connectors.rasa.stores.ReviewBotTrackerStore"
    assert endpoints["lock_store"]["type"] == "connectors.rasa.stores.ReviewBotLockStore"
