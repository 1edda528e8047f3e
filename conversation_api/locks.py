"""Per-conversation locks, so concurrent messages to one conversation run one at a time.

In-process locks serve a single API process; with REDIS_URL set, a Redis lock
serialises across every API replica.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Protocol

from redis.asyncio import Redis


class ConversationLocks(Protocol):
    def hold(self, conversation_id: str) -> AbstractAsyncContextManager[None]: ...


class InProcessLocks:
    def __init__(self) -> None:
        self._locks: dict[str, asyncio.Lock] = {}
        self._waiters: dict[str, int] = {}

    @asynccontextmanager
    async def hold(self, conversation_id: str) -> AsyncIterator[None]:
        lock = self._locks.setdefault(conversation_id, asyncio.Lock())
        self._waiters[conversation_id] = self._waiters.get(conversation_id, 0) + 1
        try:
            async with lock:
                yield
        finally:
            self._waiters[conversation_id] -= 1
            if not self._waiters[conversation_id]:
                del self._waiters[conversation_id]
                del self._locks[conversation_id]


class RedisLocks:
    """`timeout` bounds how long a crashed holder can block a conversation."""

    def __init__(self, redis: Redis, *, timeout: float = 60.0, wait: float = 30.0) -> None:
        self._redis = redis
        self._timeout = timeout
        self._wait = wait

    @asynccontextmanager
    async def hold(self, conversation_id: str) -> AsyncIterator[None]:
        lock = self._redis.lock(
            f"reviewbot:lock:conversation:{conversation_id}",
            timeout=self._timeout,
            blocking_timeout=self._wait,
            sleep=0.005,
        )
        async with lock:
            yield
