"""HTTP client for the ReviewBot Rasa input channel (the API side of the bot port)."""

from __future__ import annotations

import json
import logging
from typing import Any
from urllib.parse import quote

import aiohttp

from conversation_api.bot import BotMessage, BotTurn, BotUnavailable

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


def _message(raw: dict[str, Any]) -> BotMessage:
    custom = raw.get("custom")
    return BotMessage(
        text=raw.get("text") or "",
        buttons=raw.get("buttons") or None,
        image=raw.get("image") or None,
        custom=custom if isinstance(custom, dict) else ({"value": custom} if custom else None),
    )


def parse_turn(body: dict[str, Any]) -> BotTurn:
    return BotTurn(
        messages=[_message(m) for m in body.get("messages", [])],
        intent=body.get("intent"),
        confidence=body.get("confidence"),
        entities=list(body.get("entities") or []),
        slots=dict(body.get("slots") or {}),
        events=list(body.get("events") or []),
        paused=bool(body.get("paused", False)),
    )


class RasaChannelBot:
    """Talks to `connectors.rasa.channel.ReviewBotInput` over one shared connection pool.

    aiohttp rather than httpx here: this call sits on every message's path, and
    aiohttp spends about a fifth of httpx's CPU per request.
    """

    def __init__(self, *, base_url: str, token: str | None, timeout: float) -> None:
        self._base_url = base_url.rstrip("/")
        self._headers = {"Authorization": f"Bearer {token}"} if token else {}
        # Rasa's HTTP API (--enable-api --auth-token) takes the token as a query parameter.
        self._api_params = {"token": token} if token else {}
        self._timeout = aiohttp.ClientTimeout(total=timeout, connect=min(timeout, 3.0))
        self._session: aiohttp.ClientSession | None = None

    def _http(self) -> aiohttp.ClientSession:
        # Created on first use, inside the running event loop, as aiohttp requires.
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(
                base_url=self._base_url,
                headers=self._headers,
                timeout=self._timeout,
                connector=aiohttp.TCPConnector(limit=200, limit_per_host=200),
            )
        return self._session

    async def _post(self, path: str, body: Any, params: dict[str, str] | None = None) -> tuple[int, bytes]:
        try:
            async with self._http().post(path, json=body, params=params) as response:
                return response.status, await response.read()
        except TimeoutError as exc:
            raise BotUnavailable("the bot did not answer in time") from exc
        except aiohttp.ClientError as exc:
            raise BotUnavailable(f"the bot is unreachable ({type(exc).__name__})") from exc

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
        try:
            async with self._http().get(f"{CHANNEL_PATH}/", timeout=aiohttp.ClientTimeout(total=2.0)) as response:
                status = response.status
        except (TimeoutError, aiohttp.ClientError) as exc:
            raise BotUnavailable(f"the bot is unreachable ({type(exc).__name__})") from exc
        if status != 200:
            raise BotUnavailable(f"the bot answered HTTP {status}")

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
