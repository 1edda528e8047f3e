"""HTTP client for the ReviewBot Rasa input channel (the API side of the bot port)."""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Sequence
from typing import Any
from urllib.parse import quote

import aiohttp

from connectors.rasa.outcome import parse_turn
from conversation_api.bot import BotTurn, BotUnavailable
from conversation_api.metrics.instruments import BOT_REPLICA_REQUESTS

log = logging.getLogger(__name__)

CHANNEL_PATH = "/webhooks/reviewbot"

# Rasa's own tracker events for a handoff: pausing makes Rasa log but never answer a
# message, so its state agrees with the gateway's even if a message reached it.
PAUSE_EVENTS: list[dict[str, Any]] = [{"event": "pause"}]
RESUME_EVENTS: list[dict[str, Any]] = [
    {"event": "resume"},
    {"event": "slot", "name": "handoff_requested", "value": False},
    {"event": "slot", "name": "handoff_reason", "value": None},
]


class Replica:
    """One Rasa server, and when to try it again after it stopped answering."""

    def __init__(self, base_url: str) -> None:
        self.base_url = base_url.rstrip("/")
        self.failures = 0
        self.retry_at = 0.0

    def available(self, now: float) -> bool:
        return now >= self.retry_at

    def failed(self, now: float, *, base: float, cap: float) -> None:
        # Doubling back-off: a replica that stays down costs one failed connect per period.
        self.failures += 1
        self.retry_at = now + min(cap, base * 2 ** (self.failures - 1))

    def answered(self) -> None:
        self.failures, self.retry_at = 0, 0.0


class RasaChannelBot:
    """Talks to `connectors.rasa.channel.ReviewBotInput` on one or several Rasa replicas.

    Turns go round-robin over the replicas: any replica can serve any conversation,
    because the tracker store and the lock store are shared (connectors/rasa/stores.py),
    and the gateway already sends one conversation's messages one at a time. A replica
    that refuses the connection is skipped, with a doubling back-off, and the turn goes
    to the next one: the request never reached it, so nothing ran twice. A replica
    that fails *after* taking the request (it dies mid-turn, times out, answers 5xx)
    is not retried elsewhere, because the turn may have run; the caller gets
    BotUnavailable and the customer a clear 503 with the message stored.

    aiohttp rather than httpx here: this call sits on every message's path, and
    aiohttp spends about a fifth of httpx's CPU per request.
    """

    def __init__(
        self,
        *,
        base_url: str | Sequence[str],
        token: str | None,
        timeout: float,
        retry_after: float = 1.0,
        max_retry_after: float = 30.0,
    ) -> None:
        urls = [base_url] if isinstance(base_url, str) else list(base_url)
        if not urls:
            raise ValueError("at least one Rasa URL is needed")
        self.replicas = [Replica(url) for url in urls]
        self._next = 0
        self._retry_after, self._max_retry_after = retry_after, max_retry_after
        self._headers = {"Authorization": f"Bearer {token}"} if token else {}
        # Rasa's HTTP API (--enable-api --auth-token) takes the token as a query parameter.
        self._api_params = {"token": token} if token else {}
        self._timeout = aiohttp.ClientTimeout(total=timeout, connect=min(timeout, 3.0))
        self._session: aiohttp.ClientSession | None = None

    def _http(self) -> aiohttp.ClientSession:
        # Created on first use, inside the running event loop, as aiohttp requires.
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(
                headers=self._headers,
                timeout=self._timeout,
                connector=aiohttp.TCPConnector(limit=200, limit_per_host=200),
            )
        return self._session

    def _rotation(self) -> list[Replica]:
        """Every replica once, starting with the next in turn; those backing off go last."""
        start = self._next
        self._next = (self._next + 1) % len(self.replicas)
        ordered = self.replicas[start:] + self.replicas[:start]
        now = time.monotonic()
        return [r for r in ordered if r.available(now)] + [r for r in ordered if not r.available(now)]

    async def _post(self, path: str, body: Any, params: dict[str, str] | None = None) -> tuple[int, bytes]:
        refused: list[str] = []
        for replica in self._rotation():
            try:
                async with self._http().post(replica.base_url + path, json=body, params=params) as response:
                    content = await response.read()
            except aiohttp.ClientConnectorError as exc:  # never reached it: the next replica may serve the turn
                replica.failed(time.monotonic(), base=self._retry_after, cap=self._max_retry_after)
                BOT_REPLICA_REQUESTS.labels(replica.base_url, "refused").inc()
                log.warning("bot replica refused url=%s failures=%d error=%s", replica.base_url, replica.failures, exc)
                refused.append(type(exc).__name__)
                continue
            except TimeoutError as exc:
                BOT_REPLICA_REQUESTS.labels(replica.base_url, "error").inc()
                raise BotUnavailable("the bot did not answer in time") from exc
            except aiohttp.ClientError as exc:
                BOT_REPLICA_REQUESTS.labels(replica.base_url, "error").inc()
                raise BotUnavailable(f"the bot is unreachable ({type(exc).__name__})") from exc
            replica.answered()
            BOT_REPLICA_REQUESTS.labels(replica.base_url, "ok" if response.status < 500 else "error").inc()
            return response.status, content
        raise BotUnavailable(f"the bot is unreachable ({', '.join(sorted(set(refused)))})")

    async def send(self, *, sender_id: str, text: str, metadata: dict[str, Any]) -> BotTurn:
        body = {"sender": sender_id, "message": text, "metadata": metadata}
        status, content = await self._post(f"{CHANNEL_PATH}/webhook", body)
        if status == 401:
            raise BotUnavailable("the bot refused our token (check RASA_TOKEN)")
        if status >= 400:
            raise BotUnavailable(f"the bot answered HTTP {status}")
        try:
            return parse_turn(json.loads(content))
        except (ValueError, AttributeError, TypeError) as exc:
            raise BotUnavailable("the bot sent a reply we could not read") from exc

    async def ping(self) -> None:
        """Return when at least one replica answers."""
        states = await self.replica_states()
        if not any(state == "ok" for state in states.values()):
            raise BotUnavailable("; ".join(f"{url}: {state}" for url, state in states.items()))

    async def replica_states(self) -> dict[str, str]:
        """`ok` or the error, for each replica."""

        async def probe(replica: Replica) -> str:
            try:
                async with self._http().get(
                    replica.base_url + f"{CHANNEL_PATH}/", timeout=aiohttp.ClientTimeout(total=2.0)
                ) as response:
                    status = response.status
            except (TimeoutError, aiohttp.ClientError) as exc:
                return f"error: unreachable ({type(exc).__name__})"
            if status != 200:
                return f"error: HTTP {status}"
            replica.answered()
            return "ok"

        results = await asyncio.gather(*(probe(r) for r in self.replicas))
        return {r.base_url: state for r, state in zip(self.replicas, results, strict=True)}

    async def pause(self, sender_id: str) -> None:
        await self._append_events(sender_id, PAUSE_EVENTS)

    async def resume(self, sender_id: str) -> None:
        await self._append_events(sender_id, RESUME_EVENTS)

    async def _append_events(self, sender_id: str, events: list[dict[str, Any]]) -> None:
        path = f"/conversations/{quote(sender_id, safe='')}/tracker/events"
        # include_events=NONE: the answer is the whole tracker otherwise, and we only need the status.
        status, _ = await self._post(path, events, params={**self._api_params, "include_events": "NONE"})
        if status in (401, 403):
            raise BotUnavailable("the bot refused our token (check RASA_TOKEN and --enable-api)")
        if status >= 400:
            raise BotUnavailable(f"the bot answered HTTP {status} to tracker events")

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()
