"""The API alone against a floor: a bare FastAPI endpoint on the same stack, measured side by side.

Starts, on a throwaway PostgreSQL schema and the local Redis, the instant stand-in
bot (benchmarks/instant_bot.py), the API and the floor app (benchmarks/floor_app.py),
each with the same number of uvicorn workers, and drives each with wrk in turn:
POST /api/v1/messages against POST /floor/messages (one stored row), then the
history GET (20 messages) against GET /floor/messages (20 rows). Absolute figures
move with the machine's load; the API/floor ratios within one run are the result.

Usage: .venv/bin/python benchmarks/bench_api_floor.py [--duration 10] [--connections 16] [--workers 2] [--rounds 1]
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.bench_messages import (  # noqa: E402
    CONVERSATIONS,
    USER,
    WRK,
    Result,
    create_conversations,
    rss_mb,
    start_api,
    wrk,
)
from conversation_api.auth import mint_token  # noqa: E402
from tests.support.database import drop_schema, migrate, new_schema_name, postgres_settings  # noqa: E402
from tests.support.processes import Server, free_port, start_server  # noqa: E402
from tests.support.stack import database_env  # noqa: E402


def start_floor(env: dict[str, str], workers: int) -> Server:
    port = free_port()
    return start_server(
        "bench-floor",
        [
            str(ROOT / ".venv/bin/uvicorn"),
            "--factory",
            "benchmarks.floor_app:app_factory",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--workers",
            str(workers),
            "--no-access-log",
            "--log-level",
            "warning",
        ],
        url=f"http://127.0.0.1:{port}",
        ready_path="/healthz",
        env={**env, "PYTHONPATH": str(ROOT)},
        timeout=60,
    )


def ratio(api: Result, floor: Result) -> str:
    return f"{api.rate / floor.rate:.2f}x ({api.rate:.0f} / {floor.rate:.0f})"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--duration", type=int, default=10, help="seconds per wrk run")
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--workers", type=int, default=2, help="uvicorn workers of the API and of the floor")
    parser.add_argument("--rounds", type=int, default=1, help="repeat the four runs, alternating API and floor")
    parser.add_argument("--redis-url", default=os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/0"))
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        sys.exit("wrk is needed: apt-get install wrk")

    schema = new_schema_name()
    # One user sends every message: the per-user rate limit would measure itself.
    settings = postgres_settings(schema, redis_url=args.redis_url, rate_limit_messages=None)
    migrate(settings)
    workdir = Path(tempfile.mkdtemp(prefix="reviewbot-bench-floor-"))
    servers: list[Server] = []
    try:
        bot_port = free_port()
        servers.append(
            start_server(
                "bench-instant-bot",
                [sys.executable, str(ROOT / "benchmarks/instant_bot.py"), str(bot_port)],
                url=f"http://127.0.0.1:{bot_port}",
                ready_path="/webhooks/reviewbot/",
                env={},
            )
        )
        api = start_api(settings, f"http://127.0.0.1:{bot_port}", args.workers)
        servers.append(api)
        floor = start_floor(database_env(settings), args.workers)
        servers.append(floor)

        token = mint_token(secret=settings.jwt_secret, user_id=USER, role="client", ttl_seconds=3600)
        ids_file = workdir / "ids.txt"
        ids_file.write_text("\n".join(create_conversations(api.url, token, CONVERSATIONS)) + "\n")
        env = {"BENCH_TOKEN": token, "BENCH_USER": USER, "BENCH_IDS": str(ids_file), "BENCH_TEXT": "hello"}
        run = dict(duration=args.duration, connections=args.connections, threads=args.threads, env=env)
        warm = {**run, "duration": 3}

        wrk("warm-up", api.url, WRK / "api_post.lua", **warm)
        wrk("warm-up", floor.url, WRK / "floor_post.lua", **warm)
        # Enough history that each conversation's GET returns a full page of 20.
        wrk("warm-up", api.url, WRK / "api_post.lua", **{**run, "duration": 5})
        rounds: list[tuple[Result, Result, Result, Result]] = []
        for _ in range(args.rounds):
            floor_post = wrk("floor POST /floor/messages (1 row)", floor.url, WRK / "floor_post.lua", **run)
            api_post = wrk("API POST /api/v1/messages (instant bot)", api.url, WRK / "api_post.lua", **run)
            floor_get = wrk("floor GET /floor/messages (20 rows)", floor.url, WRK / "floor_history.lua", **run)
            api_get = wrk("API GET history (20 messages)", api.url, WRK / "api_history.lua", **run)
            rounds.append((api_post, floor_post, api_get, floor_get))
        memory = {
            f"api ({args.workers} workers)": rss_mb(api.process.pid),
            f"floor ({args.workers} workers)": rss_mb(floor.process.pid),
        }

        print()
        print(
            f"API alone vs floor — {os.cpu_count()} cores, wrk -t{args.threads} -c{args.connections} "
            f"-d{args.duration}s, {args.workers} uvicorn workers each, PostgreSQL + Redis, message 'hello'"
        )
        for number, (api_post, floor_post, api_get, floor_get) in enumerate(rounds, 1):
            if args.rounds > 1:
                print(f"round {number}")
            for result in (api_post, floor_post, api_get, floor_get):
                print(result.line())
            print(f"POST API / floor: {ratio(api_post, floor_post)}")
            print(f"GET  API / floor: {ratio(api_get, floor_get)}")
        print("Resident memory after the runs: " + ", ".join(f"{k} {v:.0f} MiB" for k, v in memory.items()))
    finally:
        for server in reversed(servers):
            server.stop()
        drop_schema(schema)
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
