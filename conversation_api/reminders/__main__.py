"""`python -m conversation_api.reminders run`: the reminder scheduler alone, without the API.

Every API replica runs a scheduler already; this runs one more (or the only one, when the API's
are not wanted) from the same settings. Any number may run at once: each reminder is sent once.
Stops on SIGINT/SIGTERM.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import sys

from conversation_api.container import build_container
from conversation_api.logging_setup import configure_logging
from conversation_api.settings import Settings, get_settings

log = logging.getLogger(__name__)


async def run(settings: Settings) -> int:
    container = build_container(settings)
    try:
        if container.reminders is None:
            print("REMINDER_TEMPLATE is empty: appointment reminders are off", file=sys.stderr)
            return 1
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        container.reminders.start()
        log.info("reminder scheduler running owner=%s", container.reminders.owner)
        await stop.wait()
        return 0
    finally:
        await container.aclose()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m conversation_api.reminders", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("run", help="send due appointment reminders until stopped")
    parser.parse_args(argv)
    settings = get_settings()
    configure_logging(settings.log_level)
    return asyncio.run(run(settings))


if __name__ == "__main__":
    sys.exit(main())
