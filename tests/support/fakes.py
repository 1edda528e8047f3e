"""Test doubles for ports (used by unit and API integration tests only)."""

from __future__ import annotations

import asyncio
import random
from typing import Any

from connectors.rasa.outcome import rasa_turn
from conversation_api.bot import BotMessage, BotTurn, BotUnavailable


class FakeBot:
    """Echoes each message; can be told to fail or to take a random while to answer."""

    def __init__(self, *, fail: bool = False, max_delay: float = 0.0) -> None:
        self.fail = fail
        self.max_delay = max_delay
        self.calls: list[dict[str, Any]] = []
        self.fail_control = False
        self.control: list[tuple[str, str]] = []

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

    async def pause(self, sender_id: str) -> None:
        await self._control("pause", sender_id)

    async def resume(self, sender_id: str) -> None:
        await self._control("resume", sender_id)

    async def _control(self, verb: str, sender_id: str) -> None:
        if self.fail or self.fail_control:
            raise BotUnavailable("fake bot told to fail")
        self.control.append((verb, sender_id))

    def paused(self, sender_id: str) -> bool:
        """What a Rasa tracker would say after the pauses and resumes it received."""
        verbs = [verb for verb, sid in self.control if sid == sender_id]
        return bool(verbs) and verbs[-1] == "pause"

    async def aclose(self) -> None:
        return None


def slot(name: str, value: Any) -> dict[str, Any]:
    return {"event": "slot", "name": name, "value": value}


class ScriptedBot(FakeBot):
    """Answers like the business bot would for a few phrases, with the contract's handoff events.

    "human please" → request_human (handoff_requested); "gibberish…" → nlu_fallback;
    "rate N" → feedback.received with rating N; "escalate" → a workflow asking for a human.
    """

    async def send(self, *, sender_id: str, text: str, metadata: dict[str, Any]) -> BotTurn:
        self.calls.append({"sender_id": sender_id, "text": text, "metadata": metadata})
        if self.fail:
            raise BotUnavailable("fake bot told to fail")
        if text == "human please":
            return rasa_turn(
                messages=[BotMessage(text="A member of our team will reply here shortly.")],
                intent="request_human",
                confidence=0.98,
                events=[slot("handoff_requested", True), slot("handoff_reason", "customer_request")],
            )
        if text.startswith("gibberish"):
            return BotTurn(
                messages=[BotMessage(text="Sorry, I didn't quite understand that. Could you rephrase it?")],
                intent="nlu_fallback",
                confidence=0.3,
            )
        if text.startswith("rate "):
            rating = int(text.split()[1])
            event = {"type": "feedback.received", "workflow": "feedback", "success": True, "data": {"rating": rating}}
            return rasa_turn(
                messages=[BotMessage(text="Thanks for your feedback!")],
                intent="give_feedback",
                confidence=0.95,
                entities=[{"entity": "rating", "value": rating}],
                events=[slot("workflow_events", [event])],
            )
        if text == "escalate":
            return rasa_turn(
                messages=[BotMessage(text="I'll pass this to our team.")],
                intent="book_appointment",
                confidence=0.9,
                events=[slot("handoff_requested", True), slot("handoff_reason", "workflow")],
            )
        return BotTurn(messages=[BotMessage(text=f"bot: {text}")], intent="greet", confidence=0.9)
