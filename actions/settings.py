"""Action-server settings, read from the environment (same names as the API's where shared)."""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Mapping, Optional

DEFAULT_DATABASE_URL = "sqlite:///./reviewbot.db"


def normalise_database_url(url: str) -> str:
    """Map the API's async DSNs (and plain ones) to the sync drivers of the Rasa environment."""
    url = url.strip()
    if url.startswith("postgres://"):
        url = "postgresql://" + url[len("postgres://"):]
    for prefix in ("postgresql+psycopg://", "postgresql+asyncpg://", "postgresql://"):
        if url.startswith(prefix):
            return "postgresql+psycopg2://" + url[len(prefix):]
    if url.startswith("sqlite+aiosqlite://"):
        return "sqlite://" + url[len("sqlite+aiosqlite://"):]
    return url


def _blank_is_none(value: Optional[str]) -> Optional[str]:
    return value.strip() if value and value.strip() else None


@dataclass(frozen=True)
class ActionSettings:
    database_url: str = DEFAULT_DATABASE_URL
    database_schema: Optional[str] = None
    booking_service_url: Optional[str] = None
    commerce_service_url: Optional[str] = None
    crm_service_url: Optional[str] = None
    feedback_service_url: Optional[str] = None
    service_token: Optional[str] = None
    service_timeout: float = 5.0
    business_timezone: Optional[str] = None
    business_data_dir: Optional[str] = None

    @classmethod
    def from_env(cls, env: Optional[Mapping[str, str]] = None) -> "ActionSettings":
        env = os.environ if env is None else env
        return cls(
            database_url=normalise_database_url(env.get("DATABASE_URL") or DEFAULT_DATABASE_URL),
            database_schema=_blank_is_none(env.get("DATABASE_SCHEMA")),
            booking_service_url=_blank_is_none(env.get("BOOKING_SERVICE_URL")),
            commerce_service_url=_blank_is_none(env.get("COMMERCE_SERVICE_URL")),
            crm_service_url=_blank_is_none(env.get("CRM_SERVICE_URL")),
            feedback_service_url=_blank_is_none(env.get("FEEDBACK_SERVICE_URL")),
            service_token=_blank_is_none(env.get("BUSINESS_SERVICE_TOKEN")),
            service_timeout=float(env.get("BUSINESS_SERVICE_TIMEOUT") or 5.0),
            business_timezone=_blank_is_none(env.get("BUSINESS_TIMEZONE")),
            business_data_dir=_blank_is_none(env.get("BUSINESS_DATA_DIR")),
        )
