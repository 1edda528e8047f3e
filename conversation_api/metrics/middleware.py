"""Requests by route template and status, and their latency: a pure ASGI middleware (no body buffering)."""

from __future__ import annotations

import time
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from conversation_api.metrics.instruments import HTTP_LATENCY, HTTP_REQUESTS

METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})


class PrometheusMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        # Label children are cached: .labels() takes a lock and hashes every call.
        self._latency: dict[tuple[str, str], Any] = {}
        self._requests: dict[tuple[str, str, int], Any] = {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def send_with_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_with_status)
        finally:
            # The router records the matched route in the scope; the template keeps label values bounded.
            route = getattr(scope.get("route"), "path", None) or "unmatched"
            method = scope["method"] if scope["method"] in METHODS else "other"
            latency = self._latency.get((method, route))
            if latency is None:
                latency = self._latency[(method, route)] = HTTP_LATENCY.labels(method, route)
            latency.observe(time.perf_counter() - started)
            counter = self._requests.get((method, route, status))
            if counter is None:
                counter = self._requests[(method, route, status)] = HTTP_REQUESTS.labels(method, route, str(status))
            counter.inc()
