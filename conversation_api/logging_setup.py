"""Structured key=value logging."""

from __future__ import annotations

import logging

FORMAT = "ts=%(asctime)s level=%(levelname)s logger=%(name)s msg=%(message)s"


def configure_logging(level: str) -> None:
    logging.basicConfig(level=level.upper(), format=FORMAT, force=False)
    # One line per outgoing HTTP call drowns the gateway's own log.
    logging.getLogger("httpx").setLevel(logging.WARNING)
