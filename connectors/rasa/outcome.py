"""Rasa's vocabulary to ours: one turn's tracker events become a typed `BotTurn`, here and nowhere else.

The bot contract (what the actions set in a turn): the slots `handoff_requested`
(true) and `handoff_reason`, and `workflow_events`, a list of
`{"type", "workflow", "success", "data"}` reports. A malformed report is dropped
with a warning; a feedback report's rating is parsed to a whole 1-5 or None.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from typing import Any

from conversation_api.bot import BotMessage, BotTurn, WorkflowOutcome
from conversation_api.events.envelope import WORKFLOW_EVENT_TYPES, WORKFLOWS, EventType

log = logging.getLogger(__name__)


def _slot_values(events: Iterable[dict[str, Any]], name: str) -> list[Any]:
    return [e.get("value") for e in events if e.get("event") == "slot" and e.get("name") == name]


def parse_rating(data: dict[str, Any]) -> int | None:
    """A whole 1-5 rating; entity values arrive as strings, so "4" counts too."""
    rating = data.get("rating")
    if isinstance(rating, str) and rating.strip().isdigit():
        rating = int(rating)
    if isinstance(rating, bool) or not isinstance(rating, int):
        return None
    return rating if 1 <= rating <= 5 else None


def workflow_outcomes(events: Sequence[dict[str, Any]]) -> list[WorkflowOutcome]:
    """The well-formed workflow outcomes the actions reported in this turn, in order."""
    outcomes: list[WorkflowOutcome] = []
    for value in _slot_values(events, "workflow_events"):
        for report in value if isinstance(value, list) else []:
            if not isinstance(report, dict) or report.get("type") not in WORKFLOW_EVENT_TYPES:
                log.warning("ignored malformed workflow event report=%r", report)
                continue
            data = report.get("data")
            data = data if isinstance(data, dict) else {}
            outcomes.append(
                WorkflowOutcome(
                    type=report["type"],
                    workflow=str(report["workflow"]) if report.get("workflow") in WORKFLOWS else "other",
                    success=bool(report.get("success")),
                    data=data,
                    rating=parse_rating(data) if report["type"] == EventType.feedback_received else None,
                )
            )
    return outcomes


def handoff_reason(events: Sequence[dict[str, Any]]) -> str | None:
    """The reason the bot gave when it set `handoff_requested` to true in this turn; "" when it gave none."""
    if True not in _slot_values(events, "handoff_requested"):
        return None
    reasons = [r for r in _slot_values(events, "handoff_reason") if r]
    return str(reasons[-1]) if reasons else ""


def rasa_turn(
    *,
    messages: Sequence[BotMessage] = (),
    intent: str | None = None,
    confidence: float | None = None,
    entities: Sequence[dict[str, Any]] = (),
    events: Sequence[dict[str, Any]] = (),
    paused: bool = False,
) -> BotTurn:
    """The typed turn for what Rasa reported."""
    return BotTurn(
        messages=list(messages),
        intent=intent,
        confidence=confidence,
        entities=list(entities),
        handoff_reason=handoff_reason(events),
        workflows=workflow_outcomes(events),
        paused=paused,
    )


def _message(raw: dict[str, Any]) -> BotMessage:
    custom = raw.get("custom")
    return BotMessage(
        text=raw.get("text") or "",
        buttons=raw.get("buttons") or None,
        image=raw.get("image") or None,
        custom=custom if isinstance(custom, dict) else ({"value": custom} if custom else None),
    )


def parse_turn(body: dict[str, Any]) -> BotTurn:
    """The typed turn for the ReviewBot channel's reply body (connectors/rasa/channel.py)."""
    return rasa_turn(
        messages=[_message(m) for m in body.get("messages", [])],
        intent=body.get("intent"),
        confidence=body.get("confidence"),
        entities=list(body.get("entities") or []),
        events=list(body.get("events") or []),
        paused=bool(body.get("paused", False)),
    )
