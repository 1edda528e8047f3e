"""What a customer's message costs, end to end and piece by piece, measured side by side in one run.

Starts on PostgreSQL (a throwaway schema) and Redis: two action servers, two Rasa replicas with
the trained model and the SQL tracker store, and two APIs (one using the first replica, one
spreading over both). Then, with wrk and the message mix in benchmarks/mixes/customers.txt
(what customers ask most, read-only so runs repeat; `--mix FILE` for another):

  1. understanding alone: Rasa's /model/parse on the mix (the yardstick the targets use),
  2. a whole turn straight to the Rasa channel, and through the API, on 1 and on 2 replicas,
  3. the same for the single message "hello" (the cheapest turn, as earlier figures used),
  4. one request at a time: /model/parse, the Rasa channel and the API, on the mix,
  5. growth: one conversation of N turns over S sessions, and one long session, through the API
     (latency of the first and last turns, Rasa's memory before and after),
  6. a replica killed with kill -9 under load: every message stored, answered or a clear 503,
  7. the API alone, its bot an instant stand-in, against a bare FastAPI floor (benchmarks/bench_api_floor.py).

Prints msg/s, p50/p99, the ratios the targets are set in, and each process's resident memory.

Usage: .venv/bin/python benchmarks/bench_messages.py [--duration 20] [--connections 16] [--workers 2]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from conversation_api.auth import mint_token  # noqa: E402
from conversation_api.settings import Settings  # noqa: E402
from tests.support.database import drop_schema, migrate, new_schema_name, postgres_settings  # noqa: E402
from tests.support.processes import Server, free_port, start_server  # noqa: E402
from tests.support.stack import RASA_TOKEN, api_env, database_env, start_rasa_replicas, trained_model  # noqa: E402

WRK = ROOT / "benchmarks" / "wrk"
DEFAULT_MIX = ROOT / "benchmarks" / "mixes" / "customers.txt"
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
        return (
            f"{self.name:<52} {self.rate:>8.1f} /s   p50 {self.p50_ms:>7.1f} ms   p99 {self.p99_ms:>7.1f} ms"
            f"   ({self.requests} requests, {self.errors} errors)"
        )


def to_ms(value: str) -> float:
    number, unit = re.fullmatch(r"([\d.]+)(us|ms|s|m)", value).groups()  # type: ignore[union-attr]
    return float(number) * {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60000.0}[unit]


def wrk(
    name: str, url: str, script: Path, *, duration: int, connections: int, threads: int, env: dict[str, str]
) -> Result:
    command = ["wrk", f"-t{threads}", f"-c{connections}", f"-d{duration}s", "--latency", "--timeout", "10s"]
    command += ["-s", str(script), url]
    out = subprocess.run(
        command, capture_output=True, text=True, check=True, env={**os.environ, **env, "BENCH_THREADS": str(threads)}
    ).stdout
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
    children = subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True).stdout.split()
    pids = [pid] + [int(p) for p in children]
    total = 0
    for each in pids:
        try:
            status = Path(f"/proc/{each}/status").read_text()
        except OSError:
            continue
        total += int(re.search(r"VmRSS:\s+(\d+) kB", status).group(1))  # type: ignore[union-attr]
    return total / 1024


def start_api(settings: Settings, rasa_urls: str, workers: int, name: str = "bench-api") -> Server:
    port = free_port()
    return start_server(
        name,
        [str(ROOT / ".venv/bin/uvicorn"), "--factory", "conversation_api.main:app_factory", "--host", "127.0.0.1"]
        + ["--port", str(port), "--workers", str(workers), "--no-access-log", "--log-level", "warning"],
        url=f"http://127.0.0.1:{port}",
        ready_path="/healthz",
        env={**api_env(settings, rasa_urls), "LOG_LEVEL": "WARNING"},
        timeout=60,
    )


def create_conversations(api_url: str, token: str, count: int) -> list[str]:
    ids = []
    with httpx.Client(base_url=api_url, headers={"Authorization": f"Bearer {token}"}, timeout=30) as client:
        for _ in range(count):
            response = client.post(
                "/api/v1/messages", json={"conversation_id": "", "user_id": USER, "message": "hello"}
            )
            response.raise_for_status()
            ids.append(response.json()["conversation_id"])
    return ids


def read_mix(path: Path) -> list[str]:
    lines = [line.strip() for line in path.read_text().splitlines()]
    return [line for line in lines if line and not line.startswith("#")]


def addr(url: str) -> str:
    return url.removeprefix("http://")


# --- growth: latency at the first and last turns of a long conversation -------------------------------


def post_turns(api_url: str, token: str, texts: list[str]) -> list[float]:
    """Send `texts` in order into one new conversation; the latency of each turn, in ms."""
    latencies, cid = [], ""
    with httpx.Client(base_url=api_url, headers={"Authorization": f"Bearer {token}"}, timeout=30) as client:
        for text in texts:
            started = time.perf_counter()
            response = client.post("/api/v1/messages", json={"conversation_id": cid, "user_id": USER, "message": text})
            latencies.append((time.perf_counter() - started) * 1000)
            response.raise_for_status()
            cid = response.json()["conversation_id"]
    return latencies


def growth_script(mix: list[str], *, turns: int, sessions: int) -> tuple[list[str], list[int]]:
    """`turns` messages from the mix; a new session every turns/sessions (what an expired session does)."""
    per_session = turns // sessions
    texts, measured = [], []
    for i in range(turns):
        if i and i % per_session == 0:
            texts.append("/session_start")
        measured.append(len(texts))
        texts.append(mix[i % len(mix)])
    return texts, measured


def window_median(latencies: list[float], indexes: list[int]) -> float:
    return statistics.median(latencies[i] for i in indexes)


# --- a replica killed under load ------------------------------------------------------------------------


async def kill_drill(api_url: str, token: str, victim: Server, *, conversations: int, seconds: float) -> dict[str, Any]:
    """Concurrent customers for `seconds`; kill -9 `victim` halfway. Counts what each message got."""
    outcomes: dict[str, int] = {}
    sent: dict[str, int] = {}
    headers = {"Authorization": f"Bearer {token}"}
    async with httpx.AsyncClient(base_url=api_url, headers=headers, timeout=30) as client:
        ids = []
        for _ in range(conversations):
            response = await client.post(
                "/api/v1/messages", json={"conversation_id": "", "user_id": USER, "message": "hi"}
            )
            ids.append(response.json()["conversation_id"])
        deadline = time.monotonic() + seconds

        async def customer(cid: str) -> None:
            sent[cid] = 0
            while time.monotonic() < deadline:
                response = await client.post(
                    "/api/v1/messages", json={"conversation_id": cid, "user_id": USER, "message": "thanks!"}
                )
                sent[cid] += 1
                key = str(response.status_code)
                if response.status_code == 503:
                    key += " " + response.json().get("code", "")
                outcomes[key] = outcomes.get(key, 0) + 1

        async def killer() -> None:
            await asyncio.sleep(seconds / 2)
            victim.kill()

        await asyncio.gather(killer(), *(customer(cid) for cid in ids))
        stored = 0
        for cid in ids:
            history = (await client.get(f"/api/v1/user/{USER}/messages/{cid}", params={"limit": 500})).json()
            stored += sum(1 for m in history["messages"] if m["sender"] == "user") - 1  # minus the opening "hi"
    return {"sent": sum(sent.values()), "stored": stored, "outcomes": outcomes}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--duration", type=int, default=20, help="seconds per wrk run")
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--workers", type=int, default=2, help="API worker processes")
    parser.add_argument("--mix", type=Path, default=Path(os.environ.get("BENCH_MIX") or DEFAULT_MIX))
    parser.add_argument("--growth-turns", type=int, default=1000)
    parser.add_argument("--growth-sessions", type=int, default=20)
    parser.add_argument("--session-turns", type=int, default=200, help="turns of the one-session growth run")
    parser.add_argument("--redis-url", default=os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/0"))
    parser.add_argument("--skip-api-alone", action="store_true")
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        sys.exit("wrk is needed: apt-get install wrk")
    mix = read_mix(args.mix)

    schema = new_schema_name()
    # One user sends every message: the per-user rate limit would measure itself.
    settings = postgres_settings(schema, redis_url=args.redis_url, rate_limit_messages=None)
    migrate(settings)
    workdir = Path(tempfile.mkdtemp(prefix="reviewbot-bench-"))
    servers: list[Server] = []
    common = {
        "RASA_TELEMETRY_ENABLED": "false",
        "PYTHONPATH": str(ROOT),
        **database_env(settings),
        "REDIS_URL": args.redis_url,
        "LOG_LEVEL": "WARNING",
        "ACTION_SERVER_TOKEN": "bench-action-server-token",  # Rasa sends it; the action server requires it
    }
    lines: list[str] = []

    def report(text: str = "") -> None:
        print(text, flush=True)
        lines.append(text)

    try:
        model = trained_model()
        action_ports = [free_port(), free_port()]
        for i, port in enumerate(action_ports):
            servers.append(
                start_server(
                    f"bench-actions-{i}",
                    [str(ROOT / ".venv-rasa/bin/python"), "-m", "connectors.rasa.action_server", "--actions", "actions"]
                    + ["--port", str(port)],
                    url=f"http://127.0.0.1:{port}",
                    ready_path="/health",
                    env=common,
                )
            )
        actions = servers[:2]
        started = time.monotonic()
        rasas = start_rasa_replicas(
            model,
            envs=[
                {**common, "RASA_TOKEN": RASA_TOKEN, "ACTION_SERVER_URL": f"http://127.0.0.1:{port}/webhook"}
                for port in action_ports
            ],
            name="bench-rasa",
        )
        rasa_ready_s = time.monotonic() - started
        servers += rasas
        api_one = start_api(settings, rasas[0].url, args.workers, "bench-api-1")
        servers.append(api_one)
        api_two = start_api(settings, f"{rasas[0].url},{rasas[1].url}", args.workers, "bench-api-2")
        servers.append(api_two)

        token = mint_token(secret=settings.jwt_secret, user_id=USER, role="client", ttl_seconds=7200)
        ids_file = workdir / "ids.txt"
        ids_file.write_text("\n".join(create_conversations(api_one.url, token, CONVERSATIONS)) + "\n")
        env = {
            "BENCH_TOKEN": token,
            "BENCH_USER": USER,
            "BENCH_IDS": str(ids_file),
            "BENCH_MIX": str(args.mix),
            "BENCH_RASA_TOKEN": RASA_TOKEN,
            "BENCH_SENDERS": str(CONVERSATIONS),
        }
        run = dict(duration=args.duration, connections=args.connections, threads=args.threads)
        script = WRK / "mix.lua"

        def load(name: str, url: str, target: str, *, replicas: list[Server] | None = None, **overrides: Any) -> Result:
            extra = {"BENCH_TARGET": target}
            if replicas and len(replicas) > 1:
                extra["BENCH_ADDRS"] = ",".join(addr(r.url) for r in replicas)
            return wrk(name, url, script, env={**env, **extra, **overrides.pop("env", {})}, **{**run, **overrides})

        # Warm every path (TensorFlow traces its graphs on first use), then measure back to back.
        for target, url in (("parse", rasas[0].url), ("channel", rasas[0].url), ("channel", rasas[1].url)):
            load("warm-up", url, target, duration=5)
        load("warm-up", api_two.url, "api", duration=5)

        results: dict[str, Result] = {}
        results["parse"] = load("Rasa /model/parse (NLU only), mix", rasas[0].url, "parse")
        results["channel1"] = load("Rasa channel, 1 replica, mix", rasas[0].url, "channel")
        results["api1"] = load("API -> Rasa, 1 replica, mix", api_one.url, "api")
        results["channel2"] = load("Rasa channel, 2 replicas, mix", rasas[0].url, "channel", replicas=rasas)
        results["api2"] = load("API -> Rasa, 2 replicas, mix", api_two.url, "api")
        hello = {"env": {"BENCH_TEXT": "hello"}}
        results["channel_hello"] = load("Rasa channel, 1 replica, 'hello'", rasas[0].url, "channel", **hello)
        results["api_hello"] = load("API -> Rasa, 1 replica, 'hello'", api_one.url, "api", **hello)
        single = {"connections": 1, "threads": 1, "duration": max(args.duration // 2, 5)}
        results["parse_single"] = load("Rasa /model/parse, 1 connection, mix", rasas[0].url, "parse", **single)
        results["channel_single"] = load("Rasa channel, 1 connection, mix", rasas[0].url, "channel", **single)
        results["api_single"] = load("API -> Rasa, 1 connection, mix", api_one.url, "api", **single)
        memory = {
            "rasa (each replica)": max(rss_mb(r.process.pid) for r in rasas),
            "actions (each)": max(rss_mb(a.process.pid) for a in actions),
            f"api ({args.workers} workers)": rss_mb(api_one.process.pid),
        }

        # Growth: one conversation over many sessions, and one long session, one turn at a time.
        texts, measured = growth_script(mix, turns=args.growth_turns, sessions=args.growth_sessions)
        rss_before = rss_mb(rasas[0].process.pid)
        latencies = post_turns(api_one.url, token, texts)
        rss_after = rss_mb(rasas[0].process.pid)
        first, last = measured[:50], measured[-50:]
        growth_first, growth_last = window_median(latencies, first), window_median(latencies, last)
        session = post_turns(api_one.url, token, [mix[i % len(mix)] for i in range(args.session_turns)])
        session_first = statistics.median(session[:20])
        session_last = statistics.median(session[-20:])

        drill = asyncio.run(kill_drill(api_two.url, token, rasas[1], conversations=8, seconds=max(args.duration, 10)))

        report()
        report(
            f"ReviewBot message benchmark — {os.cpu_count()} cores, wrk -t{args.threads} -c{args.connections} "
            f"-d{args.duration}s, API workers {args.workers}, PostgreSQL + Redis, SQL tracker store, "
            f"mix {args.mix.name} ({len(mix)} messages)"
        )
        for result in results.values():
            report(result.line())
        r = results
        report()
        report(f"Rasa replicas ready {rasa_ready_s:.0f} s after start (two loading at once)")
        report(f"API (mix, 1 replica) / Rasa /model/parse:   {r['api1'].rate / r['parse'].rate:.2f}  (target >= 0.7)")
        report(f"API (mix, 2 replicas) / Rasa /model/parse:  {r['api2'].rate / r['parse'].rate:.2f}")
        report(f"API / Rasa channel, 1 replica:               {r['api1'].rate / r['channel1'].rate:.2f}  (>= 0.9)")
        report(f"API / Rasa channel, 2 replicas:              {r['api2'].rate / r['channel2'].rate:.2f}  (>= 0.9)")
        report(f"2 replicas / 1 replica through the API:      {r['api2'].rate / r['api1'].rate:.2f}")
        report(
            f"One turn / one /model/parse (p50, 1 connection): "
            f"{r['api_single'].p50_ms / r['parse_single'].p50_ms:.2f}  (target <= 1.5); "
            f"Rasa channel / parse {r['channel_single'].p50_ms / r['parse_single'].p50_ms:.2f}"
        )
        report(
            f"API end to end {r['api2'].rate:.0f} msg/s on this machine against WhatsApp's default 80 msg/s per number"
        )
        report(
            f"Growth, {args.growth_turns} turns over {args.growth_sessions} sessions: median of the first 50 turns "
            f"{growth_first:.1f} ms, of the last 50 {growth_last:.1f} ms, ratio {growth_last / growth_first:.2f} "
            f"(target 0.8-1.2); Rasa RSS {rss_before:.0f} -> {rss_after:.0f} MiB"
        )
        report(
            f"One session of {args.session_turns} turns: median of turns 1-20 {session_first:.1f} ms, "
            f"of the last 20 {session_last:.1f} ms, ratio {session_last / session_first:.2f} (target <= 1.5)"
        )
        lost = drill["sent"] - drill["stored"]
        report(
            f"Replica killed under load: {drill['sent']} messages sent, {drill['stored']} stored ({lost} lost); "
            f"answers {drill['outcomes']}"
        )
        report("Resident memory: " + ", ".join(f"{k} {v:.0f} MiB" for k, v in memory.items()))

        if not args.skip_api_alone:
            # The bot tier is stopped first, so the API alone and its floor have the machine to themselves.
            for server in (api_one, api_two, *rasas, *actions):
                server.stop()
                servers.remove(server)
            alone = subprocess.run(
                [sys.executable, str(ROOT / "benchmarks" / "bench_api_floor.py"), "--duration", str(args.duration)]
                + ["--connections", str(args.connections), "--workers", str(args.workers)],
                capture_output=True,
                text=True,
                check=True,
            ).stdout
            report()
            for line in alone.strip().splitlines():
                report(line)
    finally:
        for server in reversed(servers):
            server.stop()
        drop_schema(schema)
        shutil.rmtree(workdir, ignore_errors=True)
    results_dir = ROOT / "results"
    results_dir.mkdir(exist_ok=True)
    (results_dir / "bench-messages.txt").write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
