"""The action server refuses calls that do not carry ACTION_SERVER_TOKEN, the token only Rasa has.

A real action server (connectors/rasa/action_server.py) in its own process, called over HTTP the
way Rasa 3.6 calls it: `token:` in endpoints.yml becomes `?token=` on the request.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
TOKEN = "action-token-for-the-test"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def call(url: str, body: dict | None = None, headers: dict[str, str] | None = None) -> int:
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(url, data=data, headers={"Content-Type": "application/json", **(headers or {})})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status
    except urllib.error.HTTPError as error:
        return error.code


def ready(url: str) -> bool:
    try:
        return call(url) == 200
    except urllib.error.URLError:  # not listening yet
        return False


def start(port: int, env: dict[str, str]) -> subprocess.Popen[bytes]:
    command = [sys.executable, "-m", "connectors.rasa.action_server", "--actions", "actions", "--port", str(port)]
    base = {k: v for k, v in os.environ.items() if k not in ("ACTION_SERVER_TOKEN", "ENVIRONMENT")}
    return subprocess.Popen(
        command,
        cwd=ROOT,
        env={**base, "PYTHONPATH": str(ROOT), "SANIC_HOST": "127.0.0.1", **env},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    port = free_port()
    database = tmp_path_factory.mktemp("actions") / "actions.db"
    process = start(port, {"ACTION_SERVER_TOKEN": TOKEN, "DATABASE_URL": f"sqlite:///{database}"})
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 90
    try:
        while not ready(f"{url}/health"):
            if process.poll() is not None or time.monotonic() > deadline:
                output = process.stdout.read().decode() if process.stdout else ""
                pytest.fail(f"the action server did not start: {output[-2000:]}")
            time.sleep(0.3)
        yield url
    finally:
        process.terminate()
        process.wait(timeout=30)


def webhook_body() -> dict:
    tracker = {
        "sender_id": "conv-1",
        "slots": {},
        "latest_message": {},
        "events": [],
        "paused": False,
        "followup_action": None,
        "active_loop": {},
        "latest_action_name": None,
    }
    return {"next_action": "action_no_such_action", "sender_id": "conv-1", "tracker": tracker, "domain": {}}


def test_a_call_without_the_token_is_refused(server: str) -> None:
    assert call(f"{server}/webhook", webhook_body()) == 401
    assert call(f"{server}/webhook?token=wrong", webhook_body()) == 401
    assert call(f"{server}/webhook", webhook_body(), {"Authorization": "Bearer wrong"}) == 401
    assert call(f"{server}/actions") == 401


def test_a_call_with_the_token_reaches_the_actions(server: str) -> None:
    # rasa_sdk answers an unknown action with 404: the call got past the token check.
    assert call(f"{server}/webhook?token={TOKEN}", webhook_body()) == 404
    assert call(f"{server}/webhook", webhook_body(), {"Authorization": f"Bearer {TOKEN}"}) == 404
    assert call(f"{server}/actions?token={TOKEN}") == 200


def test_probes_and_metrics_need_no_token(server: str) -> None:
    assert call(f"{server}/health") == 200
    assert call(f"{server}/metrics") == 200


def test_production_refuses_to_start_without_a_token() -> None:
    process = start(free_port(), {"ENVIRONMENT": "production"})
    output, _ = process.communicate(timeout=120)
    assert process.returncode != 0
    assert b"ACTION_SERVER_TOKEN must be set" in output


def test_rasa_sends_the_token_the_action_server_checks() -> None:
    endpoints = yaml.safe_load((ROOT / "rasa_project/endpoints.yml").read_text())
    assert endpoints["action_endpoint"]["token"] == "${ACTION_SERVER_TOKEN}"
    from rasa.utils.endpoints import EndpointConfig

    config = EndpointConfig(url="http://actions:5055/webhook", token=TOKEN)
    assert config.combine_parameters() == {"token": TOKEN}
