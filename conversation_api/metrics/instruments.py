"""Every Prometheus metric the API exports, and small helpers other packages call.

Labels are bounded sets (channel, sender, intent, workflow, route template,
state): never a user or conversation id. Names are what monitoring/ queries;
tests/integration/test_monitoring.py checks the dashboard against them.
"""

from __future__ import annotations

import os

from prometheus_client import Counter, Gauge, Histogram, disable_created_metrics

# `*_created` series double the exposition and nothing here reads them.
disable_created_metrics()  # type: ignore[no-untyped-call]

if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
    # Several worker processes share their figures through files here (see metrics/router.py).
    os.makedirs(os.environ["PROMETHEUS_MULTIPROC_DIR"], exist_ok=True)

MESSAGES = Counter(
    "reviewbot_messages",
    "Messages stored: received from customers, sent by the bot or a CSR.",
    ["direction", "sender", "channel"],
)
INTENTS = Counter("reviewbot_intents", "Customer messages by the intent the bot detected.", ["intent", "channel"])
SESSION_DURATION = Histogram(
    "reviewbot_session_duration_seconds",
    "Conversation sessions, first to last message; a session ends after SESSION_IDLE_GAP_SECONDS of silence.",
    ["channel"],
    buckets=(15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 14400),
)
BOT_RESPONSE = Histogram(
    "reviewbot_bot_response_seconds",
    "From receiving a customer message to the bot's reply being stored.",
    ["channel"],
    buckets=(0.025, 0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30),
)
CSR_FIRST_RESPONSE = Histogram(
    "reviewbot_csr_first_response_seconds",
    "From a handoff request to the first CSR reply in that conversation.",
    ["channel"],
    buckets=(5, 15, 30, 60, 120, 300, 600, 1800, 3600, 7200, 21600),
)
WORKFLOWS = Counter(
    "reviewbot_workflows",
    "Automated workflows the bot's actions completed (outcome=success) or failed (outcome=failure).",
    ["workflow", "outcome"],
)
FEEDBACK_RATING = Histogram(
    "reviewbot_feedback_rating",
    "Customer satisfaction ratings (1-5) by channel and source (api or bot).",
    ["channel", "source"],
    buckets=(1, 2, 3, 4, 5),
)
HANDOFFS_REQUESTED = Counter(
    "reviewbot_handoffs_requested", "Conversations the bot asked to hand to a human.", ["reason", "channel"]
)
HANDOFF_TRANSITIONS = Counter(
    "reviewbot_handoff_transitions", "Handoff state changes (pending_human, with_human, bot).", ["to_state"]
)
HTTP_REQUESTS = Counter(
    "reviewbot_http_requests", "HTTP requests by route template and status.", ["method", "route", "status"]
)
HTTP_LATENCY = Histogram(
    "reviewbot_http_request_duration_seconds",
    "HTTP request latency by route template.",
    ["method", "route"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)
BOT_CALLS = Histogram(
    "reviewbot_bot_call_duration_seconds",
    "Calls to the bot (Rasa) by outcome (ok or error).",
    ["outcome"],
    buckets=(0.025, 0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30),
)
BOT_CALL_FAILURES = Counter("reviewbot_bot_call_failures", "Calls to the bot (Rasa) that failed.")
BOT_REPLICA_REQUESTS = Counter(
    "reviewbot_bot_replica_requests",
    "Requests to each Rasa replica: ok (answered), refused (skipped, the next replica tried) or error.",
    ["replica", "outcome"],
)
EVENTS_PUBLISHED = Counter("reviewbot_events_published", "Events the outbox relay published, by type.", ["type"])
EVENT_PUBLISH_FAILURES = Counter(
    "reviewbot_event_publish_failures", "Outbox relay attempts that failed (bus or database unavailable)."
)
OUTBOX_BACKLOG = Gauge(
    "reviewbot_event_outbox_backlog", "Events committed but not yet published.", multiprocess_mode="max"
)
EVENTS_DEAD_LETTERED = Counter(
    "reviewbot_events_dead_lettered",
    "Events a consumer group gave up on after EVENTS_MAX_DELIVERIES deliveries (moved to the dead-letter stream).",
    ["group", "type"],
)
WHATSAPP_SEND_FAILURES = Counter(
    "reviewbot_whatsapp_send_failures", "Messages the Graph API refused or that could not reach it, by code.", ["code"]
)
RATE_LIMIT_STORE_FAILURES = Counter(
    "reviewbot_rate_limit_store_failures",
    "Rate limit checks the shared store (Redis) failed; each starts a spell of limiting in this process.",
)

SENT_BY = {"user": "received", "bot": "sent", "csr": "sent"}


def count_message(*, sender: str, channel: str, count: int = 1) -> None:
    MESSAGES.labels(SENT_BY.get(sender, "sent"), sender, channel).inc(count)


def observe_csr_first_response(*, channel: str, seconds: float) -> None:
    """Call when a CSR's first reply after a handoff request is stored."""
    CSR_FIRST_RESPONSE.labels(channel).observe(max(seconds, 0.0))


def count_handoff_transition(*, to_state: str) -> None:
    """Call on every handoff state change (bot -> pending_human -> with_human -> bot)."""
    HANDOFF_TRANSITIONS.labels(to_state).inc()


def count_whatsapp_send_failure(*, code: str | int) -> None:
    """Call when a WhatsApp send fails; `code` is the Graph API error code, or e.g. 'timeout'."""
    WHATSAPP_SEND_FAILURES.labels(str(code)).inc()


def observe_feedback(*, rating: int, channel: str, source: str) -> None:
    FEEDBACK_RATING.labels(channel, source).observe(rating)


LOCK_WAIT = Histogram(
    "reviewbot_conversation_lock_wait_seconds",
    "Time a turn waited for its conversation's lock (another turn of the same conversation ahead of it).",
    buckets=(0.001, 0.005, 0.025, 0.1, 0.5, 1, 2, 5, 10, 30),
)
TURNS_REDRIVEN = Counter(
    "reviewbot_turns_redriven",
    "Stored customer messages sent to the bot again: a client retry of an unanswered message, or the "
    "re-driver answering messages stored during a bot outage; outcome answered|failed|handed_off.",
    ["trigger", "outcome"],
)
IDEMPOTENT_REPLAYS = Counter(
    "reviewbot_idempotent_replays",
    "Client retries of a message already answered (same client_message_id): the stored reply was returned.",
)
BOT_PAUSE_REPAIRED = Counter(
    "reviewbot_bot_pause_repaired",
    "Turns where Rasa reported the conversation paused while the handoff state said bot; Rasa was resumed.",
)

REVIEW_BACKLOG = Gauge(
    "reviewbot_review_backlog",
    "Customer messages waiting for review (low confidence, fallback, out of scope, before a handoff, low "
    "rating, flagged), refreshed every REVIEW_BACKLOG_INTERVAL and after each review decision.",
    multiprocess_mode="max",
)
REVIEW_DECISIONS = Counter(
    "reviewbot_review_decisions",
    "Review decisions on customer messages: confirmed, corrected, ignored or reopened, by the predicted intent.",
    ["decision", "predicted_intent"],
)
REVIEW_CORRECTIONS = Counter(
    "reviewbot_review_corrections",
    "Reviewed messages whose intent or entities a reviewer corrected, by the intent the bot predicted and the "
    "intent the reviewer gave.",
    ["predicted_intent", "intent"],
)


def count_review_decision(*, decision: str, predicted_intent: str | None, intent: str | None) -> None:
    """Call after a review decision commits (intents are the domain's: a bounded set)."""
    predicted = predicted_intent or "none"
    REVIEW_DECISIONS.labels(decision, predicted).inc()
    if decision == "corrected":
        REVIEW_CORRECTIONS.labels(predicted, intent or "none").inc()


def set_review_backlog(size: int) -> None:
    REVIEW_BACKLOG.set(size)


REMINDERS = Counter(
    "reviewbot_appointment_reminders",
    "Appointment reminders by outcome: scheduled, sent, failed, interrupted, skipped, cancelled (the appointment "
    "was), and the customer's answer to a sent one: confirmed, rescheduled, cancelled_by_customer.",
    ["outcome"],
)
