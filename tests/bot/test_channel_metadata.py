"""The ReviewBot input channel hands the gateway's metadata to the custom actions.

On Rasa's Python (the API's environment has no Rasa, so this cannot run there), without
a server: the channel's message, the user event Rasa 3.6's `MessageProcessor.log_message`
makes of it, the tracker state Rasa sends the action server, and `turn_key()` read from it.
"""

from __future__ import annotations

import os
import re

import pytest

os.environ.setdefault("RASA_TELEMETRY_ENABLED", "false")

from rasa.core.channels.channel import CollectingOutputChannel  # noqa: E402
from rasa.shared.core.events import UserUttered  # noqa: E402
from rasa.shared.core.trackers import DialogueStateTracker  # noqa: E402
from rasa_sdk import Tracker  # noqa: E402

from actions.common import turn_key  # noqa: E402
from connectors.rasa.channel import user_message  # noqa: E402


def test_the_message_id_reaches_the_actions() -> None:
    body = {"sender": "conv-7", "message": "yes", "metadata": {"user_id": "u-1", "channel": "api", "message_id": 42}}
    message = user_message(body, CollectingOutputChannel(), "reviewbot")
    assert message.metadata == body["metadata"] and message.sender_id == "conv-7"

    # What log_message records for the message (its parse data would come from the NLU model).
    parse_data = {"intent": {"name": "affirm", "confidence": 0.99}, "entities": [], "text": message.text}
    event = UserUttered(
        message.text,
        parse_data["intent"],
        parse_data["entities"],
        parse_data,  # type: ignore[arg-type]
        input_channel=message.input_channel,
        message_id=message.message_id,
        metadata=message.metadata,
    )
    tracker = DialogueStateTracker.from_events("conv-7", [event])
    # The state the action server receives, round-tripped through an event dict as the tracker store does.
    reloaded = DialogueStateTracker.from_events("conv-7", [UserUttered.from_parameters(event.as_dict())])
    for state in (tracker.current_state(), reloaded.current_state()):
        assert state["latest_message"]["metadata"]["message_id"] == 42
        assert turn_key(Tracker.from_dict(state)) == "conv-7:42"


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        ({"sender": "c", "message": "hi", "metadata": ["message_id", 1]}, "metadata must be an object"),
        ({"sender": "", "message": "hi"}, "sender and message (strings) are required"),
        ({"sender": "c"}, "sender and message (strings) are required"),
        (None, "sender and message (strings) are required"),
    ],
)
def test_a_bad_body_is_refused_with_its_reason(body: object, reason: str) -> None:
    with pytest.raises(ValueError, match=re.escape(reason)):
        user_message(body, CollectingOutputChannel(), "reviewbot")


def test_no_metadata_is_no_turn_key() -> None:
    message = user_message({"sender": "c", "message": "hi"}, CollectingOutputChannel(), "reviewbot")
    state = DialogueStateTracker.from_events(
        "c", [UserUttered(message.text, metadata=message.metadata)]
    ).current_state()
    assert turn_key(Tracker.from_dict(state)) is None
