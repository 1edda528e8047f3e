"""The bot port: what the gateway needs from a conversational engine.

The Rasa adapter lives in `connectors/rasa/client.py`; tests may pass any object
with the same shape.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol


class BotUnavailable(Exception):
    """The bot could not produce a reply (down, timing out, or answering with an error)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True, slots=True)
class BotMessage:
    text: str
    buttons: list[dict[str, Any]] | None = None
    image: str | None = None
    custom: dict[str, Any] | None = None

    def payload(self) -> dict[str, Any] | None:
        extra = {k: v for k, v in (("buttons", self.buttons), ("image", self.image), ("custom", self.custom)) if v}
        return extra or None


@dataclass(frozen=True, slots=True)
class WorkflowOutcome:
    """A workflow step an action reported (a booking made, an order placed, feedback given)."""

    type: str  # a workflow event type of events/envelope.py, e.g. "appointment.booked"
    workflow: str  # one of envelope.WORKFLOWS, or "other"
    success: bool
    data: dict[str, Any] = field(default_factory=dict)
    rating: int | None = None  # feedback.received: the whole 1-5 rating, if it had one


@dataclass(frozen=True, slots=True)
class BotTurn:
    """One user message run through the bot, in our terms (the adapter translates the bot's own)."""

    messages: list[BotMessage]
    intent: str | None = None
    confidence: float | None = None
    entities: list[dict[str, Any]] = field(default_factory=list)
    # The bot asked for a human in this turn, for this reason ("" when it gave none).
    handoff_reason: str | None = None
    workflows: list[WorkflowOutcome] = field(default_factory=list)
    # The bot's own state says paused (it would log but not answer).
    paused: bool = False

    @property
    def text(self) -> str:
        return "\n".join(m.text for m in self.messages if m.text)


class Bot(Protocol):
    async def send(self, *, sender_id: str, text: str, metadata: dict[str, Any]) -> BotTurn:
        """Run one user message through the bot; raise BotUnavailable on failure."""
        ...

    async def ping(self) -> None:
        """Return when the bot answers; raise BotUnavailable otherwise."""
        ...

    async def pause(self, sender_id: str) -> None:
        """Stop the bot answering `sender_id` (a human has it); raise BotUnavailable on failure."""
        ...

    async def resume(self, sender_id: str) -> None:
        """Let the bot answer `sender_id` again, its handoff request cleared; raise BotUnavailable on failure."""
        ...

    async def aclose(self) -> None: ...
