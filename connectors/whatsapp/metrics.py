"""Prometheus metrics of the WhatsApp connector (default registry, so /metrics exposes them)."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

WEBHOOK_REQUESTS = Counter(
    "whatsapp_webhook_requests_total",
    "Webhook POSTs by outcome (ok, unsigned, bad_signature, malformed, too_large, not_configured).",
    ["result"],
)
WEBHOOK_ACK_SECONDS = Histogram(
    "whatsapp_webhook_ack_seconds",
    "Time to verify, store and acknowledge one webhook POST.",
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5),
)
INBOUND_MESSAGES = Counter(
    "whatsapp_inbound_messages_total",
    "Inbound messages by type; duplicate=true for redeliveries.",
    ["type", "duplicate"],
)
STATUSES = Counter(
    "whatsapp_statuses_total", "Status notifications by status and whether already seen.", ["status", "duplicate"]
)
INBOUND_PROCESSED = Counter(
    "whatsapp_inbound_processed_total", "Queued inbound messages handled by the worker, by outcome.", ["result"]
)
QUEUE_DEPTH = Gauge("whatsapp_inbound_queue_depth", "Inbound messages waiting for the worker (last poll).")
DEAD_DEPTH = Gauge(
    "whatsapp_inbound_dead", "Inbound messages dead after WHATSAPP_MAX_ATTEMPTS failed attempts (last poll)."
)
DEAD_LETTERS = Counter(
    "whatsapp_inbound_dead_letters",
    "Inbound messages moved to dead, by reason (error: the last attempt failed; lease_expired: it never ended).",
    ["reason"],
)
STALE_OUTCOMES = Counter(
    "whatsapp_inbound_stale_outcomes",
    "Outcomes a worker did not record because another worker had taken over its lease on the row.",
    ["outcome"],
)
OUTBOUND = Counter(
    "whatsapp_outbound_messages_total", "Messages handed to the Graph API, by kind and result.", ["kind", "result"]
)
GRAPH_ERRORS = Counter(
    "whatsapp_graph_errors_total", "Graph API error answers by error code (timeout, http_5xx...).", ["code"]
)
OUTSIDE_WINDOW = Counter(
    "whatsapp_outside_window_total", "Free-form messages not sent because the 24-hour service window was closed."
)
REPLY_SECONDS = Histogram(
    "whatsapp_reply_seconds",
    "From the webhook storing a message to its first reply being accepted by the Graph API.",
    buckets=(0.1, 0.25, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0, 60.0),
)
UNCONFIGURED_NUMBER = Counter(
    "whatsapp_unconfigured_number_total",
    "Messages and statuses acknowledged but not processed: for a phone number not in WHATSAPP_PHONE_NUMBER_ID.",
    ["phone_number_id", "kind"],
)
CONSENT_CHANGES = Counter(
    "whatsapp_consent_changes_total",
    "Consent ledger changes by action (opt_out, opt_in) and source (keyword, user_preferences, graph_error).",
    ["action", "source"],
)
TEMPLATES_SENT = Counter(
    "whatsapp_templates_total",
    "Template messages handed to the Graph API, by template and result.",
    ["template", "result"],
)
TEMPLATE_UPDATES = Counter(
    "whatsapp_template_updates_total",
    "Template status and quality notifications from Meta, by kind and value (APPROVED, PAUSED, RED...).",
    ["kind", "value"],
)
MEDIA_MESSAGES = Counter(
    "whatsapp_media_messages_total",
    "Media and locations the connector answered in the bot's place, by type; answered=false: a human has it.",
    ["type", "answered"],
)
MEDIA_DOWNLOADS = Counter(
    "whatsapp_media_downloads_total",
    "Media streamed to staff through the Graph API, by result (ok, not_found, too_large, graph_error).",
    ["result"],
)
