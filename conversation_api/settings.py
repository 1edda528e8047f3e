"""All runtime configuration, read once from the environment and `.env`."""

from __future__ import annotations

from datetime import time
from functools import lru_cache
from typing import Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from limits import parse as parse_rate_limit
from pydantic import Field, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

DEFAULT_JWT_SECRET = "changeme-development-only-secret-do-not-deploy"
DEFAULT_DATABASE_URL = "sqlite+aiosqlite:///./reviewbot.db"
DEFAULT_WHATSAPP_GRAPH_URL = "https://graph.facebook.com/v25.0"
WHATSAPP_SECRETS = ("whatsapp_verify_token", "whatsapp_app_secret", "whatsapp_access_token", "whatsapp_phone_number_id")


def normalise_database_url(url: str) -> str:
    """Map plain DSNs to the async drivers the API uses."""
    if url.startswith("postgres://"):
        url = "postgresql://" + url[len("postgres://") :]
    if url.startswith("postgresql://"):
        return "postgresql+psycopg://" + url[len("postgresql://") :]
    if url.startswith("sqlite:///"):
        return "sqlite+aiosqlite:///" + url[len("sqlite:///") :]
    return url


def parse_phone_numbers(value: str) -> dict[str, str]:
    """`id[=display name],...` -> {id: display name}; ValueError naming the entry that is wrong.

    Meta's phone number ids are digits; a number without a display name is shown by its id.
    """
    numbers: dict[str, str] = {}
    for n, entry in enumerate(value.split(","), start=1):
        entry = entry.strip()
        if not entry:
            raise ValueError(f"WHATSAPP_PHONE_NUMBER_ID: entry {n} is empty (a stray comma?)")
        number, _, name = (part.strip() for part in entry.partition("="))
        if not number.isdigit():
            raise ValueError(f"WHATSAPP_PHONE_NUMBER_ID: entry {n} ({entry!r}): a phone number id is digits only")
        if "=" in entry and not name:
            raise ValueError(f"WHATSAPP_PHONE_NUMBER_ID: entry {n} ({entry!r}): the display name after '=' is empty")
        if number in numbers:
            raise ValueError(f"WHATSAPP_PHONE_NUMBER_ID: phone number id {number} is listed twice")
        numbers[number] = name or number
    return numbers


def parse_quiet_hours(value: str) -> tuple[time, time] | None:
    """`HH:MM-HH:MM` (it may wrap past midnight) -> (start, end); empty -> None; ValueError otherwise."""
    if not value.strip():
        return None
    try:
        start, end = (time.fromisoformat(part.strip()) for part in value.split("-"))
    except ValueError:
        raise ValueError(f"REMINDER_QUIET_HOURS: {value!r} is not HH:MM-HH:MM (e.g. 21:00-08:00)") from None
    if start == end:
        raise ValueError(f"REMINDER_QUIET_HOURS: {value!r} starts and ends at the same time")
    return start, end


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_file=".env", extra="ignore")

    environment: Literal["development", "test", "production"] = "development"
    database_url: str = DEFAULT_DATABASE_URL
    database_schema: str | None = Field(
        default=None, description="PostgreSQL schema to use (search_path); tests isolate runs with it."
    )
    # Per API worker process; the defaults suit one host. On Kubernetes size them so that the HPA's
    # maximum cannot exhaust PostgreSQL's max_connections (deploy/k8s/README.md has the sum).
    database_pool_size: int = Field(default=20, ge=1, description="PostgreSQL connections each API worker keeps.")
    database_max_overflow: int = Field(
        default=20, ge=0, description="Extra PostgreSQL connections an API worker may open under load, then closes."
    )
    redis_url: str | None = None
    rasa_url: str = "http://127.0.0.1:5005"
    rasa_urls: str | None = Field(
        default=None,
        description="Several Rasa replicas, comma-separated; turns go round-robin, a replica that is down is skipped.",
    )
    rasa_token: str | None = None
    rasa_timeout: float = Field(default=10.0, gt=0)
    # One conversation unit of work (conversation_api/unit_of_work.py, locks.py, redrive.py).
    api_workers: int = Field(
        default=1, ge=1, description="API worker processes (uvicorn --workers); the SQLite default allows one."
    )
    conversation_lock_wait: float = Field(
        default=30.0, gt=0, description="Seconds a message waits behind its conversation's earlier ones before a 503."
    )
    bot_redrive_interval_seconds: float = Field(
        default=10.0, gt=0, description="Seconds between passes of the re-driver over unanswered API messages."
    )
    bot_redrive_min_age_seconds: float = Field(
        default=30.0, gt=0, description="A pending message younger than this is left alone (its turn may be running)."
    )
    bot_redrive_max_age_seconds: float = Field(
        default=900.0, gt=0, description="A message the bot could not answer this long goes to a human instead."
    )
    jwt_secret: str = DEFAULT_JWT_SECRET
    jwt_public_key: str | None = Field(
        default=None, description="PEM public key; when set, RS256 tokens are accepted too."
    )
    jwt_ttl_seconds: int = 3600
    log_level: str = "INFO"
    # Request limits (conversation_api/body_limit.py, conversation_api/ratelimit.py).
    max_body_bytes: int = Field(
        default=65_536, gt=0, description="Largest request body, in bytes (the WhatsApp webhook has its own)."
    )
    rate_limit_messages: str | None = Field(
        default="30/minute",
        description="Messages one user may send (POST /api/v1/messages, CSR replies), e.g. `30/minute`; "
        "empty or 0 turns the limit off.",
    )
    rate_limit_redis_url: str | None = Field(
        default=None, description="Redis for the rate limit's windows; REDIS_URL when unset; in-process when both are."
    )
    # Events and metrics (conversation_api/events, conversation_api/metrics).
    events_redis_url: str | None = Field(
        default=None, description="Redis for the event streams; REDIS_URL when unset; in-process when both are."
    )
    events_stream_prefix: str = Field(default="reviewbot:events", min_length=1)
    events_stream_maxlen: int = Field(default=100_000, ge=100)
    event_relay_interval: float = Field(default=0.25, gt=0, description="Seconds between outbox polls when idle.")
    event_relay_batch: int = Field(default=500, ge=1)
    events_max_deliveries: int = Field(
        default=5, ge=1, description="Deliveries of an event a consumer's handler fails on before it is dead-lettered."
    )
    session_idle_gap_seconds: int = Field(
        default=1800, ge=1, description="Silence after which a conversation's session ends (session duration)."
    )
    handoff_timeout: float = Field(
        default=600, gt=0, description="Seconds a handed-off conversation waits for a CSR before the bot takes it back."
    )
    handoff_idle_timeout: float = Field(
        default=1800, gt=0, description="Seconds without a message after which a CSR's conversation is resolved."
    )
    handoff_sweep_interval: float = Field(
        default=15, gt=0, description="Seconds between checks for handoff timeouts and unsynced bot pauses."
    )
    # Conversation review (conversation_api/review, docs/review.md).
    review_confidence_threshold: float = Field(
        default=0.7, ge=0, le=1, description="A customer message the bot read with less confidence is reviewed."
    )
    review_turns_before_handoff: int = Field(
        default=2, ge=0, description="Customer messages before each handoff that go to review (0: none)."
    )
    review_context_turns: int = Field(default=3, ge=0, le=20, description="Turns shown before and after an item.")
    review_domain_path: str = Field(
        default="domain.yml", description="The bot's domain: the intents and entities a reviewer may choose."
    )
    review_heldout_dir: str = Field(
        default="tests/nlu", description="Held-out NLU sets; the export refuses any example found in them."
    )
    review_export_path: str = Field(
        default="rasa_project/data/nlu/reviewed.yml", description="Where make export-reviewed writes."
    )
    review_backlog_interval: float = Field(
        default=60, gt=0, description="Seconds between refreshes of the review backlog gauge."
    )

    # WhatsApp Cloud API connector (connectors/whatsapp): enabled when all four secrets are set.
    whatsapp_verify_token: str | None = None
    whatsapp_app_secret: str | None = None
    whatsapp_access_token: str | None = None
    whatsapp_phone_number_id: str | None = Field(
        default=None,
        description="The business phone number ids, comma-separated, each optionally `=<display name>` "
        "(`106540352242922=Main salon,106540352242923=Downtown`); the first is the default sender.",
    )
    whatsapp_graph_url: str = DEFAULT_WHATSAPP_GRAPH_URL
    whatsapp_rate_per_second: float = Field(default=80.0, gt=0, description="Sends per second per phone number.")
    whatsapp_max_body_bytes: int = Field(default=1_048_576, gt=0)
    whatsapp_send_timeout: float = Field(default=10.0, gt=0)
    whatsapp_send_attempts: int = Field(default=5, ge=1, description="Graph API attempts for retryable errors.")
    whatsapp_backoff_initial_seconds: float = Field(default=0.5, gt=0, description="First Graph API retry delay.")
    whatsapp_worker_concurrency: int = Field(default=16, ge=1)
    whatsapp_retry_base_seconds: float = Field(default=2.0, gt=0, description="First backoff of a queued message.")
    whatsapp_retry_max_seconds: float = Field(default=300.0, gt=0)
    whatsapp_lease_seconds: float = Field(default=120.0, gt=0, description="A claimed message is retried after this.")
    whatsapp_max_attempts: int = Field(
        default=8, ge=1, description="Failed attempts (not bot outages) before a queued message is dead."
    )
    # Media (docs/whatsapp.md#media): staff view it through the connector, capped; the reply to a shared
    # location gives the business's address from the business file the action server reads.
    whatsapp_media_max_bytes: int = Field(
        default=16 * 1024 * 1024, gt=0, description="Largest media streamed to the console (bytes)."
    )
    business_data_dir: str | None = Field(
        default=None, description="Folder of salon.yml (default rasa_project/business), as BUSINESS_DATA_DIR."
    )
    # Templates and consent (docs/whatsapp.md#templates-and-the-24-hour-window, #consent).
    whatsapp_templates_file: str | None = Field(
        default=None,
        description="YAML file of the message templates approved in WhatsApp Manager; checked at start-up.",
    )
    whatsapp_opt_out_keywords: str = Field(
        default="", description="Opt-out keywords besides STOP and UNSUBSCRIBE, comma-separated (e.g. BAJA,ARRET)."
    )
    whatsapp_opt_in_keywords: str = Field(default="", description="Opt-in keywords besides START, comma-separated.")
    whatsapp_opt_out_reply: str = Field(
        default="You're unsubscribed: we won't send you messages you didn't ask for. Reply START to subscribe again.",
        min_length=1,
        max_length=4096,
    )
    whatsapp_opt_in_reply: str = Field(
        default="You're subscribed again. Reply STOP at any time to unsubscribe.", min_length=1, max_length=4096
    )
    whatsapp_opt_out_covers_utility: bool = Field(
        default=True,
        description="A customer's STOP also stops utility and authentication templates (marketing ones always stop).",
    )
    # Appointment reminders (conversation_api/reminders/): a utility template before each booked appointment.
    reminder_template: str = Field(
        default="appointment_reminder", description="The registry's template a reminder sends; empty turns them off."
    )
    reminder_template_language: str | None = Field(default=None, description="Its language, if it has several.")
    reminder_lead_hours: float = Field(default=24, gt=0, description="Hours before the appointment a reminder goes.")
    reminder_quiet_hours: str = Field(
        default="21:00-08:00", description="HH:MM-HH:MM in BUSINESS_TIMEZONE when no reminder goes out; empty: none."
    )
    business_timezone: str = Field(default="Europe/London", description="The business's time zone (as salon.yml).")
    reminder_customer_spacing_seconds: float = Field(
        default=6, ge=0, description="Least time between two reminders to one customer (Meta's 131056 pacing)."
    )
    reminder_poll_seconds: float = Field(default=5, gt=0, description="Seconds between the scheduler's passes.")
    reminder_lease_seconds: float = Field(default=60, gt=0, description="A claimed reminder is taken up after this.")
    reminder_max_attempts: int = Field(default=5, ge=1, description="Failed sends before a reminder is failed.")

    @field_validator("database_url")
    @classmethod
    def _normalise_dsn(cls, value: str) -> str:
        return normalise_database_url(value)

    @field_validator(
        "redis_url",
        "events_redis_url",
        "rate_limit_redis_url",
        "rasa_token",
        "rasa_urls",
        "jwt_public_key",
        "database_schema",
        "whatsapp_templates_file",
        "business_data_dir",
        *WHATSAPP_SECRETS,
        mode="before",
    )
    @classmethod
    def _empty_is_unset(cls, value: object) -> object:
        return None if value == "" else value

    @field_validator("rate_limit_messages", mode="before")
    @classmethod
    def _valid_rate(cls, value: object) -> object:
        if value is None or (isinstance(value, str) and value.strip() in ("", "0")):
            return None
        if isinstance(value, str):
            parse_rate_limit(value)  # raises ValueError naming what it could not read
        return value

    @field_validator("rasa_url", "whatsapp_graph_url")
    @classmethod
    def _strip_slash(cls, value: str) -> str:
        return value.rstrip("/")

    @model_validator(mode="after")
    def _whatsapp_all_or_nothing(self) -> Settings:
        given = [name for name in WHATSAPP_SECRETS if getattr(self, name)]
        if given and len(given) != len(WHATSAPP_SECRETS):
            missing = ", ".join(n.upper() for n in WHATSAPP_SECRETS if n not in given)
            raise ValueError(f"the WhatsApp connector needs all of its settings; missing {missing}")
        if self.environment == "production" and self.whatsapp_app_secret and "changeme" in self.whatsapp_app_secret:
            raise ValueError("WHATSAPP_APP_SECRET must be the app's real secret outside development")
        return self

    @model_validator(mode="after")
    def _valid_phone_numbers(self) -> Settings:
        if self.whatsapp_phone_number_id:
            parse_phone_numbers(self.whatsapp_phone_number_id)  # raises ValueError saying which entry is wrong
        return self

    @field_validator("reminder_quiet_hours")
    @classmethod
    def _valid_quiet_hours(cls, value: str) -> str:
        parse_quiet_hours(value)  # raises ValueError saying what it could not read
        return value.strip()

    @field_validator("business_timezone")
    @classmethod
    def _valid_timezone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"BUSINESS_TIMEZONE: unknown time zone {value!r}") from None
        return value

    @model_validator(mode="after")
    def _one_process_on_sqlite(self) -> Settings:
        if self.is_sqlite and self.api_workers > 1:
            raise ValueError(
                "API_WORKERS > 1 needs PostgreSQL: on SQLite a conversation's lock serialises one process only "
                "(set API_WORKERS=1 or DATABASE_URL to PostgreSQL)"
            )
        return self

    @model_validator(mode="after")
    def _refuse_default_secrets(self) -> Settings:
        if self.environment == "production":
            if not self.jwt_secret or self.jwt_secret == DEFAULT_JWT_SECRET or "changeme" in self.jwt_secret:
                raise ValueError("JWT_SECRET must be set to a real secret outside development")
            if len(self.jwt_secret) < 32:
                raise ValueError("JWT_SECRET must be at least 32 characters in production")
            if not self.rasa_token:
                raise ValueError("RASA_TOKEN must be set outside development")
        return self

    @property
    def rasa_replicas(self) -> list[str]:
        """The Rasa servers to use: RASA_URLS when set, RASA_URL otherwise."""
        if self.rasa_urls:
            return [url.strip().rstrip("/") for url in self.rasa_urls.split(",") if url.strip()]
        return [self.rasa_url]

    @property
    def whatsapp_enabled(self) -> bool:
        return all(getattr(self, name) for name in WHATSAPP_SECRETS)

    @property
    def whatsapp_keywords(self) -> tuple[list[str], list[str]]:
        """(extra opt-out keywords, extra opt-in keywords) as configured."""
        return (
            [k.strip() for k in self.whatsapp_opt_out_keywords.split(",") if k.strip()],
            [k.strip() for k in self.whatsapp_opt_in_keywords.split(",") if k.strip()],
        )

    @property
    def whatsapp_phone_numbers(self) -> dict[str, str]:
        """Phone number id -> display name, in the order configured (the first is the default sender)."""
        return parse_phone_numbers(self.whatsapp_phone_number_id) if self.whatsapp_phone_number_id else {}

    @property
    def is_sqlite(self) -> bool:
        return self.database_url.startswith("sqlite")

    @property
    def event_bus_url(self) -> str | None:
        return self.events_redis_url or self.redis_url

    @property
    def rate_limit_store_url(self) -> str | None:
        return self.rate_limit_redis_url or self.redis_url


@lru_cache
def get_settings() -> Settings:
    return Settings()
