"""A Redis server of the test's own, which it may kill: the shared one on 6379 is never touched."""

from __future__ import annotations

import subprocess
import time

import redis

from tests.support.processes import LOG_DIR, free_port


class RedisProcess:
    """`redis-server` on a spare port, without persistence, so a restart comes back empty as after a crash."""

    def __init__(self, port: int | None = None) -> None:
        self.port = port or free_port()
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self, timeout: float = 10) -> RedisProcess:
        LOG_DIR.mkdir(parents=True, exist_ok=True)
        log = (LOG_DIR / f"redis-{self.port}.log").open("ab")
        command = ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
        self.process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + timeout
        client = redis.Redis.from_url(self.url, socket_connect_timeout=0.5)
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"redis-server on port {self.port} exited with {self.process.returncode}")
            try:
                if client.ping():
                    return self
            except redis.RedisError:
                time.sleep(0.1)
        self.kill()
        raise RuntimeError(f"redis-server on port {self.port} did not answer within {timeout}s")

    def kill(self) -> None:
        """kill -9, as a crash or an OOM kill would do it."""
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait()

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=10)
