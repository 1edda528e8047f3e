"""Throughput of the event pipeline on PostgreSQL and Redis: outbox writes, the relay, a consumer group.

Writes N events with record_event (in transactions of 2, as the gateway does per message),
relays them to Redis Streams and reads them back through one consumer group. Prints events/s
for each stage. Uses a throwaway PostgreSQL schema and a unique stream prefix.

Usage: .venv/bin/python benchmarks/bench_events.py [--events 20000]
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from redis.asyncio import Redis  # noqa: E402

from conversation_api.db import create_engine, create_session_factory  # noqa: E402
from conversation_api.events.consumer import handle_delivery  # noqa: E402
from conversation_api.events.envelope import Event  # noqa: E402
from conversation_api.events.outbox import record_event  # noqa: E402
from conversation_api.events.redis_streams import RedisStreamsBus  # noqa: E402
from conversation_api.events.relay import OutboxRelay  # noqa: E402
from tests.support.database import drop_schema, migrate, new_schema_name, postgres_settings  # noqa: E402
from tests.support.events import REDIS_URL, delete_prefix, unique_prefix  # noqa: E402


async def run(total: int, schema: str, prefix: str) -> None:
    settings = postgres_settings(schema)
    engine = create_engine(settings)
    sessions = create_session_factory(engine)
    bus = RedisStreamsBus(Redis.from_url(REDIS_URL), prefix=prefix)
    try:
        started = time.perf_counter()

        async def writer(worker: int, count: int) -> None:
            for i in range(0, count, 2):
                async with sessions() as session, session.begin():
                    for kind in ("message.received", "intent.detected"):
                        record_event(
                            session,
                            type=kind,
                            conversation_id=f"c{worker}",
                            user_id="bench",
                            channel="api",
                            payload={"n": i},
                        )

        await asyncio.gather(*(writer(w, total // 16) for w in range(16)))
        written = time.perf_counter() - started
        print(f"outbox writes   {total / written:10.0f} events/s  (16 writers, 2 events per transaction)")

        relay = OutboxRelay(sessions=sessions, bus=bus, lock_rows=True, batch_size=500)
        started = time.perf_counter()
        relayed = 0
        while (n := await relay.relay_once()) > 0:
            relayed += n
        elapsed = time.perf_counter() - started
        print(f"relay to Redis  {relayed / elapsed:10.0f} events/s  ({relayed} events, batches of 500)")

        handled = 0

        async def handler(_: Event) -> None:
            nonlocal handled
            handled += 1

        started = time.perf_counter()
        types = ["message.received", "intent.detected"]
        while deliveries := await bus.read(group="bench", consumer="b1", types=types, count=500, block_ms=100):
            for delivery in deliveries:
                await handle_delivery(bus, delivery, handler)
        elapsed = time.perf_counter() - started
        print(f"consumer group  {handled / elapsed:10.0f} events/s  (one consumer, dedup check + ack per event)")
    finally:
        await bus.aclose()
        await engine.dispose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=20_000)
    total = parser.parse_args().events
    schema, prefix = new_schema_name(), unique_prefix()
    migrate(postgres_settings(schema))
    try:
        asyncio.run(run(total, schema, prefix))
    finally:
        drop_schema(schema)
        delete_prefix(REDIS_URL, prefix)


if __name__ == "__main__":
    main()
