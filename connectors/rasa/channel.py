"""Rasa input channel that answers one user message with replies *and* NLU results.

Loaded by the Rasa server (Python 3.10) from credentials.yml as
`connectors.rasa.channel.ReviewBotInput`. Rasa's REST channel returns only the
bot's messages and hides errors as `[]`; this channel returns
`{messages, intent, confidence, entities, slots, events, paused, tracker_events}`
in one call, and answers 500 when the turn fails, so the gateway can tell failure from silence.
"""

from __future__ import annotations

import hmac
import logging
import os
from collections.abc import Awaitable, Callable
from typing import Any

from rasa.core.channels.channel import CollectingOutputChannel, InputChannel, UserMessage
from rasa.shared.core.events import UserUttered
from sanic import Blueprint, response
from sanic.request import Request
from sanic.response import HTTPResponse

from connectors.rasa import server_tuning

log = logging.getLogger(__name__)

# Events after the user's message that the gateway may act on (handoff, workflows).
REPORTED_EVENTS = {"slot", "action", "pause", "resume", "active_loop", "followup", "reset_slots"}


def turn_events(tracker: Any) -> list[dict[str, Any]]:
    """Events the bot produced for the latest user message, oldest first."""
    produced: list[dict[str, Any]] = []
    for event in reversed(tracker.events):
        if isinstance(event, UserUttered):
            break
        data = event.as_dict()
        if data.get("event") in REPORTED_EVENTS:
            data.pop("timestamp", None)
            produced.append(data)
    produced.reverse()
    return produced


def turn_result(tracker: Any, messages: list[dict[str, Any]]) -> dict[str, Any]:
    parse = tracker.latest_message.parse_data if tracker.latest_message else {}
    intent = parse.get("intent") or {}
    return {
        "messages": messages,
        "intent": intent.get("name"),
        "confidence": intent.get("confidence"),
        "entities": [
            {k: e.get(k) for k in ("entity", "value", "start", "end", "confidence_entity", "role", "group") if k in e}
            for e in parse.get("entities", [])
        ],
        "slots": {k: v for k, v in tracker.current_slot_values().items() if v is not None},
        "events": turn_events(tracker),
        "paused": tracker.is_paused(),
        # How many events this turn worked on: the current session's, not the conversation's life.
        "tracker_events": len(tracker.events),
    }


def user_message(body: Any, output_channel: CollectingOutputChannel, input_channel: str) -> UserMessage:
    """The webhook's body as Rasa's message; ValueError (the reason) when it is not one.

    The metadata goes through whole: it becomes the user event's metadata, which the
    action server reads as `tracker.latest_message["metadata"]` (the user id, the
    channel, and the stored message's id that keys idempotent actions).
    """
    body = body if isinstance(body, dict) else {}
    sender, text, metadata = body.get("sender"), body.get("message"), body.get("metadata") or {}
    if not isinstance(sender, str) or not sender or not isinstance(text, str):
        raise ValueError("sender and message (strings) are required")
    if not isinstance(metadata, dict):
        raise ValueError("metadata must be an object")
    return UserMessage(text, output_channel, sender, input_channel=input_channel, metadata=metadata)


async def run_turn(agent: Any, message: UserMessage) -> Any:
    """Rasa's `Agent.handle_message`, keeping the tracker it produced.

    The same steps as `MessageProcessor.handle_message` in Rasa 3.6 under the same
    conversation lock; the stock path returns only the bot's messages, and reading the
    tracker back afterwards cost a second tracker-store load on every turn.
    """
    processor = agent.processor
    if processor is None:
        raise RuntimeError("no model is loaded")
    async with agent.lock_store.lock(message.sender_id):
        tracker = await processor.log_message(message, should_save_tracker=False)
        tracker = await processor.run_action_extract_slots(message.output_channel, tracker)
        await processor._run_prediction_loop(message.output_channel, tracker)
        await processor.run_anonymization_pipeline(tracker)
        await processor.save_tracker(tracker)
    return tracker


class ReviewBotInput(InputChannel):
    """`POST /webhooks/reviewbot/webhook {sender, message, metadata}`."""

    @classmethod
    def name(cls) -> str:
        return "reviewbot"

    @classmethod
    def from_credentials(cls, credentials: dict[str, Any] | None) -> InputChannel:
        # The server creates its channels before it loads the model: the moment to tune it.
        server_tuning.install()
        token = (credentials or {}).get("token") or os.environ.get("RASA_TOKEN") or None
        return cls(token=token)

    def __init__(self, token: str | None = None) -> None:
        self.token = token

    def _authorised(self, request: Request) -> bool:
        if not self.token:
            return True
        supplied = request.headers.get("Authorization", "")
        expected = f"Bearer {self.token}"
        return hmac.compare_digest(supplied.encode(), expected.encode())

    def blueprint(self, on_new_message: Callable[[UserMessage], Awaitable[Any]]) -> Blueprint:
        hook = Blueprint("reviewbot_webhook", __name__)

        @hook.route("/", methods=["GET"])
        async def health(_: Request) -> HTTPResponse:
            return response.json({"status": "ok"})

        @hook.route("/webhook", methods=["POST"])
        async def receive(request: Request) -> HTTPResponse:
            if not self._authorised(request):
                return response.json({"error": "invalid or missing bearer token"}, status=401)
            collector = CollectingOutputChannel()
            try:
                message = user_message(request.json, collector, self.name())
            except ValueError as exc:
                return response.json({"error": str(exc)}, status=400)
            sender = message.sender_id
            try:
                tracker = await run_turn(request.app.ctx.agent, message)
            except Exception:  # the gateway must see failure, not an empty reply
                log.exception("turn failed sender=%s", sender)
                return response.json({"error": "the bot failed to process the message"}, status=500)
            if tracker is None:
                return response.json({"error": "no tracker after the turn"}, status=500)
            return response.json(turn_result(tracker, collector.messages))

        return hook
