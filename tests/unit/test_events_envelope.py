"""The event envelope and how a bot turn's slot events become workflow events (no I/O)."""

from datetime import UTC, datetime

from connectors.rasa.outcome import parse_rating as _rating
from connectors.rasa.outcome import rasa_turn, workflow_outcomes
from conversation_api.bot import WorkflowOutcome
from conversation_api.events.envelope import Event, EventType
from tests.support.events import slot


def test_the_envelope_round_trips_through_json() -> None:
    event = Event(
        type=EventType.order_placed,
        conversation_id="c",
        user_id="u",
        channel="whatsapp",
        payload={"workflow": "order", "success": True, "data": {"total": "12.50"}},
        occurred_at=datetime(2026, 11, 25, 14, 0, 0, 123456, tzinfo=UTC),
    ).with_sequence(42)
    data = event.to_dict()
    assert data["occurred_at"] == "2026-11-25T14:00:00.123456Z" and data["version"] == 1 and data["sequence"] == 42
    assert Event.from_json(event.to_json()) == event
    assert Event(type="x", conversation_id=None, user_id=None, channel=None).id != event.id


def test_workflow_reports_keep_well_formed_entries_in_order() -> None:
    booked = {"type": "appointment.booked", "workflow": "booking", "success": True, "data": {"id": 1}}
    failed = {"type": "order.placed", "workflow": "order", "success": False}
    turn_events = [
        slot("workflow_events", [booked, {"type": "order.shipped"}, "junk", failed]),
        slot("other", [booked]),
        slot("workflow_events", None),
        slot("workflow_events", [{"type": "contact.updated", "workflow": "made_up", "success": 1, "data": "x"}]),
    ]
    turn = rasa_turn(events=turn_events)
    assert (
        turn.workflows
        == workflow_outcomes(turn_events)
        == [
            WorkflowOutcome(type="appointment.booked", workflow="booking", success=True, data={"id": 1}),
            WorkflowOutcome(type="order.placed", workflow="order", success=False, data={}),
            WorkflowOutcome(type="contact.updated", workflow="other", success=True, data={}),
        ]
    )


def test_a_feedback_outcome_carries_its_parsed_rating() -> None:
    rated = {"type": "feedback.received", "workflow": "feedback", "success": True, "data": {"rating": "2"}}
    [outcome] = rasa_turn(events=[slot("workflow_events", [rated])]).workflows
    assert outcome.rating == 2


def test_only_whole_ratings_from_one_to_five_count() -> None:
    assert [_rating({"rating": r}) for r in (1, 5, "4", 0, 6, 3.5, True, None, "x")] == [
        1,
        5,
        4,
        None,
        None,
        None,
        None,
        None,
        None,
    ]
