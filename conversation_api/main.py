"""create_app(): routers, error handlers and the lifespan that owns every connection."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from connectors.whatsapp import admin as whatsapp_admin
from connectors.whatsapp import webhook as whatsapp_webhook
from conversation_api import health
from conversation_api.body_limit import BodySizeLimit
from conversation_api.bot import Bot
from conversation_api.container import build_container
from conversation_api.conversations.router import router as conversations_router
from conversation_api.dashboard.router import router as dashboard_router
from conversation_api.errors import install_error_handlers
from conversation_api.feedback.router import router as feedback_router
from conversation_api.handoff.console import router as console_router
from conversation_api.handoff.router import router as csr_router
from conversation_api.logging_setup import configure_logging
from conversation_api.metrics.middleware import PrometheusMiddleware
from conversation_api.metrics.router import router as metrics_router
from conversation_api.review.console import router as review_console_router
from conversation_api.review.router import router as review_router
from conversation_api.settings import Settings, get_settings

DESCRIPTION = """
The ReviewBot conversation API: customers' messages go in, the bot's (or a
customer service representative's) replies come out, and every message is kept.

Client calls need `Authorization: Bearer <JWT>` (HS256, claims `sub`, `role`, `exp`).
"""

# Meta's webhook has its own cap (WHATSAPP_MAX_BODY_BYTES): a batch of notifications can be larger.
WHATSAPP_WEBHOOK = "/webhooks/whatsapp"


def create_app(settings: Settings | None = None, *, bot: Bot | None = None) -> FastAPI:
    settings = settings or get_settings()
    configure_logging(settings.log_level)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        container = build_container(settings, bot=bot)
        app.state.container = container
        container.start()
        if container.whatsapp is not None:
            await container.whatsapp.start()
        try:
            yield
        finally:
            await container.aclose()

    app = FastAPI(
        title="ReviewBot conversation API",
        version="1.0.0",
        description=DESCRIPTION,
        lifespan=lifespan,
    )
    install_error_handlers(app)
    app.include_router(health.router)
    app.include_router(conversations_router)
    app.include_router(csr_router)
    app.include_router(console_router)
    app.include_router(feedback_router)
    app.include_router(metrics_router)
    app.include_router(dashboard_router)
    app.include_router(review_router)
    app.include_router(review_console_router)
    app.add_middleware(PrometheusMiddleware)
    app.include_router(whatsapp_webhook.router)
    app.include_router(whatsapp_admin.router)
    # Added last, so it runs first: nothing reads a body before the cap is applied.
    app.add_middleware(
        BodySizeLimit,
        default=settings.max_body_bytes,
        by_path={WHATSAPP_WEBHOOK: settings.whatsapp_max_body_bytes},
    )
    return app


def app_factory() -> FastAPI:
    """Entry point for `uvicorn --factory conversation_api.main:app_factory`."""
    return create_app()
