"""Throughput and latency of the conversation API and of Rasa's own REST webhook, in one run.

Starts the real stack on PostgreSQL (a throwaway schema) and Redis: action server,
Rasa server with the trained model, and the API. Drives, with wrk:
  1. Rasa's REST webhook directly (the baseline),
  2. POST /api/v1/messages through the API to the same Rasa,
  3. the API alone, its bot answered by an instant local stand-in (benchmarks/instant_bot.py):
     POST /api/v1/messages and GET history.
Prints msg/s, p50/p99 latency, the API/Rasa ratio and each process's resident memory.

Usage: .venv/bin/python benchmarks/bench_messages.py [--duration 20] [--connections 16] [--workers 2]
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from conversation_api.auth import mint_token  # noqa: E402
from tests.support.database import (  # noqa: E402
    drop_schema,
    migrate,
    new_schema_name,
    postgres_settings,
)
from tests.support.processes import Server, free_port, start_server  # noqa: E402
from tests.support.stack import RASA_TOKEN, api_env, database_env, trained_model  # noqa: E402

WRK = ROOT / "benchmarks" / "wrk"
USER = "bench-user"
CONVERSATIONS = 128


@dataclass
class Result:
    name: str
    rate: float
    p50_ms: float
    p99_ms: float
    requests: int
    errors: int

    def line(self) -> str:
        return (f"{self.name:<44} {self.rate:>9.1f} /s   p50 {self.p50_ms:>7.1f} ms   p99 {self.p99_ms:>7.1f} ms"
                f"   ({self.requests} requests, {self.errors} errors)")


def to_ms(value: str) -> float:
    number, unit = re.fullmatch(r"([\d.]+)(us|ms|s|m)", value).groups()  # type: ignore[union-attr]
    return float(number) * {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60000.0}[unit]


def wrk(name: str, url: str, script: Path, *, duration: int, connections: int, threads: int,
        env: dict[str, str]) -> Result:
    command = ["wrk", f"-t{threads}", f"-c{connections}", f"-d{duration}s", "--latency", "--timeout", "10s",
               "-s", str(script), url]
    out = subprocess.run(command, capture_output=True, text=True, check=True,
                         env={**os.environ, **env, "BENCH_THREADS": str(threads)}).stdout
    rate = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    p50 = to_ms(re.search(r"\s50%\s+(\S+)", out).group(1))  # type: ignore[union-attr]
    p99 = to_ms(re.search(r"\s99%\s+(\S+)", out).group(1))  # type: ignore[union-attr]
    requests = int(re.search(r"(\d+) requests in", out).group(1))  # type: ignore[union-attr]
    errors = 0
    if match := re.search(r"Non-2xx or 3xx responses: (\d+)", out):
        errors += int(match.group(1))
    if match := re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out):
        errors += sum(int(g) for g in match.groups())
    return Result(name, rate, p50, p99, requests, errors)


def rss_mb(pid: int) -> float:
    """Resident memory of a process and its children (uvicorn workers), in MiB."""
    pids = [pid] + [int(p) for p in subprocess.run(["pgrep", "-P", str(pid)], capture_output=True,
                                                    text=True).stdout.split()]
    total = 0
    for each in pids:
        try:
            status = Path(f"/proc/{each}/status").read_text()
        except OSError:
            continue
        total += int(re.search(r"VmRSS:\s+(\d+) kB", status).group(1))  # type: ignore[union-attr]
    return total / 1024


def start_api(settings, rasa_url: str, workers: int) -> Server:  # type: ignore[no-untyped-def]
    port = free_port()
    return start_server(
        "bench-api",
        [str(ROOT / ".venv/bin/uvicorn"), "--factory", "conversation_api.main:app_factory", "--host", "127.0.0.1",
         "--port", str(port), "--workers", str(workers), "--no-access-log", "--log-level", "warning"],
        url=f"http://127.0.0.1:{port}", ready_path="/healthz",
        env={**api_env(settings, rasa_url), "LOG_LEVEL": "WARNING"}, timeout=60,
    )


def create_conversations(api_url: str, token: str, count: int) -> list[str]:
    ids = []
    with httpx.Client(base_url=api_url, headers={"Authorization": f"Bearer {token}"}, timeout=30) as client:
        for _ in range(count):
            response = client.post("/api/v1/messages", json={"conversation_id": "", "user_id": USER,
                                                             "message": "hello"})
            response.raise_for_status()
            ids.append(response.json()["conversation_id"])
    return ids


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--duration", type=int, default=20, help="seconds per wrk run")
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--workers", type=int, default=2, help="API worker processes")
    parser.add_argument("--redis-url", default=os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/0"))
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        sys.exit("wrk is needed: apt-get install wrk")

    schema = new_schema_name()
    settings = postgres_settings(schema, redis_url=args.redis_url)
    migrate(settings)
    workdir = Path(tempfile.mkdtemp(prefix="reviewbot-bench-"))
    credentials = workdir / "credentials.yml"
    # The benchmark also opens Rasa's stock REST channel, to compare against it.
    credentials.write_text((ROOT / "rasa_project/credentials.yml").read_text() + "\nrest:\n")
    servers: list[Server] = []
    common = {"RASA_TELEMETRY_ENABLED": "false", "PYTHONPATH": str(ROOT), **database_env(settings)}
    try:
        model = trained_model()
        action_port, rasa_port = free_port(), free_port()
        servers.append(start_server(
            "bench-actions", [str(ROOT / ".venv-rasa/bin/python"), "-m", "rasa_sdk", "--actions", "actions",
                              "--port", str(action_port)],
            url=f"http://127.0.0.1:{action_port}", ready_path="/health", env=common))
        rasa = start_server(
            "bench-rasa", [str(ROOT / ".venv-rasa/bin/rasa"), "run", "--enable-api", "--auth-token", RASA_TOKEN,
                           "--interface", "127.0.0.1", "--port", str(rasa_port), "--model", model,
                           "--credentials", str(credentials), "--endpoints", "rasa_project/endpoints.yml"],
            url=f"http://127.0.0.1:{rasa_port}", ready_path="/webhooks/reviewbot/",
            env={**common, "RASA_TOKEN": RASA_TOKEN, "ACTION_SERVER_URL": f"http://127.0.0.1:{action_port}/webhook",
                 "LOG_LEVEL": "WARNING"})
        servers.append(rasa)
        api = start_api(settings, rasa.url, args.workers)
        servers.append(api)

        token = mint_token(secret=settings.jwt_secret, user_id=USER, role="client", ttl_seconds=3600)
        ids_file = workdir / "ids.txt"
        ids_file.write_text("\n".join(create_conversations(api.url, token, CONVERSATIONS)) + "\n")
        env = {"BENCH_TOKEN": token, "BENCH_USER": USER, "BENCH_IDS": str(ids_file), "BENCH_TEXT": "hello",
               "BENCH_SENDERS": str(CONVERSATIONS)}
        run = dict(duration=args.duration, connections=args.connections, threads=args.threads, env=env)

        # Warm both paths, then measure Rasa and the API back to back on the same model.
        wrk("warm-up", rasa.url, WRK / "rasa_rest.lua", **{**run, "duration": 3})
        wrk("warm-up", api.url, WRK / "api_post.lua", **{**run, "duration": 3})
        rasa_rest = wrk("Rasa REST webhook (baseline)", rasa.url, WRK / "rasa_rest.lua", **run)
        through_api = wrk("API POST /messages -> real Rasa, PostgreSQL", api.url, WRK / "api_post.lua", **run)
        # One request at a time: latency without queueing, so the difference is what the API adds.
        single = {**run, "connections": 1, "threads": 1, "duration": max(args.duration // 2, 5)}
        rasa_single = wrk("Rasa REST webhook, 1 connection", rasa.url, WRK / "rasa_rest.lua", **single)
        api_single = wrk("API POST /messages, 1 connection", api.url, WRK / "api_post.lua", **single)
        memory = {"rasa": rss_mb(rasa.process.pid), "actions": rss_mb(servers[0].process.pid),
                  f"api ({args.workers} workers)": rss_mb(api.process.pid)}

        # The API alone: restart it against the instant stand-in bot.
        api.stop()
        servers.remove(api)
        bot_port = free_port()
        servers.append(start_server(
            "bench-instant-bot", [sys.executable, str(ROOT / "benchmarks/instant_bot.py"), str(bot_port)],
            url=f"http://127.0.0.1:{bot_port}", ready_path="/webhooks/reviewbot/", env={}))
        alone = start_api(settings, f"http://127.0.0.1:{bot_port}", args.workers)
        servers.append(alone)
        wrk("warm-up", alone.url, WRK / "api_post.lua", **{**run, "duration": 3})
        alone_post = wrk("API alone POST /messages (instant bot)", alone.url, WRK / "api_post.lua", **run)
        alone_get = wrk("API alone GET history (20 messages)", alone.url, WRK / "api_history.lua", **run)
        memory[f"api alone ({args.workers} workers)"] = rss_mb(alone.process.pid)

        print()
        print(f"ReviewBot message benchmark — {os.cpu_count()} cores, wrk -t{args.threads} -c{args.connections} "
              f"-d{args.duration}s, API workers {args.workers}, PostgreSQL + Redis, message 'hello'")
        for result in (rasa_rest, through_api, rasa_single, api_single, alone_post, alone_get):
            print(result.line())
        print(f"API / Rasa throughput ratio: {through_api.rate / rasa_rest.rate:.2f}")
        print(f"API added latency, one request at a time: p50 {api_single.p50_ms - rasa_single.p50_ms:+.1f} ms, "
              f"p99 {api_single.p99_ms - rasa_single.p99_ms:+.1f} ms")
        print(f"API added latency under load (c{args.connections}, includes queueing): "
              f"p50 {through_api.p50_ms - rasa_rest.p50_ms:+.1f} ms, "
              f"p99 {through_api.p99_ms - rasa_rest.p99_ms:+.1f} ms")
        print("Resident memory after the runs: " + ", ".join(f"{k} {v:.0f} MiB" for k, v in memory.items()))
    finally:
        for server in reversed(servers):
            server.stop()
        drop_schema(schema)
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
