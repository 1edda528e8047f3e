"""The Kubernetes manifests, as `kubectl kustomize` renders them: schema-valid and hardened.

Every rendered object is checked against the Kubernetes OpenAPI schemas (kubernetes-validate,
strict: an unknown or misspelt field fails); only CloudNativePG's custom resources, which those
schemas do not know, are skipped. The hardening properties are asserted on the rendered objects,
so a patch or an overlay cannot quietly undo them.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from conversation_api.db import engine_options
from conversation_api.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
BASE = ROOT / "deploy/k8s"
CNPG = BASE / "overlays/cnpg"
KUBERNETES_VERSION = "1.32.0"
# Objects of these API groups are operator CRDs the validator has no schema for.
CRD_GROUPS = ("postgresql.cnpg.io/",)
RESERVED_CONNECTIONS = 20  # superuser_reserved_connections (3) and room for psql, backups, monitoring

needs_kubectl = pytest.mark.skipif(
    shutil.which("kubectl") is None, reason="kubectl is not installed: the manifests cannot be rendered"
)

Doc = dict[str, Any]


def render(path: Path) -> list[Doc]:
    result = subprocess.run(["kubectl", "kustomize", str(path)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    return [d for d in yaml.safe_load_all(result.stdout) if d]


def by_kind(documents: list[Doc]) -> dict[str, dict[str, Doc]]:
    kinds: dict[str, dict[str, Doc]] = {}
    for document in documents:
        kinds.setdefault(document["kind"], {})[document["metadata"]["name"]] = document
    return kinds


def pod_specs(documents: list[Doc]) -> dict[str, Doc]:
    """Every pod template: Deployments' and Jobs'."""
    return {
        f"{d['kind']}/{d['metadata']['name']}": d["spec"]["template"]["spec"]
        for d in documents
        if d["kind"] in ("Deployment", "Job", "StatefulSet", "DaemonSet")
    }


def env_of(container: Doc) -> dict[str, str]:
    return {item["name"]: item.get("value", "") for item in container.get("env", [])}


@pytest.fixture(scope="module")
def base() -> list[Doc]:
    if shutil.which("kubectl") is None:
        pytest.skip("kubectl is not installed: the manifests cannot be rendered")
    return render(BASE)


@pytest.fixture(scope="module")
def cnpg() -> list[Doc]:
    if shutil.which("kubectl") is None:
        pytest.skip("kubectl is not installed: the manifests cannot be rendered")
    return render(CNPG)


def validate_all(documents: list[Doc]) -> list[str]:
    checked = []
    for document in documents:
        if document["apiVersion"].startswith(CRD_GROUPS):
            continue
        kubernetes_validate.validate(document, KUBERNETES_VERSION, strict=True)
        checked.append(f"{document['kind']}/{document['metadata']['name']}")
    return checked


@needs_kubectl
def test_every_rendered_object_matches_the_kubernetes_schema(base: list[Doc]) -> None:
    checked = validate_all(base)
    assert len(checked) == len(base)
    assert {"Deployment/api", "Job/migrate", "Ingress/api", "NetworkPolicy/default-deny"} <= set(checked)


def test_the_validator_refuses_a_misspelt_field() -> None:
    bad = {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "x"}, "spec": {"ports": [{"prot": 80}]}}
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(bad, KUBERNETES_VERSION, strict=True)


def test_the_example_secrets_are_valid_and_hold_only_what_each_service_needs() -> None:
    secrets = {d["metadata"]["name"]: d for d in yaml.safe_load_all((BASE / "base/secrets.example.yaml").read_text())}
    for secret in secrets.values():
        kubernetes_validate.validate(secret, KUBERNETES_VERSION, strict=True)
    keys = {name: set(secret["stringData"]) for name, secret in secrets.items()}
    assert set(keys) == {"reviewbot-api", "reviewbot-rasa", "reviewbot-actions"}
    assert "JWT_SECRET" in keys["reviewbot-api"]
    assert "JWT_SECRET" not in keys["reviewbot-rasa"] | keys["reviewbot-actions"]
    assert "ACTION_SERVER_TOKEN" in keys["reviewbot-rasa"] & keys["reviewbot-actions"]
    assert "ACTION_SERVER_TOKEN" not in keys["reviewbot-api"]
    assert "RASA_TOKEN" not in keys["reviewbot-actions"]


@needs_kubectl
@pytest.mark.parametrize("variant", ["base", "cnpg"])
def test_every_container_is_non_root_read_only_capability_free_and_limited(variant: str, request: Any) -> None:
    pods = pod_specs(request.getfixturevalue(variant))
    assert set(pods) == {"Deployment/api", "Deployment/rasa", "Deployment/actions", "Job/migrate"}
    for name, pod in pods.items():
        assert pod["automountServiceAccountToken"] is False, name
        assert pod["securityContext"]["runAsNonRoot"] is True, name
        assert pod["securityContext"]["runAsUser"] != 0, name
        assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}, name
        writable = {volume["name"] for volume in pod.get("volumes", []) if "emptyDir" in volume}
        for container in pod["containers"] + pod.get("initContainers", []):
            context = container["securityContext"]
            assert context["readOnlyRootFilesystem"] is True, name
            assert context["allowPrivilegeEscalation"] is False, name
            assert context["capabilities"]["drop"] == ["ALL"], name
            assert not context.get("capabilities", {}).get("add"), name
            for resource in ("cpu", "memory"):
                assert container["resources"]["requests"][resource], (name, resource)
                assert container["resources"]["limits"][resource], (name, resource)
            # The read-only root leaves /tmp (model unpacking, metrics files, $HOME) on an emptyDir.
            mounts = {mount["mountPath"]: mount["name"] for mount in container["volumeMounts"]}
            assert mounts.get("/tmp") in writable, name
            for path in env_of(container).values():
                if path.startswith("/"):
                    assert path.startswith("/tmp/"), (name, path)


@needs_kubectl
def test_the_namespace_enforces_the_restricted_pod_security_standard(base: list[Doc]) -> None:
    namespace = by_kind(base)["Namespace"]["reviewbot"]
    assert namespace["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == "restricted"


@needs_kubectl
def test_images_are_pinned(base: list[Doc]) -> None:
    for name, pod in pod_specs(base).items():
        for container in pod["containers"]:
            image = container["image"]
            repository, _, tag = image.rpartition(":")
            assert repository and tag and tag != "latest" and "/" not in tag, (name, image)


@needs_kubectl
def test_each_service_gets_its_own_secret_and_the_action_server_no_jwt_secret(base: list[Doc]) -> None:
    secrets_of = {}
    for name, pod in pod_specs(base).items():
        container = pod["containers"][0]
        refs = [source["secretRef"]["name"] for source in container.get("envFrom", []) if "secretRef" in source]
        refs += [
            item["valueFrom"]["secretKeyRef"]["name"]
            for item in container.get("env", [])
            if "secretKeyRef" in item.get("valueFrom", {})
        ]
        secrets_of[name] = refs
        assert "JWT_SECRET" not in env_of(container) or name == "Deployment/api", name
    assert secrets_of["Deployment/api"] == ["reviewbot-api"]
    assert secrets_of["Deployment/rasa"] == ["reviewbot-rasa"]
    assert secrets_of["Deployment/actions"] == ["reviewbot-actions"]
    assert secrets_of["Job/migrate"] == ["reviewbot-api"]
    config = by_kind(base)["ConfigMap"]["reviewbot-config"]["data"]
    assert not {
        key for key in config if "SECRET" in key or "TOKEN" in key or key.endswith("_URL") and "@" in config[key]
    }


@needs_kubectl
def test_migrations_run_in_a_job_and_the_api_pods_only_serve(base: list[Doc]) -> None:
    kinds = by_kind(base)
    job = kinds["Job"]["migrate"]["spec"]["template"]["spec"]
    assert job["containers"][0]["command"] == ["alembic", "upgrade", "heads"]
    assert job["restartPolicy"] == "Never"
    api = kinds["Deployment"]["api"]["spec"]["template"]["spec"]["containers"][0]
    # The image's CMD would migrate first; the Deployment overrides it with the server alone.
    assert api["command"][0] == "uvicorn"
    assert "alembic" not in " ".join(api["command"] + api.get("args", []))
    dockerfile = (ROOT / "docker/api.Dockerfile").read_text()
    assert "conversation_api.main:app_factory" in dockerfile and "conversation_api.main:app_factory" in api["command"]


@needs_kubectl
def test_network_policies_deny_by_default_and_allow_only_the_call_chain(base: list[Doc]) -> None:
    policies = by_kind(base)["NetworkPolicy"]
    deny = policies["default-deny"]["spec"]
    assert deny["podSelector"] == {} and set(deny["policyTypes"]) == {"Ingress", "Egress"}
    assert "ingress" not in deny and "egress" not in deny

    def callers(app: str) -> list[Doc]:
        [policy] = [p for p in policies.values() if p["spec"]["podSelector"] == {"matchLabels": {"app": app}}]
        return [peer for rule in policy["spec"].get("ingress", []) for peer in rule["from"]]

    assert callers("reviewbot-actions")[0] == {"podSelector": {"matchLabels": {"app": "reviewbot-rasa"}}}
    assert all(
        "podSelector" not in peer or peer["podSelector"]["matchLabels"]["app"] == "reviewbot-rasa"
        for peer in callers("reviewbot-actions")
    )
    assert callers("reviewbot-rasa") == [{"podSelector": {"matchLabels": {"app": "reviewbot-api"}}}]
    api_callers = callers("reviewbot-api")
    assert {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "ingress-nginx"}}} in api_callers
    assert all("podSelector" not in peer for peer in api_callers)
    # Only the API, Rasa, the actions and the migrate Job may open connections to PostgreSQL.
    database_clients = {
        policy["spec"]["podSelector"].get("matchLabels", {}).get("app")
        for policy in policies.values()
        for rule in policy["spec"].get("egress", [])
        if any(port["port"] == 5432 for port in rule.get("ports", []))
    }
    assert database_clients == {"reviewbot-api", "reviewbot-rasa", "reviewbot-actions", "reviewbot-migrate"}


@needs_kubectl
def test_the_api_rasa_and_actions_have_disruption_budgets_and_the_api_an_ingress(base: list[Doc]) -> None:
    kinds = by_kind(base)
    for name in ("api", "rasa", "actions"):
        deployment = kinds["Deployment"][name]
        budget = kinds["PodDisruptionBudget"][name]["spec"]
        assert budget["selector"]["matchLabels"] == deployment["spec"]["selector"]["matchLabels"]
        assert budget["minAvailable"] < deployment["spec"]["replicas"]
    [rule] = kinds["Ingress"]["api"]["spec"]["rules"]
    paths = {p["path"]: p for p in rule["http"]["paths"]}
    assert {p["backend"]["service"]["name"] for p in paths.values()} == {"api"}
    assert {"/api/", "/webhooks/whatsapp", "/console", "/console/review"} <= set(paths)
    # Metrics and readiness are for the cluster only: nothing routes them from outside.
    assert not any(path in ("/", "/metrics", "/readyz") for path in paths)


def database_connections(documents: list[Doc]) -> int:
    """PostgreSQL connections every pod can hold at once with each HPA at its maximum."""
    kinds = by_kind(documents)
    maximum = {name: hpa["spec"]["maxReplicas"] for name, hpa in kinds["HorizontalPodAutoscaler"].items()}

    def env(name: str) -> dict[str, str]:
        return env_of(kinds["Deployment"][name]["spec"]["template"]["spec"]["containers"][0])

    api = env("api")
    # The figures the API itself reads, through its settings and the engine they build.
    options = engine_options(
        Settings(
            database_url="postgresql://x@db/x",
            database_pool_size=int(api["DATABASE_POOL_SIZE"]),
            database_max_overflow=int(api["DATABASE_MAX_OVERFLOW"]),
        )
    )
    per_api_pod = int(api["API_WORKERS"]) * (options["pool_size"] + options["max_overflow"])
    rasa = env("rasa")
    per_rasa_pod = int(rasa["TRACKER_POOL_SIZE"]) + int(rasa["TRACKER_POOL_OVERFLOW"])
    per_actions_pod = 5 + 10  # actions/adapters/sql_db.py's pool_size + max_overflow
    assert 'pool_size": 5, "max_overflow": 10' in (ROOT / "actions/adapters/sql_db.py").read_text()
    migrations = 1
    return (
        maximum["api"] * per_api_pod
        + maximum["rasa"] * per_rasa_pod
        + maximum["actions"] * per_actions_pod
        + migrations
    )


@needs_kubectl
def test_the_autoscalers_maximum_fits_postgres_max_connections(base: list[Doc], cnpg: list[Doc]) -> None:
    [cluster] = by_kind(cnpg)["Cluster"].values()
    max_connections = int(cluster["spec"]["postgresql"]["parameters"]["max_connections"])
    assert database_connections(base) <= max_connections - RESERVED_CONNECTIONS
    # The sum written down for operators is the one the manifests give.
    readme = (BASE / "README.md").read_text()
    assert f"= {database_connections(base)}" in readme and f"max_connections` = {max_connections}" in readme


def test_the_pool_settings_reach_the_engine() -> None:
    options = engine_options(
        Settings(database_url="postgresql://x@db/x", database_pool_size=3, database_max_overflow=0)
    )
    assert (options["pool_size"], options["max_overflow"]) == (3, 0)
    assert engine_options(Settings(database_url="postgresql://x@db/x"))["pool_size"] == 20
    with pytest.raises(ValueError):
        Settings(database_url="postgresql://x@db/x", database_pool_size=0)


@needs_kubectl
def test_the_cnpg_overlay_validates_and_skips_only_the_operators_resources(cnpg: list[Doc]) -> None:
    checked = validate_all(cnpg)
    skipped = {f"{d['kind']}/{d['metadata']['name']}" for d in cnpg} - set(checked)
    assert skipped == {"Cluster/reviewbot-db", "ScheduledBackup/reviewbot-db-daily"}
    assert len(checked) == len(cnpg) - 2


@needs_kubectl
def test_the_cnpg_overlay_runs_three_instances_backs_up_and_points_every_client_at_the_primary(
    cnpg: list[Doc],
) -> None:
    kinds = by_kind(cnpg)
    cluster = kinds["Cluster"]["reviewbot-db"]["spec"]
    assert cluster["instances"] == 3
    assert cluster["affinity"]["podAntiAffinityType"] == "required"
    assert cluster["backup"]["barmanObjectStore"]["destinationPath"].startswith("s3://")
    assert kinds["ScheduledBackup"]["reviewbot-db-daily"]["spec"]["cluster"] == {"name": "reviewbot-db"}
    for name, pod in pod_specs(cnpg).items():
        container = pod["containers"][0]
        [url] = [item for item in container["env"] if item["name"] == "DATABASE_URL"]
        # reviewbot-db-app's uri names the read-write service, reviewbot-db-rw.
        assert url["valueFrom"]["secretKeyRef"] == {"name": "reviewbot-db-app", "key": "uri"}, name
    # The base's other settings survive the patch.
    api = kinds["Deployment"]["api"]["spec"]["template"]["spec"]["containers"][0]
    assert env_of(api)["DATABASE_POOL_SIZE"] == "4"
    # The database pods take connections from the services that use the database, and no other pods.
    policy = kinds["NetworkPolicy"]["reviewbot-db"]["spec"]
    assert policy["podSelector"] == {"matchLabels": {"cnpg.io/cluster": "reviewbot-db"}}
    apps = {
        peer["podSelector"]["matchLabels"].get("app")
        for rule in policy["ingress"]
        for peer in rule["from"]
        if "podSelector" in peer
    }
    assert apps == {"reviewbot-api", "reviewbot-rasa", "reviewbot-actions", "reviewbot-migrate", None}
