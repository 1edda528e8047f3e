"""Start real servers as subprocesses for the tests, and wait until they answer."""

from __future__ import annotations

import os
import socket
import subprocess
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[2]
LOG_DIR = ROOT / "artifacts" / "logs"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Server:
    name: str
    process: subprocess.Popen[bytes]
    url: str
    log_path: Path
    command: Sequence[str] = ()
    env: Mapping[str, str] = field(default_factory=dict)
    ready_path: str = "/"

    def log_tail(self, lines: int = 40) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    def kill(self) -> None:
        """kill -9: no clean shutdown, as a crash or an OOM kill would do it."""
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait()

    def restart(self, timeout: float = 180) -> Server:
        """Start the same command again, on the same port, and wait until it answers."""
        self.stop()
        return start_server(
            self.name, self.command, url=self.url, ready_path=self.ready_path, env=self.env, timeout=timeout
        )


def start_server(
    name: str, command: Sequence[str], *, url: str, ready_path: str, env: Mapping[str, str], timeout: float = 180
) -> Server:
    """Start `command`, then poll `url + ready_path` until it answers 200 or the process dies."""
    LOG_DIR.mkdir(parents=True, exist_ok=True)
    log_path = LOG_DIR / f"{name}-{os.getpid()}.log"
    log = log_path.open("ab")
    process = subprocess.Popen(list(command), cwd=ROOT, env={**os.environ, **env}, stdout=log, stderr=subprocess.STDOUT)
    server = Server(name, process, url, log_path, tuple(command), dict(env), ready_path)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{name} exited with {process.returncode}:\n{server.log_tail()}")
        try:
            if httpx.get(url + ready_path, timeout=2).status_code == 200:
                return server
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    server.stop()
    raise RuntimeError(f"{name} did not become ready within {timeout}s:\n{server.log_tail()}")
