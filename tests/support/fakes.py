"""Test doubles for ports (used by unit and API integration tests only)."""

from __future__ import annotations

import asyncio
import random
from typing import Any

from conversation_api.bot import BotMessage, BotTurn, BotUnavailable


class FakeBot:
    """Echoes each message; can be told to fail or to take a random while to answer."""

    def __init__(self, *, fail: bool = False, max_delay: float = 0.0) -> None:
        self.fail = fail
        self.max_delay = max_delay
        self.calls: list[dict[str, Any]] = []

    async def send(self, *, sender_id: str, text: str, metadata: dict[str, Any]) -> BotTurn:
        self.calls.append({"sender_id": sender_id, "text": text, "metadata": metadata})
        if self.max_delay:
            await asyncio.sleep(random.uniform(0, self.max_delay))
        if self.fail:
            raise BotUnavailable("fake bot told to fail")
        return BotTurn(
            messages=[
                BotMessage(text=f"echo: {text}"),
                BotMessage(text="pick one", buttons=[{"title": "Yes", "payload": "/affirm"}]),
            ],
            intent="echo",
            confidence=0.9,
            entities=[{"entity": "word", "value": text.split()[0]}],
        )

    async def ping(self) -> None:
        if self.fail:
            raise BotUnavailable("fake bot told to fail")

    async def aclose(self) -> None:
        return None
