"""The WhatsApp inbound queue's dead letters, and the template registry, from the command line.

    python -m connectors.whatsapp dead                  # list dead messages, one JSON line each
    python -m connectors.whatsapp redrive WAMID [...]   # queue these again
    python -m connectors.whatsapp redrive --all         # queue every dead message again
    python -m connectors.whatsapp templates [FILE]      # check a template file (default WHATSAPP_TEMPLATES_FILE)

Reads DATABASE_URL (and DATABASE_SCHEMA) like the API; a running API's worker
picks re-driven messages up within a second.
"""

from __future__ import annotations

import argparse
import asyncio
import sys

import orjson

from connectors.whatsapp.dead_letters import dead_messages, redrive
from connectors.whatsapp.templates import TemplateRegistry, TemplateRegistryError
from conversation_api.db import create_engine, create_session_factory
from conversation_api.settings import Settings, get_settings


async def run(args: argparse.Namespace, settings: Settings) -> int:
    engine = create_engine(settings)
    sessions = create_session_factory(engine)
    try:
        if args.command == "dead":
            async with sessions() as session:
                for row in await dead_messages(session=session, limit=args.limit):
                    line = {
                        "wamid": row.wamid,
                        "wa_id": row.wa_id,
                        "conversation_id": row.conversation_id,
                        "received_at": row.received_at.isoformat(),
                        "attempts": row.attempts,
                        "failed_attempts": row.failed_attempts,
                        "last_error": row.last_error,
                    }
                    sys.stdout.buffer.write(orjson.dumps(line) + b"\n")
            return 0
        if not args.all and not args.wamids:
            print("name the wamids to re-drive, or pass --all", file=sys.stderr)
            return 2
        async with sessions() as session, session.begin():
            queued = await redrive(session=session, wamids=None if args.all else args.wamids)
        for wamid in queued:
            print(wamid)
        missing = set(args.wamids) - set(queued)
        if missing:
            print(f"not dead (or unknown): {', '.join(sorted(missing))}", file=sys.stderr)
        print(f"re-driven {len(queued)}", file=sys.stderr)
        return 1 if missing else 0
    finally:
        await engine.dispose()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m connectors.whatsapp", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    commands = parser.add_subparsers(dest="command", required=True)
    dead = commands.add_parser("dead", help="list dead inbound messages (oldest first) as JSON lines")
    dead.add_argument("--limit", type=int, default=100)
    again = commands.add_parser("redrive", help="queue dead inbound messages again, with a fresh count of attempts")
    again.add_argument("wamids", nargs="*", help="the messages' wamids (see `dead`)")
    again.add_argument("--all", action="store_true", help="every dead message")
    check = commands.add_parser("templates", help="check a template registry file and list its templates")
    check.add_argument("file", nargs="?", help="the YAML file (default: WHATSAPP_TEMPLATES_FILE)")
    args = parser.parse_args(argv)
    if args.command == "templates":
        raise SystemExit(check_templates(args.file or get_settings().whatsapp_templates_file))
    raise SystemExit(asyncio.run(run(args, get_settings())))


def check_templates(path: str | None) -> int:
    """0 and one line per template when the file is right; 1 and every problem when it is not."""
    if not path:
        print("no file: pass one, or set WHATSAPP_TEMPLATES_FILE", file=sys.stderr)
        return 2
    try:
        registry = TemplateRegistry.load(path)
    except TemplateRegistryError as exc:
        print(exc, file=sys.stderr)
        return 1
    for t in registry.all():
        buttons = f" buttons: {', '.join(b.text for b in t.buttons)}" if t.buttons else ""
        print(f"{t.name} ({t.language}, {t.category.value}) parameters: {', '.join(t.parameters) or '-'}{buttons}")
    print(f"{path}: {len(registry)} template(s), all valid", file=sys.stderr)
    return 0


if __name__ == "__main__":
    main()
