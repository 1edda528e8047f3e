"""How many messages one user may send in a moving window (the `limits` library).

With Redis (REDIS_URL) the window is shared by every replica; without it, it lives in
this process. If Redis stops answering, a request is never failed for it: the check
falls back to this process's own window for a few seconds (logged, and counted in
reviewbot_rate_limit_store_failures_total) and then tries Redis again. So during an
outage each replica still limits on its own, and the limit is at worst one per replica.
"""

from __future__ import annotations

import logging
import math
import time

from limits import RateLimitItem, parse
from limits.aio.storage import MemoryStorage, Storage
from limits.aio.strategies import MovingWindowRateLimiter
from limits.errors import StorageError

from conversation_api.errors import RateLimited
from conversation_api.metrics.instruments import RATE_LIMIT_STORE_FAILURES

log = logging.getLogger(__name__)

NAMESPACE = "messages"


class MessageRateLimiter:
    def __init__(self, rate: str | None, *, shared: Storage | None = None, retry_shared_after: float = 5.0) -> None:
        """`rate` as `limits` writes it (`30/minute`), None for no limit; `shared` a storage all replicas see."""
        self.rate: RateLimitItem | None = parse(rate) if rate else None
        self._local = MovingWindowRateLimiter(MemoryStorage())
        self._shared = MovingWindowRateLimiter(shared) if shared is not None else None
        self._retry_shared_after = retry_shared_after
        self._shared_down_until = 0.0

    async def hit(self, user_id: str) -> None:
        """Count one message from `user_id`; RateLimited (429, with seconds to wait) if it is one too many."""
        if self.rate is None:
            return
        limiter = self._local
        if self._shared is not None and time.monotonic() >= self._shared_down_until:
            limiter = self._shared
        try:
            allowed = await limiter.hit(self.rate, NAMESPACE, user_id)
            if allowed:
                return
            window = await limiter.get_window_stats(self.rate, NAMESPACE, user_id)
        except (StorageError, OSError) as exc:  # the shared store only: memory does not fail this way
            if limiter is self._local:
                raise
            self._shared_down_until = time.monotonic() + self._retry_shared_after
            RATE_LIMIT_STORE_FAILURES.inc()
            log.warning(
                "rate limit store unavailable, limiting in this process for %.0f s error=%s",
                self._retry_shared_after,
                type(exc.__cause__ or exc).__name__,
            )
            await self.hit(user_id)
            return
        retry_after = max(1, math.ceil(window.reset_time - time.time()))
        raise RateLimited(
            f"too many messages: the limit is {self.rate}; retry in {retry_after} s", retry_after=retry_after
        )
