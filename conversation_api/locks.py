"""Per-conversation locks, so the messages of one conversation are handled one at a time, in arrival order.

On PostgreSQL the lock is a session-level advisory lock held on one pooled
connection, and the unit of work writes on that same connection:

- it holds across API workers and replicas with nothing but the database;
- waiters queue in PostgreSQL's lock manager and are granted first come, first
  served, with no polling;
- it cannot expire while held. It is released when the turn ends or, if the
  process dies, when PostgreSQL drops the connection. A connection that broke
  (the lock lost) fails the turn's own writes, so a lost lock never interleaves
  two turns: the turn ends in a 503 with its message stored.

The embedded SQLite default serves one API process (settings refuse more), so an
in-process lock queue (asyncio.Lock is FIFO) is enough there.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from enum import IntEnum
from typing import Protocol

from sqlalchemy import exc as sa_exc
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from conversation_api.errors import ConversationBusy
from conversation_api.metrics.instruments import LOCK_WAIT

log = logging.getLogger(__name__)


class LockSpace(IntEnum):
    """The first key of PostgreSQL's two-key advisory locks: kinds of lock never collide with each other."""

    conversation = 0x52420001
    channel_user = 0x52420002
    client_message = 0x52420003


class ConversationLocks(Protocol):
    def hold(
        self, key: str, space: LockSpace = LockSpace.conversation
    ) -> AbstractAsyncContextManager[AsyncConnection | None]:
        """Hold the lock on `key` for the block; yields the connection that holds it, if the lock has one.

        Raises ConversationBusy when the lock is not granted within the wait limit.
        """
        ...


class InProcessLocks:
    def __init__(self, *, wait: float = 30.0) -> None:
        self._locks: dict[tuple[LockSpace, str], asyncio.Lock] = {}
        self._waiters: dict[tuple[LockSpace, str], int] = {}
        self._wait = wait

    @asynccontextmanager
    async def hold(self, key: str, space: LockSpace = LockSpace.conversation) -> AsyncIterator[None]:
        name = (space, key)
        lock = self._locks.setdefault(name, asyncio.Lock())
        self._waiters[name] = self._waiters.get(name, 0) + 1
        try:
            with LOCK_WAIT.time():
                try:
                    async with asyncio.timeout(self._wait):
                        await lock.acquire()
                except TimeoutError:
                    raise ConversationBusy(key) from None
            try:
                yield None
            finally:
                lock.release()
        finally:
            self._waiters[name] -= 1
            if not self._waiters[name]:
                del self._waiters[name]
                del self._locks[name]


_LOCK = text("SELECT set_config('lock_timeout', :wait, true), pg_advisory_lock(:space, hashtext(:key))")
_UNLOCK = text("SELECT pg_advisory_unlock(:space, hashtext(:key))")


class PostgresLocks:
    """Advisory locks keyed by (space, hashtext(key)).

    Two keys with one hash share a lock: harmless (they queue behind each other),
    and the spaces keep a conversation's lock apart from the other kinds, which
    callers take around it.
    """

    def __init__(self, engine: AsyncEngine, *, wait: float = 30.0) -> None:
        self._engine = engine
        self._wait_ms = str(int(wait * 1000))

    @asynccontextmanager
    async def hold(self, key: str, space: LockSpace = LockSpace.conversation) -> AsyncIterator[AsyncConnection]:
        params = {"space": int(space), "key": key, "wait": self._wait_ms}
        async with self._engine.connect() as connection:
            with LOCK_WAIT.time():
                try:
                    # lock_timeout is set for this transaction only; the lock outlives its COMMIT.
                    await connection.execute(_LOCK, params)
                    await connection.commit()
                except sa_exc.OperationalError as exc:
                    if getattr(exc.orig, "sqlstate", None) == "55P03":  # lock_not_available
                        await connection.rollback()
                        raise ConversationBusy(key) from None
                    raise
            try:
                yield connection
            finally:
                await self._release(connection, params)

    @staticmethod
    async def _release(connection: AsyncConnection, params: dict[str, object]) -> None:
        try:
            if connection.in_transaction():
                await connection.rollback()
            await connection.execute(_UNLOCK, params)
            await connection.commit()
        except Exception as exc:  # a broken connection: drop it, and PostgreSQL drops the lock with it
            log.warning("conversation lock released by closing its connection error=%s", type(exc).__name__)
            await connection.invalidate()
