"""The real ReviewBot stack for end-to-end tests: action server, Rasa server and the API."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
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
    rasa: Server

    @property
    def rasa_url(self) -> str:
        return self.rasa.url

    def stop(self) -> None:
        self.rasa.stop()
        self.actions.stop()


@contextmanager
def bot_stack(settings: Settings, extra_env: dict[str, str] | None = None) -> Iterator[BotStack]:
    model = trained_model()
    common = {"RASA_TELEMETRY_ENABLED": "false", "PYTHONPATH": str(ROOT), **database_env(settings), **(extra_env or {})}
    action_port, rasa_port = free_port(), free_port()
    actions = start_server(
        "actions",
        [str(ROOT / ".venv-rasa/bin/python"), "-m", "connectors.rasa.action_server", "--actions", "actions"]
        + ["--port", str(action_port)],
        url=f"http://127.0.0.1:{action_port}",
        ready_path="/health",
        env=common,
    )
    try:
        rasa = start_server(
            "rasa",
            [
                str(ROOT / ".venv-rasa/bin/rasa"),
                "run",
                "--enable-api",
                "--auth-token",
                RASA_TOKEN,
                "--interface",
                "127.0.0.1",
                "--port",
                str(rasa_port),
                "--model",
                model,
                "--credentials",
                "rasa_project/credentials.yml",
                "--endpoints",
                "rasa_project/endpoints.yml",
            ],
            url=f"http://127.0.0.1:{rasa_port}",
            ready_path="/webhooks/reviewbot/",
            env={**common, "RASA_TOKEN": RASA_TOKEN, "ACTION_SERVER_URL": f"http://127.0.0.1:{action_port}/webhook"},
        )
    except BaseException:
        actions.stop()
        raise
    stack = BotStack(actions=actions, rasa=rasa)
    try:
        yield stack
    finally:
        stack.stop()


def api_env(settings: Settings, rasa_url: str) -> dict[str, str]:
    return {
        **database_env(settings),
        "ENVIRONMENT": "test",
        "RASA_URL": rasa_url,
        "RASA_TOKEN": RASA_TOKEN,
        "JWT_SECRET": settings.jwt_secret,
        "REDIS_URL": settings.redis_url or "",
    }


@contextmanager
def api_server(settings: Settings, rasa_url: str, extra_env: dict[str, str] | None = None) -> Iterator[Server]:
    port = free_port()
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
            "--no-access-log",
        ],
        url=f"http://127.0.0.1:{port}",
        ready_path="/healthz",
        env={**api_env(settings, rasa_url), **(extra_env or {})},
        timeout=60,
    )
    try:
        yield server
    finally:
        server.stop()
