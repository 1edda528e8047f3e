"""Reading the bot contract's handoff signals out of one turn's events."""

import pytest

from connectors.rasa.outcome import rasa_turn
from conversation_api.bot import BotTurn
from conversation_api.handoff.service import lowest_rating_given, requested_reason
from tests.support.fakes import slot


def turn(*events: dict) -> BotTurn:
    return rasa_turn(events=list(events))


def feedback(rating: object) -> dict:
    return {"type": "feedback.received", "workflow": "feedback", "success": True, "data": {"rating": rating}}


@pytest.mark.parametrize(
    ("events", "reason"),
    [
        ((slot("handoff_requested", True), slot("handoff_reason", "customer_request")), "customer_request"),
        ((slot("handoff_requested", True), slot("handoff_reason", "workflow")), "workflow"),
        ((slot("handoff_requested", True),), "customer_request"),
        ((slot("handoff_requested", True), slot("handoff_reason", "made_up")), "workflow"),
        ((slot("handoff_requested", False), slot("handoff_reason", "customer_request")), None),
        ((slot("handoff_requested", "true"),), None),
        ((slot("handoff_reason", "customer_request"),), None),
        ((), None),
    ],
)
def test_requested_reason(events: tuple, reason: str | None) -> None:
    assert requested_reason(turn(*events)) == reason


@pytest.mark.parametrize(
    ("value", "low"),
    [
        ([feedback(1)], True),
        ([feedback("1")], True),
        ([feedback(2)], False),
        ([feedback(5), feedback(1)], True),
        ([feedback(None)], False),
        ([feedback("awful")], False),
        ([{"type": "order.placed", "data": {"rating": 1}}], False),
        ([{"type": "feedback.received"}], False),
        ("not a list", False),
        (None, False),
    ],
)
def test_lowest_rating_given(value: object, low: bool) -> None:
    assert lowest_rating_given(turn(slot("workflow_events", value))) is low
