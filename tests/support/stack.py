"""The real ReviewBot stack for end-to-end tests: action server, Rasa server and the API."""

from __future__ import annotations

import subprocess
import tempfile
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass

from conversation_api.settings import Settings
from tests.support.processes import ROOT, Server, free_port, start_server

RASA_TOKEN = "test-rasa-token"


def trained_model() -> str:
    """Path of the model for the current bot inputs (trains only if they changed)."""
    result = subprocess.run(
        [str(ROOT / "scripts" / "train-model.sh")], cwd=ROOT, check=True, capture_output=True, text=True
    )
    return result.stdout.strip().splitlines()[-1]


def database_env(settings: Settings) -> dict[str, str]:
    env = {"DATABASE_URL": settings.database_url}
    if settings.database_schema:
        env["DATABASE_SCHEMA"] = settings.database_schema
    return env


@dataclass
class BotStack:
    actions: Server
    rasas: list[Server]

    @property
    def rasa(self) -> Server:
        return self.rasas[0]

    @property
    def rasa_url(self) -> str:
        return self.rasa.url

    @property
    def rasa_urls(self) -> str:
        """Every replica, as RASA_URLS takes them."""
        return ",".join(server.url for server in self.rasas)

    def restart_rasa(self, index: int = 0) -> Server:
        self.rasas[index] = self.rasas[index].restart()
        return self.rasas[index]

    def stop(self) -> None:
        with ThreadPoolExecutor(max_workers=len(self.rasas)) as pool:
            list(pool.map(Server.stop, self.rasas))
        self.actions.stop()


def rasa_command(model: str, port: int, credentials: str = "rasa_project/credentials.yml") -> list[str]:
    return [
        str(ROOT / ".venv-rasa/bin/rasa"),
        "run",
        "--enable-api",
        "--auth-token",
        RASA_TOKEN,
        "--interface",
        "127.0.0.1",
        "--port",
        str(port),
        "--model",
        model,
        "--credentials",
        credentials,
        "--endpoints",
        "rasa_project/endpoints.yml",
    ]


def start_rasa_replicas(
    model: str,
    *,
    envs: list[dict[str, str]],
    name: str = "rasa",
    credentials: str = "rasa_project/credentials.yml",
) -> list[Server]:
    """One Rasa server per environment in `envs`, each on its own port, loading the model in parallel."""

    def start(index: int) -> Server:
        port = free_port()
        return start_server(
            f"{name}-{index}",
            rasa_command(model, port, credentials),
            url=f"http://127.0.0.1:{port}",
            ready_path="/webhooks/reviewbot/",
            env=envs[index],
        )

    with ThreadPoolExecutor(max_workers=len(envs)) as pool:
        futures = [pool.submit(start, i) for i in range(len(envs))]
        servers, errors = [], []
        for future in futures:
            try:
                servers.append(future.result())
            except Exception as exc:  # stop the ones that did start before reporting
                errors.append(exc)
    if errors:
        for server in servers:
            server.stop()
        raise errors[0]
    return servers


@contextmanager
def bot_stack(settings: Settings, extra_env: dict[str, str] | None = None, *, replicas: int = 1) -> Iterator[BotStack]:
    """The real action server and `replicas` Rasa servers sharing the tracker store (and Redis locks
    when the settings have a REDIS_URL)."""
    model = trained_model()
    common = {
        "RASA_TELEMETRY_ENABLED": "false",
        "PYTHONPATH": str(ROOT),
        **database_env(settings),
        "REDIS_URL": settings.redis_url or "",
        # Rasa sends it (endpoints.yml) and the action server refuses calls without it.
        "ACTION_SERVER_TOKEN": "stack-action-server-token",
        **(extra_env or {}),
    }
    action_port = free_port()
    actions = start_server(
        "actions",
        [str(ROOT / ".venv-rasa/bin/python"), "-m", "connectors.rasa.action_server", "--actions", "actions"]
        + ["--port", str(action_port)],
        url=f"http://127.0.0.1:{action_port}",
        ready_path="/health",
        env=common,
    )
    try:
        env = {**common, "RASA_TOKEN": RASA_TOKEN, "ACTION_SERVER_URL": f"http://127.0.0.1:{action_port}/webhook"}
        rasas = start_rasa_replicas(model, envs=[env] * replicas)
    except BaseException:
        actions.stop()
        raise
    stack = BotStack(actions=actions, rasas=rasas)
    try:
        yield stack
    finally:
        stack.stop()


def api_env(settings: Settings, rasa_url: str) -> dict[str, str]:
    """The API's environment; `rasa_url` may list several replicas, comma-separated."""
    return {
        **database_env(settings),
        "ENVIRONMENT": "test",
        "RASA_URL": rasa_url.split(",")[0],
        "RASA_URLS": rasa_url,
        "RASA_TOKEN": RASA_TOKEN,
        "JWT_SECRET": settings.jwt_secret,
        "REDIS_URL": settings.redis_url or "",
        "RATE_LIMIT_MESSAGES": settings.rate_limit_messages or "",
        "MAX_BODY_BYTES": str(settings.max_body_bytes),
    }


@contextmanager
def api_server(
    settings: Settings, rasa_url: str, extra_env: dict[str, str] | None = None, *, workers: int = 1
) -> Iterator[Server]:
    """The API as `uvicorn --workers N`, as the Dockerfile runs it; with several workers their metrics
    are merged through a fresh PROMETHEUS_MULTIPROC_DIR, as in docker-compose and Kubernetes."""
    port = free_port()
    env = {**api_env(settings, rasa_url), "API_WORKERS": str(workers), **(extra_env or {})}
    with tempfile.TemporaryDirectory(prefix="reviewbot-metrics-") as metrics_dir:
        if workers > 1:
            env.setdefault("PROMETHEUS_MULTIPROC_DIR", metrics_dir)
        server = start_server(
            "api",
            [
                str(ROOT / ".venv/bin/uvicorn"),
                "--factory",
                "conversation_api.main:app_factory",
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
                "--workers",
                str(workers),
                "--no-access-log",
            ],
            url=f"http://127.0.0.1:{port}",
            ready_path="/healthz",
            env=env,
            timeout=60,
        )
        try:
            yield server
        finally:
            server.stop()
