"""The API's CPU per request: what one POST /api/v1/messages and one history GET cost the API process.

Starts, on a throwaway PostgreSQL schema and the local Redis, the instant stand-in
bot (benchmarks/instant_bot.py) and the API as one uvicorn process, creates a few
conversations, then sends requests one at a time and reads the process's CPU
(utime + stime from /proc/<pid>/stat) before and after. CPU per request holds
still when the machine is busy with other work; the latencies do not.
The API's background tasks (outbox relay, sweepers) count too: they are part of
what a message costs.

Usage: .venv/bin/python benchmarks/api_cpu.py [--messages 400] [--conversations 8] [--rounds 1]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from conversation_api.auth import mint_token  # noqa: E402
from tests.support.database import drop_schema, migrate, new_schema_name, postgres_settings  # noqa: E402
from tests.support.processes import Server, free_port, start_server  # noqa: E402
from tests.support.stack import api_server  # noqa: E402

USER = "bench-user"
TICK = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    """utime + stime of `pid` (fields 14 and 15 of /proc/<pid>/stat)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK


def measure(pid: int, count: int, request: Callable[[int], None]) -> tuple[float, float]:
    """Run `request(i)` `count` times, one at a time; (API CPU ms per request, p50 latency ms)."""
    latencies = []
    before = cpu_seconds(pid)
    for i in range(count):
        started = time.perf_counter()
        request(i)
        latencies.append((time.perf_counter() - started) * 1000)
    # Let the relay publish what the last requests wrote; its polls count against the messages.
    time.sleep(0.5)
    return (cpu_seconds(pid) - before) * 1000 / count, statistics.median(latencies)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--messages", type=int, default=400, help="POSTs (and GETs) per round")
    parser.add_argument("--conversations", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--log-level", default="INFO", help="the API's LOG_LEVEL (INFO is the default setting)")
    parser.add_argument("--redis-url", default=os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/0"))
    args = parser.parse_args()

    schema = new_schema_name()
    # One user sends every message: the per-user rate limit would measure itself.
    settings = postgres_settings(schema, redis_url=args.redis_url, rate_limit_messages=None)
    migrate(settings)
    bot: Server | None = None
    try:
        bot_port = free_port()
        bot = start_server(
            "bench-instant-bot",
            [sys.executable, str(ROOT / "benchmarks/instant_bot.py"), str(bot_port)],
            url=f"http://127.0.0.1:{bot_port}",
            ready_path="/webhooks/reviewbot/",
            env={},
        )
        with api_server(settings, bot.url, {"LOG_LEVEL": args.log_level}) as api:
            pid = api.process.pid
            token = mint_token(secret=settings.jwt_secret, user_id=USER, role="client", ttl_seconds=3600)
            with httpx.Client(base_url=api.url, headers={"Authorization": f"Bearer {token}"}, timeout=30) as client:

                def post(conversation_id: str) -> str:
                    body = {"conversation_id": conversation_id, "user_id": USER, "message": "hello"}
                    response = client.post("/api/v1/messages", json=body)
                    response.raise_for_status()
                    return str(response.json()["conversation_id"])

                ids = [post("") for _ in range(args.conversations)]

                def send(i: int) -> None:
                    post(ids[i % len(ids)])

                def history(i: int) -> None:
                    path = f"/api/v1/user/{USER}/messages/{ids[i % len(ids)]}"
                    client.get(path, params={"limit": 20}).raise_for_status()

                measure(pid, 100, send)  # warm-up: caches, pool, a full page of history
                measure(pid, 50, history)
                idle = cpu_seconds(pid)
                time.sleep(2)
                idle_ms_per_s = (cpu_seconds(pid) - idle) * 1000 / 2
                print(
                    f"API CPU per request — 1 uvicorn process, instant bot, PostgreSQL + Redis, "
                    f"{args.messages} requests one at a time over {len(ids)} conversations, LOG_LEVEL={args.log_level}"
                )
                print(f"idle: {idle_ms_per_s:.1f} ms CPU per second")
                for number in range(1, args.rounds + 1):
                    post_cpu, post_p50 = measure(pid, args.messages, send)
                    get_cpu, get_p50 = measure(pid, args.messages, history)
                    prefix = f"round {number}: " if args.rounds > 1 else ""
                    print(f"{prefix}POST /api/v1/messages    {post_cpu:6.2f} ms CPU/request  p50 {post_p50:6.2f} ms")
                    print(f"{prefix}GET history (20 msgs)    {get_cpu:6.2f} ms CPU/request  p50 {get_p50:6.2f} ms")
    finally:
        if bot is not None:
            bot.stop()
        drop_schema(schema)


if __name__ == "__main__":
    main()
