"""A job the API runs every few seconds for as long as it lives (sweepers)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable

log = logging.getLogger(__name__)


class PeriodicTask:
    """Runs `job` every `every` seconds in the app's event loop; a failing run is logged, never fatal."""

    def __init__(
        self, *, name: str, every: float, job: Callable[[], Awaitable[object]], first_at_start: bool = False
    ) -> None:
        self.name = name
        self._every = every
        self._job = job
        self._first_at_start = first_at_start
        self._task: asyncio.Task[None] | None = None

    async def _run(self) -> None:
        first = self._first_at_start
        while True:
            if not first:
                await asyncio.sleep(self._every)
            first = False
            try:
                await self._job()
            except Exception:  # a failing run (database down) must not end the loop
                log.exception("periodic task failed task=%s", self.name)

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name=self.name)

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
