"""HTTP client for the ReviewBot Rasa input channel (the API side of the bot port)."""

from __future__ import annotations

import logging
from typing import Any
from urllib.parse import quote

import httpx

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
    """Talks to `connectors.rasa.channel.ReviewBotInput` over one shared connection pool."""

    def __init__(
        self,
        *,
        base_url: str,
        token: str | None,
        timeout: float,
        client: httpx.AsyncClient | None = None,
    ) -> None:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        # Rasa's HTTP API (--enable-api --auth-token) takes the token as a query parameter.
        self._api_params = {"token": token} if token else {}
        self._client = client or httpx.AsyncClient(
            base_url=base_url.rstrip("/"),
            headers=headers,
            timeout=httpx.Timeout(timeout, connect=min(timeout, 3.0)),
            limits=httpx.Limits(max_connections=200, max_keepalive_connections=100),
        )

    async def send(self, *, sender_id: str, text: str, metadata: dict[str, Any]) -> BotTurn:
        body = {"sender": sender_id, "message": text, "metadata": metadata}
        try:
            response = await self._client.post(f"{CHANNEL_PATH}/webhook", json=body)
        except httpx.TimeoutException as exc:
            raise BotUnavailable("the bot did not answer in time") from exc
        except httpx.TransportError as exc:
            raise BotUnavailable(f"the bot is unreachable ({type(exc).__name__})") from exc
        if response.status_code == 401:
            raise BotUnavailable("the bot refused our token (check RASA_TOKEN)")
        if response.status_code >= 400:
            raise BotUnavailable(f"the bot answered HTTP {response.status_code}")
        try:
            return parse_turn(response.json())
        except (ValueError, AttributeError, TypeError) as exc:
            raise BotUnavailable("the bot sent a reply we could not read") from exc

    async def ping(self) -> None:
        try:
            response = await self._client.get(f"{CHANNEL_PATH}/", timeout=2.0)
        except httpx.HTTPError as exc:
            raise BotUnavailable(f"the bot is unreachable ({type(exc).__name__})") from exc
        if response.status_code != 200:
            raise BotUnavailable(f"the bot answered HTTP {response.status_code}")

    async def pause(self, sender_id: str) -> None:
        await self._append_events(sender_id, PAUSE_EVENTS)

    async def resume(self, sender_id: str) -> None:
        await self._append_events(sender_id, RESUME_EVENTS)

    async def _append_events(self, sender_id: str, events: list[dict[str, Any]]) -> None:
        path = f"/conversations/{quote(sender_id, safe='')}/tracker/events"
        # include_events=NONE: the answer is the whole tracker otherwise, and we only need the status.
        params = {**self._api_params, "include_events": "NONE"}
        try:
            response = await self._client.post(path, params=params, json=events)
        except httpx.TimeoutException as exc:
            raise BotUnavailable("the bot did not answer in time") from exc
        except httpx.TransportError as exc:
            raise BotUnavailable(f"the bot is unreachable ({type(exc).__name__})") from exc
        if response.status_code in (401, 403):
            raise BotUnavailable("the bot refused our token (check RASA_TOKEN and --enable-api)")
        if response.status_code >= 400:
            raise BotUnavailable(f"the bot answered HTTP {response.status_code} to tracker events")

    async def aclose(self) -> None:
        await self._client.aclose()
