"""Event consumers from the command line.

    python -m conversation_api.events consume --group audit --types message.received intent.detected
    python -m conversation_api.events consume --group crm-sync --types intent.detected contact.updated \\
        --handler crm-sync
    python -m conversation_api.events consume --group mine --types order.placed --handler my_pkg.orders:handle
    python -m conversation_api.events dead [--group crm-sync]          # the dead letters, one JSON line each
    python -m conversation_api.events redrive --group crm-sync [ID...] # publish them again (all of the group's)

Reads REDIS_URL (or EVENTS_REDIS_URL), EVENTS_STREAM_PREFIX and EVENTS_MAX_DELIVERIES
like the API. The default handler prints each event as one JSON line. An event
a handler fails on EVENTS_MAX_DELIVERIES times goes to `<prefix>:dead`.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import logging
import os
import signal
import socket
import sys
from collections.abc import Awaitable, Callable

import orjson
from redis.asyncio import Redis

from conversation_api.db import create_engine, create_session_factory
from conversation_api.events.consumer import Handler, consume
from conversation_api.events.crm_sync import CrmSync
from conversation_api.events.envelope import Event, EventType
from conversation_api.events.redis_streams import RedisStreamsBus
from conversation_api.logging_setup import configure_logging
from conversation_api.settings import Settings, get_settings


async def print_event(event: Event) -> None:
    sys.stdout.buffer.write(event.to_json() + b"\n")
    sys.stdout.flush()


def load_handler(spec: str, settings: Settings) -> tuple[Handler, Callable[[], Awaitable[None]] | None]:
    """The handler named on the command line, and what to close after it."""
    if spec == "print":
        return print_event, None
    if spec == "crm-sync":
        engine = create_engine(settings)
        return CrmSync(create_session_factory(engine)), engine.dispose
    module_name, _, attribute = spec.partition(":")
    if not attribute:
        raise SystemExit(f"--handler must be print, crm-sync or module:function (got {spec!r})")
    handler: Handler = getattr(importlib.import_module(module_name), attribute)
    return handler, None


def parse_types(values: list[str]) -> list[str]:
    types = [t for value in values for t in value.split(",") if t]
    unknown = sorted(set(types) - {t.value for t in EventType})
    if unknown:
        raise SystemExit(f"unknown event types: {', '.join(unknown)} (see docs/events.md)")
    return types


def redis_bus(settings: Settings, *, block_ms: int = 0) -> RedisStreamsBus:
    url = settings.event_bus_url
    if not url:
        raise SystemExit("set REDIS_URL (or EVENTS_REDIS_URL): consumers in other processes need Redis Streams")
    return RedisStreamsBus(
        Redis.from_url(url, socket_connect_timeout=3, socket_timeout=max(10, block_ms / 1000 + 5)),
        prefix=settings.events_stream_prefix,
    )


async def run_dead_letters(args: argparse.Namespace, settings: Settings) -> int:
    """`dead` lists the dead letters; `redrive` publishes a group's again (those named, or all)."""
    bus = redis_bus(settings)
    try:
        letters = await bus.dead_letters(count=args.limit, group=args.group)
        if args.command == "dead":
            for letter in letters:
                line = {
                    "dead_id": letter.entry_id,
                    "group": letter.group,
                    "stream": letter.stream,
                    "deliveries": letter.deliveries,
                    "error": letter.error,
                    "dead_at": letter.dead_at,
                    "event": orjson.loads(letter.event.to_json()),
                }
                sys.stdout.buffer.write(orjson.dumps(line) + b"\n")
            sys.stdout.flush()
            return 0
        chosen = [letter for letter in letters if not args.ids or letter.entry_id in args.ids]
        await bus.redrive(chosen)
        for letter in chosen:
            print(letter.entry_id, letter.event.id)
        missing = set(args.ids) - {letter.entry_id for letter in chosen}
        if missing:
            print(f"no such dead letter of group {args.group}: {', '.join(sorted(missing))}", file=sys.stderr)
        print(f"re-driven {len(chosen)}", file=sys.stderr)
        return 1 if missing else 0
    finally:
        await bus.aclose()


async def run_consumer(args: argparse.Namespace, settings: Settings) -> None:
    bus = redis_bus(settings, block_ms=args.block_ms)
    handler, close = load_handler(args.handler, settings)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    try:
        await consume(
            bus,
            group=args.group,
            consumer=args.consumer,
            types=parse_types(args.types),
            handler=handler,
            stop=stop,
            block_ms=args.block_ms,
            max_deliveries=args.max_deliveries or settings.events_max_deliveries,
        )
    finally:
        await bus.aclose()
        if close is not None:
            await close()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m conversation_api.events",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    commands = parser.add_subparsers(dest="command", required=True)
    consume_cmd = commands.add_parser("consume", help="hand events of some types to a handler, in a consumer group")
    consume_cmd.add_argument("--group", required=True, help="consumer group: every group sees every event")
    consume_cmd.add_argument("--types", required=True, nargs="+", help="event types (space or comma separated)")
    consume_cmd.add_argument(
        "--consumer", default=f"{socket.gethostname()}-{os.getpid()}", help="this consumer's name within the group"
    )
    consume_cmd.add_argument("--handler", default="print", help="print (default), crm-sync, or module:function")
    consume_cmd.add_argument("--block-ms", type=int, default=2000, help="how long one read waits for new events")
    consume_cmd.add_argument(
        "--max-deliveries",
        type=int,
        default=None,
        help="deliveries before dead-lettering (EVENTS_MAX_DELIVERIES)",
    )
    dead_cmd = commands.add_parser("dead", help="list the dead letters (oldest first) as JSON lines")
    dead_cmd.add_argument("--group", default=None, help="only this consumer group's")
    dead_cmd.add_argument("--limit", type=int, default=100)
    redrive_cmd = commands.add_parser("redrive", help="publish a group's dead letters again and drop them")
    redrive_cmd.add_argument("--group", required=True, help="the consumer group that gave up on them")
    redrive_cmd.add_argument("ids", nargs="*", help="dead_id values from `dead` (default: all of the group's)")
    redrive_cmd.add_argument("--limit", type=int, default=10_000)
    args = parser.parse_args(argv)
    settings = get_settings()
    configure_logging(settings.log_level)
    logging.getLogger(__name__).info("starting command=%s group=%s", args.command, args.group)
    if args.command == "consume":
        asyncio.run(run_consumer(args, settings))
    else:
        raise SystemExit(asyncio.run(run_dead_letters(args, settings)))


if __name__ == "__main__":
    main()
