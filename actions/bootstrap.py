"""The one composition root of the action server: settings -> business data -> adapters.

Nothing is built at import time (rasa-sdk imports every module in `actions/`): each
getter builds its object on first call and caches it. Actions take their ports as
constructor arguments defaulting to these getters, so tests pass fakes instead.

A `*_SERVICE_URL` that is set selects the HTTP adapter for that port; unset, the
embedded SQL adapter on DATABASE_URL is used.
"""

from __future__ import annotations

import threading
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING

from actions.business import Business, load_business
from actions.settings import ActionSettings

if TYPE_CHECKING:
    from actions.adapters.sql_db import Database
    from actions.ports import BookingService, CommerceService, CrmService, FeedbackService

_lock = threading.Lock()


@lru_cache(maxsize=None)
def settings() -> ActionSettings:
    return ActionSettings.from_env()


@lru_cache(maxsize=None)
def business() -> Business:
    config = settings()
    loaded = load_business(Path(config.business_data_dir) if config.business_data_dir else None)
    if config.business_timezone:
        loaded.timezone = config.business_timezone
    return loaded


@lru_cache(maxsize=None)
def database() -> "Database":
    from actions.adapters.sql_db import Database

    config = settings()
    return Database(config.database_url, schema=config.database_schema, business=business())


def _http(url: str):
    from actions.adapters.http_client import JsonClient

    config = settings()
    return JsonClient(url, token=config.service_token, timeout=config.service_timeout)


@lru_cache(maxsize=None)
def booking() -> "BookingService":
    url = settings().booking_service_url
    if url:
        from actions.adapters.http_booking import HttpBookingService

        return HttpBookingService(_http(url), tz=business().tz)
    from actions.adapters.sql_booking import SqlBookingService

    return SqlBookingService(database(), business())


@lru_cache(maxsize=None)
def commerce() -> "CommerceService":
    url = settings().commerce_service_url
    if url:
        from actions.adapters.http_commerce import HttpCommerceService

        return HttpCommerceService(_http(url))
    from actions.adapters.sql_commerce import SqlCommerceService

    return SqlCommerceService(database())


@lru_cache(maxsize=None)
def crm() -> "CrmService":
    url = settings().crm_service_url
    if url:
        from actions.adapters.http_crm import HttpCrmService

        return HttpCrmService(_http(url))
    from actions.adapters.sql_crm import SqlCrmService

    return SqlCrmService(database())


@lru_cache(maxsize=None)
def feedback() -> "FeedbackService":
    url = settings().feedback_service_url
    if url:
        from actions.adapters.http_feedback import HttpFeedbackService

        return HttpFeedbackService(_http(url))
    from actions.adapters.sql_feedback import SqlFeedbackService

    return SqlFeedbackService(database())


def reset() -> None:
    """Forget every built object (tests that change the environment call this)."""
    with _lock:
        for getter in (settings, business, database, booking, commerce, crm, feedback):
            getter.cache_clear()
