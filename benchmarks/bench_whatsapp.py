"""WhatsApp webhook: acknowledgement latency and end-to-end reply latency, at a fixed arrival rate.

Starts the API on PostgreSQL (a throwaway schema), configured for WhatsApp with
its Graph API pointed at a local fake (tests/support/fake_graph.py) that
timestamps what it receives. Posts signed text webhooks at a fixed rate, each
from its own WhatsApp user, and prints:
  - ack: time from sending the POST to the 200 (Meta wants a median <= 250 ms),
  - reply: time from sending the POST until the fake Graph API receives the bot's reply.
Two runs: with the real Rasa (action server + trained model) at --rate, then
with the bot answered at once by benchmarks/instant_bot.py at --instant-rate, to
show the connector's own cost.

Usage: .venv/bin/python benchmarks/bench_whatsapp.py [--rate 10] [--instant-rate 50] [--seconds 15]
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.support.database import drop_schema, migrate, new_schema_name, postgres_settings  # noqa: E402
from tests.support.fake_graph import FakeGraph  # noqa: E402
from tests.support.processes import free_port, start_server  # noqa: E402
from tests.support.stack import api_server, bot_stack  # noqa: E402
from tests.support.whatsapp import WEBHOOK, new_wa_id, new_wamid, signed, text_payload, whatsapp_env  # noqa: E402

TEXTS = ["hello", "what are your opening hours?", "where are you located?", "thanks", "good morning"]


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q / 100 * len(ordered)) - 1))]


def line(name: str, values: list[float]) -> str:
    ms = [v * 1000 for v in values]
    return (
        f"{name:<34} p50 {percentile(ms, 50):>8.1f} ms   p95 {percentile(ms, 95):>8.1f} ms   "
        f"p99 {percentile(ms, 99):>8.1f} ms   max {max(ms, default=float('nan')):>8.1f} ms   (n={len(ms)})"
    )


async def drive(url: str, graph: FakeGraph, *, rate: float, seconds: float) -> None:
    count = int(rate * seconds)
    started: dict[str, float] = {}
    acks: list[float] = []
    statuses: dict[int | str, int] = {}

    # keep-alive shorter than uvicorn's 5 s, so the client never reuses a connection the server is closing.
    limits = httpx.Limits(max_connections=200, keepalive_expiry=3.0)
    async with httpx.AsyncClient(base_url=url, timeout=30, limits=limits) as client:

        async def post(i: int, at: float) -> None:
            await asyncio.sleep(max(0.0, at - time.monotonic()))
            wa_id = new_wa_id()
            body, headers = signed(text_payload(wa_id, TEXTS[i % len(TEXTS)], wamid=new_wamid()))
            sent = time.monotonic()
            started[wa_id] = sent
            try:
                response = await client.post(WEBHOOK, content=body, headers=headers)
            except httpx.HTTPError as exc:
                statuses[type(exc).__name__] = statuses.get(type(exc).__name__, 0) + 1
                return
            acks.append(time.monotonic() - sent)
            statuses[response.status_code] = statuses.get(response.status_code, 0) + 1

        # Warm up connections, the bot and the database before measuring.
        await asyncio.gather(*(post(i, time.monotonic()) for i in range(5)))
        await asyncio.sleep(3)
        started.clear(), acks.clear(), statuses.clear()

        t0 = time.monotonic() + 0.5
        wall = time.monotonic()
        await asyncio.gather(*(post(i, t0 + i / rate) for i in range(count)))
        posting = time.monotonic() - wall

    deadline = time.monotonic() + 60
    replies: dict[str, float] = {}
    while time.monotonic() < deadline:
        replies = {}
        for record in graph.message_requests():
            to = (record.body or {}).get("to")
            if to in started and to not in replies and record.answer == 200:
                replies[to] = record.at - started[to]
        if len(replies) == len(started):
            break
        await asyncio.sleep(0.5)

    print(f"\nWhatsApp webhook at {rate:g} messages/s for {seconds:g} s ({count} messages, posted in {posting:.1f} s)")
    print(f"HTTP statuses: {dict(sorted(statuses.items(), key=str))}; replies received: {len(replies)}/{len(started)}")
    print(line("ack (POST -> 200)", acks))
    print(line("reply (POST -> Graph API send)", list(replies.values())))
    over_1s = sum(1 for a in acks if a > 1.0) / max(1, len(acks)) * 100
    print(f"acks over 1 s: {over_1s:.2f} %  (Meta: median <= 250 ms, < 1 % over 1 s)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rate", type=float, default=10.0, help="webhook POSTs per second with the real Rasa")
    parser.add_argument("--instant-rate", type=float, default=50.0, help="POSTs per second with the instant bot")
    parser.add_argument("--seconds", type=float, default=15.0)
    parser.add_argument("--only", choices=["rasa", "instant"], help="run one of the two")
    args = parser.parse_args()

    schema = new_schema_name()
    settings = postgres_settings(schema)
    migrate(settings)
    try:
        if args.only != "instant":
            print("== with the real Rasa (trained model) and its action server ==")
            graph = FakeGraph().start()
            try:
                with (
                    bot_stack(settings) as bot,
                    api_server(settings, bot.rasa_url, extra_env=whatsapp_env(graph)) as api,
                ):
                    asyncio.run(drive(api.url, graph, rate=args.rate, seconds=args.seconds))
            finally:
                graph.stop()
        if args.only != "rasa":
            print("\n== with an instant bot (the API and the connector alone) ==")
            graph = FakeGraph().start()
            port = free_port()
            bot_server = start_server(
                "bench-instant-bot",
                [sys.executable, str(ROOT / "benchmarks/instant_bot.py"), str(port)],
                url=f"http://127.0.0.1:{port}",
                ready_path="/webhooks/reviewbot/",
                env={},
                timeout=30,
            )
            try:
                with api_server(settings, bot_server.url, extra_env=whatsapp_env(graph)) as api:
                    asyncio.run(drive(api.url, graph, rate=args.instant_rate, seconds=args.seconds))
            finally:
                bot_server.stop()
                graph.stop()
    finally:
        drop_schema(schema)


if __name__ == "__main__":
    main()
