"""The images carry what production runs and nothing else; docker-compose balances two of each tier.

No Docker engine here: the Dockerfiles are read, their checks run as shell, the compose file is
rendered by `docker-compose config`.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tarfile
import threading
import time
from email.message import Message
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib import metadata
from pathlib import Path

import httpx
import pytest
import yaml
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parents[2]
REQUIREMENTS = ROOT / "requirements"
DEV_TOOLS = {"pytest", "pytest-asyncio", "playwright", "schemathesis", "ruff", "mypy", "hypothesis"}


def pins(lock: str) -> dict[str, str]:
    """name -> version of a lock's `name==version` lines (comments and `-r` includes skipped)."""
    found: dict[str, str] = {}
    for line in (REQUIREMENTS / lock).read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if not line or line.startswith("-r"):
            continue
        name, version = line.split("==")
        found[canonicalize_name(name)] = version
    return found


def top_level(requirements: str) -> list[Requirement]:
    lines = (REQUIREMENTS / requirements).read_text().splitlines()
    stripped = (line.split("#", 1)[0].strip() for line in lines)
    return [Requirement(line) for line in stripped if line and not line.startswith("-r")]


# --- the runtime lock -----------------------------------------------------------------------


def test_the_runtime_lock_has_no_test_or_lint_tools_and_the_dev_lock_adds_them() -> None:
    runtime, dev = pins("api-runtime.lock"), pins("api-dev.lock")
    assert not DEV_TOOLS & set(runtime), DEV_TOOLS & set(runtime)
    assert set(dev) >= DEV_TOOLS
    assert not set(runtime) & set(dev), "a package is pinned in both locks"
    assert "-r api-runtime.lock" in (REQUIREMENTS / "api-dev.lock").read_text().splitlines()


def test_the_locks_pin_what_the_environment_runs() -> None:
    """Splitting the lock upgraded nothing: every pin is the version installed in .venv."""
    wrong = {
        name: (version, metadata.version(name))
        for name, version in (pins("api-runtime.lock") | pins("api-dev.lock")).items()
        if metadata.version(name) != version
    }
    assert not wrong


def test_the_runtime_lock_is_exactly_the_closure_of_the_runtime_requirements() -> None:
    """Every dependency (extras and markers as pip evaluates them) is pinned, and nothing else."""
    wanted: dict[str, set[str]] = {}
    queue = [(canonicalize_name(r.name), set(r.extras)) for r in top_level("api-runtime.txt")]
    while queue:
        name, extras = queue.pop()
        if name in wanted and extras <= wanted[name]:
            continue
        wanted[name] = wanted.get(name, set()) | extras
        for spec in metadata.requires(name) or []:
            requirement = Requirement(spec)
            active = requirement.marker is None or any(
                requirement.marker.evaluate({"extra": extra}) for extra in wanted[name] | {""}
            )
            if active:
                queue.append((canonicalize_name(requirement.name), set(requirement.extras)))
    runtime = set(pins("api-runtime.lock"))
    assert set(wanted) - runtime == set(), "needed at run time but not in api-runtime.lock"
    assert runtime - set(wanted) == set(), "in api-runtime.lock but nothing at run time needs it"


# Runs in a child interpreter of .venv with every package outside the runtime lock made unimportable, as in
# the image: an optional import (httpx's CLI tries rich) falls back there as it would, a needed one fails.
IMPORT_EVERY_API_MODULE = """
import importlib, json, pathlib, sys
blocked = set(json.loads(sys.argv[1]))

class OutsideTheRuntimeLock:
    @staticmethod
    def find_spec(name, path=None, target=None):
        if name.partition(".")[0] in blocked:
            raise ModuleNotFoundError(f"No module named {name!r} (not in api-runtime.lock)", name=name)
        return None

sys.meta_path.insert(0, OutsideTheRuntimeLock)
names = ["connectors.rasa.client", "connectors.rasa.outcome"]
for root in ("conversation_api", "connectors/whatsapp"):
    for path in sorted(pathlib.Path(root).rglob("*.py")):
        parts = path.with_suffix("").parts
        names.append(".".join(parts[:-1] if parts[-1] == "__init__" else parts))
for name in names:
    importlib.import_module(name)
print(json.dumps(len(names)))
"""


def test_every_module_of_the_api_imports_with_only_the_runtime_lock() -> None:
    """Imports every module of the API and the WhatsApp connector with the dev-only packages hidden.

    (A fresh venv from the runtime lock alone takes ~30 s to build; hiding the rest is the same
    check in a second.)
    """
    runtime = set(pins("api-runtime.lock"))
    owners = metadata.packages_distributions()
    blocked = sorted(
        module
        for module, packages in owners.items()
        if not {canonicalize_name(package) for package in packages} & runtime
    )
    assert {"pytest", "playwright", "schemathesis", "mypy", "rich"} <= set(blocked)
    result = subprocess.run(
        [sys.executable, "-c", IMPORT_EVERY_API_MODULE, json.dumps(blocked)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert int(result.stdout.splitlines()[-1]) > 50


def test_the_api_image_installs_only_the_runtime_lock() -> None:
    dockerfile = (ROOT / "docker/api.Dockerfile").read_text()
    assert "pip install --no-cache-dir -r requirements/api-runtime.lock" in dockerfile
    assert "api-dev" not in dockerfile and "requirements/api.lock" not in dockerfile
    makefile = (ROOT / "Makefile").read_text()
    rule = next(line for line in makefile.splitlines() if line.startswith(".venv/.installed:"))
    assert "requirements/api-runtime.lock" in rule and "requirements/api-dev.lock" in rule


# --- the Rasa image carries the tested model ---------------------------------------------------

MODEL_NAME = re.compile(r"models/reviewbot-[0-9a-f]{16}\.tar\.gz")


def training_inputs(tmp_path: Path) -> Path:
    """A copy of what the Rasa image copies before its check: config, domain, data, NLU components, the script."""
    app = tmp_path / "app"
    (app / "scripts").mkdir(parents=True)
    shutil.copy(ROOT / "config.yml", app)
    shutil.copy(ROOT / "domain.yml", app)
    shutil.copytree(ROOT / "rasa_project", app / "rasa_project", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copytree(ROOT / "connectors", app / "connectors", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy2(ROOT / "scripts/model-name.sh", app / "scripts")
    return app


def model_name(app: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["sh", "scripts/model-name.sh", *args], cwd=app, capture_output=True, text=True)


def test_the_rasa_image_copies_the_model_instead_of_training_one() -> None:
    lines = [line.strip() for line in (ROOT / "docker/rasa.Dockerfile").read_text().splitlines()]
    assert not any("rasa train" in line for line in lines if not line.startswith("#"))
    check = lines.index('RUN scripts/model-name.sh --check "$MODEL"')
    copy = lines.index("COPY --chown=reviewbot ${MODEL} models/")
    # The hash is taken over the inputs the image carries, before the model is copied.
    inputs = [lines.index("COPY --chown=reviewbot config.yml domain.yml ./"), lines.index("ARG MODEL")]
    assert max(inputs) < check < copy
    assert "--model models/reviewbot.tar.gz" in lines[-1] and lines[-1].startswith("CMD ")
    ignore = (ROOT / ".dockerignore").read_text().splitlines()
    # Docker's last matching pattern wins: the model files come back into the build context.
    assert ignore.index("!models/reviewbot-*.tar.gz") > ignore.index("models")


def test_the_build_check_accepts_only_the_model_of_the_copied_inputs(tmp_path: Path) -> None:
    app = training_inputs(tmp_path)
    named = model_name(app)
    assert named.returncode == 0, named.stderr
    name = named.stdout.strip()
    assert MODEL_NAME.fullmatch(name)
    assert model_name(ROOT).stdout.strip() == name  # the checkout and the image's copy agree
    current = ROOT / "models/current.tar.gz"
    if current.is_symlink():  # `make train` ran: the image would carry the very file it made
        assert f"models/{current.readlink()}" == name
    assert model_name(app, "--check", name).returncode == 0

    missing = model_name(app, "--check", "")
    assert missing.returncode == 1 and f"--build-arg MODEL={name}" in missing.stderr

    story = next((app / "rasa_project/data").rglob("*.yml"))
    story.write_text(story.read_text() + "\n# one more line\n")
    stale = model_name(app, "--check", name)
    assert stale.returncode == 1 and "was not trained on these inputs" in stale.stderr
    assert model_name(app).stdout.strip() != name


def test_the_build_links_the_named_model_and_refuses_a_truncated_one(tmp_path: Path) -> None:
    lines = (ROOT / "docker/rasa.Dockerfile").read_text().splitlines()
    step = next(line.removeprefix("RUN ") for line in lines if line.startswith("RUN ln -s"))
    payload = tmp_path / "metadata.json"
    payload.write_bytes(os.urandom(200_000))
    name = "models/reviewbot-0123456789abcdef.tar.gz"

    def build(app: Path, truncate: bool) -> subprocess.CompletedProcess[str]:
        (app / "models").mkdir(parents=True)
        with tarfile.open(app / name, "w:gz") as archive:
            archive.add(payload, arcname="metadata.json")
        if truncate:
            data = (app / name).read_bytes()
            (app / name).write_bytes(data[: len(data) // 2])
        env = {"PATH": "/usr/bin:/bin", "MODEL": name}
        return subprocess.run(["sh", "-c", step], cwd=app, env=env, capture_output=True, text=True)

    good = build(tmp_path / "good", truncate=False)
    assert good.returncode == 0, good.stderr
    assert (tmp_path / "good/models/reviewbot.tar.gz").resolve() == (tmp_path / "good" / name).resolve()
    assert build(tmp_path / "bad", truncate=True).returncode != 0


@pytest.mark.skipif(shutil.which("make") is None, reason="make not installed")
def test_make_image_model_prints_the_model_file_once_make_train_made_it(tmp_path: Path) -> None:
    app = training_inputs(tmp_path)
    shutil.copy(ROOT / "Makefile", app)
    before = subprocess.run(["make", "-s", "image-model"], cwd=app, capture_output=True, text=True)
    assert before.returncode != 0 and "run make train" in before.stderr
    name = model_name(app).stdout.strip()
    (app / "models").mkdir()
    (app / name).write_bytes(b"model")
    after = subprocess.run(["make", "-s", "image-model"], cwd=app, capture_output=True, text=True)
    assert after.returncode == 0, after.stderr
    assert after.stdout.strip() == name


# --- docker-compose: two of each tier behind HAProxy -------------------------------------------

COMPOSE_ENV = {
    "POSTGRES_PASSWORD": "pw",
    "RASA_TOKEN": "rasa-token",
    "ACTION_SERVER_TOKEN": "action-token",
    "JWT_SECRET": "j" * 40,
    "GRAFANA_ADMIN_PASSWORD": "g" * 16,
    "MODEL": "models/reviewbot-0123456789abcdef.tar.gz",
    "PATH": "/usr/bin:/bin",
}
HAPROXY = os.environ.get("HAPROXY") or shutil.which("haproxy")
needs_haproxy = pytest.mark.skipif(HAPROXY is None, reason="haproxy (Debian package) not installed; or set HAPROXY")


@pytest.mark.skipif(shutil.which("docker-compose") is None, reason="docker-compose (Debian package) not installed")
def test_compose_runs_two_apis_and_two_rasas_behind_the_load_balancer_with_the_given_model() -> None:
    result = subprocess.run(["docker-compose", "config"], cwd=ROOT, env=COMPOSE_ENV, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    services = yaml.safe_load(result.stdout)["services"]
    assert services["api"]["deploy"]["replicas"] == 2
    assert services["rasa"]["deploy"]["replicas"] == 2
    # Only the load balancer (and the dashboards) listen on the host: replicas cannot share a port.
    published = {name for name, service in services.items() if service.get("ports")}
    assert published == {"lb", "grafana", "prometheus"}
    assert [p["published"] for p in services["lb"]["ports"]] == [8000]
    assert services["lb"]["image"].startswith("haproxy:2.6")
    config = f"{ROOT}/deploy/lb/haproxy.cfg:/usr/local/etc/haproxy/haproxy.cfg:ro"
    assert services["lb"]["volumes"] == [config]
    api = services["api"]["environment"]
    assert api["RASA_URL"] == "http://lb:5005" and "RASA_URLS" not in api
    # Both images come from the one Rasa build, carrying the file named by MODEL; nothing trains.
    for name in ("rasa", "actions"):
        assert services[name]["build"]["args"] == {"MODEL": COMPOSE_ENV["MODEL"]}
        assert "train" not in str(services[name].get("command", ""))
    assert "--model models/reviewbot.tar.gz" in services["rasa"]["command"]
    # Migrations once, before the replicas, instead of each replica racing the other.
    assert services["migrate"]["command"] == ["alembic", "upgrade", "heads"]
    assert services["api"]["depends_on"]["migrate"]["condition"] == "service_completed_successfully"
    assert services["migrate"]["image"] == services["api"]["image"]


def haproxy_config() -> str:
    return (ROOT / "deploy/lb/haproxy.cfg").read_text()


@needs_haproxy
def test_haproxy_accepts_the_config() -> None:
    assert HAPROXY is not None
    result = subprocess.run([HAPROXY, "-c", "-f", str(ROOT / "deploy/lb/haproxy.cfg")], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
    config = "\n".join(line.split("#", 1)[0] for line in haproxy_config().splitlines())
    assert "server-template api 4 api:8000" in config and "server-template rasa 4 rasa:5005" in config
    # Nothing that holds, rewrites or caps a request body.
    for directive in ("http-buffer-request", "compression", "req.body", "http-request set-body", "tune.bufsize"):
        assert directive not in config


class Replica(ThreadingHTTPServer):
    """A stand-in API or Rasa replica: answers its health route as told, records what it was sent."""

    def __init__(self, name: str, health_path: str, *, healthy: bool) -> None:
        self.name, self.health_path, self.healthy = name, health_path, healthy
        self.received: list[tuple[str, bytes, Message]] = []
        super().__init__(("127.0.0.1", 0), ReplicaHandler)
        threading.Thread(target=self.serve_forever, daemon=True).start()

    def handle_error(self, request: object, client_address: object) -> None:
        pass  # HAProxy's health checks hang up once they have read the status line


class ReplicaHandler(BaseHTTPRequestHandler):
    server: Replica
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: object) -> None:
        pass

    def answer(self, status: int, body: bytes) -> None:
        self.send_response(status)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self) -> None:
        if self.path == self.server.health_path:
            self.answer(200 if self.server.healthy else 503, b"{}")
            return
        self.server.received.append((self.path, b"", self.headers))
        self.answer(200, self.server.name.encode())

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        self.server.received.append((self.path, body, self.headers))
        self.answer(200, hashlib.sha256(body).hexdigest().encode())


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@needs_haproxy
def test_haproxy_sends_traffic_only_to_ready_replicas_and_passes_the_webhook_body_untouched(tmp_path: Path) -> None:
    """The real config, with the replicas on local ports instead of Docker's DNS and faster checks."""
    assert HAPROXY is not None
    api_ready, api_unready = Replica("api-1", "/readyz", healthy=True), Replica("api-2", "/readyz", healthy=False)
    rasa_loading = Replica("rasa-1", "/webhooks/reviewbot/", healthy=False)
    rasa_ready = Replica("rasa-2", "/webhooks/reviewbot/", healthy=True)
    api_port, rasa_port = free_port(), free_port()

    def servers(prefix: str, replicas: list[Replica]) -> str:
        return "\n".join(f"  server {prefix}{i} 127.0.0.1:{r.server_port}" for i, r in enumerate(replicas))

    config = haproxy_config()
    config = config.replace("server-template api 4 api:8000", servers("api", [api_ready, api_unready]))
    config = config.replace("server-template rasa 4 rasa:5005", servers("rasa", [rasa_loading, rasa_ready]))
    config = config.replace("bind :8000", f"bind 127.0.0.1:{api_port}").replace(
        "bind :5005", f"bind 127.0.0.1:{rasa_port}"
    )
    config = config.replace(" resolvers docker init-addr none", "").replace("inter 2s", "inter 100ms")
    config = config.replace("log stdout format raw local0 info", "")
    assert config.count("127.0.0.1:") == 6
    (tmp_path / "haproxy.cfg").write_text(config)
    proxy = subprocess.Popen([HAPROXY, "-f", str(tmp_path / "haproxy.cfg")], stderr=subprocess.PIPE, text=True)
    try:
        with httpx.Client(timeout=5) as client:
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline:  # until the failing replicas' checks have taken them out
                try:
                    names = {client.get(f"http://127.0.0.1:{api_port}/api/v1/x").text for _ in range(6)}
                    if names == {"api-1"}:
                        break
                except httpx.TransportError:
                    pass
                time.sleep(0.1)
            before = len(api_ready.received)
            answers = [client.get(f"http://127.0.0.1:{api_port}/api/v1/conversations").text for _ in range(20)]
            assert answers == ["api-1"] * 20 and len(api_ready.received) == before + 20
            unready_traffic = [path for path, _, _ in api_unready.received if path != "/readyz"]
            assert len(unready_traffic) <= 6  # only what the first round sent before the checks settled

            # /metrics has no authentication: refused from outside, never forwarded.
            for path in ("/metrics", "/metrics/", "/metrics?name=x"):
                assert client.get(f"http://127.0.0.1:{api_port}{path}").status_code == 403
            assert not [p for p, _, _ in api_ready.received if p.startswith("/metrics")]

            # Meta's webhook: arbitrary bytes up to the 1 MiB cap, signed over exactly those bytes.
            body = os.urandom(1_048_576 - 1)
            signature = "sha256=" + hmac.new(b"app-secret", body, hashlib.sha256).hexdigest()
            headers = {"X-Hub-Signature-256": signature, "Content-Type": "application/json"}
            reply = client.post(f"http://127.0.0.1:{api_port}/webhooks/whatsapp", content=body, headers=headers)
            assert reply.status_code == 200 and reply.text == hashlib.sha256(body).hexdigest()
            path, received, sent_headers = api_ready.received[-1]
            assert path == "/webhooks/whatsapp" and received == body
            assert sent_headers["X-Hub-Signature-256"] == signature
            assert sent_headers["Content-Length"] == str(len(body))

            # The API's turns reach only the Rasa replica whose model is loaded.
            for _ in range(10):
                turn = client.post(f"http://127.0.0.1:{rasa_port}/webhooks/reviewbot/webhook", json={"message": "hi"})
                assert turn.status_code == 200
            assert len([p for p, _, _ in rasa_ready.received if p == "/webhooks/reviewbot/webhook"]) >= 10 - 6
            assert not [p for p, _, _ in rasa_loading.received if p == "/webhooks/reviewbot/webhook"][6:]
    finally:
        proxy.terminate()
        proxy.wait(timeout=10)
        for replica in (api_ready, api_unready, rasa_loading, rasa_ready):
            replica.shutdown()
            replica.server_close()
