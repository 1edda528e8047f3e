"""The Rasa action server with Prometheus metrics at /metrics.

    python -m connectors.rasa.action_server --actions actions --port 5055

Same arguments as `python -m rasa_sdk`; it builds rasa_sdk's own app and adds
`GET /metrics` plus, for every call to `/webhook`, a count by action and status
and a latency histogram by action. With ACTION_SERVER_TOKEN set (required when
ENVIRONMENT=production) every call but /health and /metrics must carry it, as
Rasa sends it (`token:` in endpoints.yml: `?token=`) or as a bearer token; others
get 401. A tracker names the customer an action works for, so an unauthenticated
caller could otherwise act for anyone. Runs in the Rasa environment (Python 3.10);
nothing under actions/ is touched.
"""

from __future__ import annotations

import hmac
import json
import logging
import os
import time
import zlib
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST, Counter, Histogram, disable_created_metrics, generate_latest
from rasa_sdk import utils
from rasa_sdk.constants import APPLICATION_ROOT_LOGGER_NAME
from rasa_sdk.endpoint import create_app, create_argument_parser, create_ssl_context
from rasa_sdk.plugin import plugin_manager
from sanic import Sanic
from sanic.request import Request
from sanic.response import HTTPResponse
from sanic.response import json as json_response

log = logging.getLogger(__name__)
disable_created_metrics()

ACTION_RUNS = Counter("reviewbot_action_runs", "Custom action calls by action and HTTP status.", ["action", "status"])
ACTION_LATENCY = Histogram(
    "reviewbot_action_duration_seconds",
    "Custom action latency by action.",
    ["action"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)


def action_name(request: Request) -> str:
    """The action a /webhook call asked for ('unknown' if the body cannot be read)."""
    try:
        if request.headers.get("Content-Encoding") == "deflate":
            body: Any = json.loads(zlib.decompress(request.body))
        else:
            body = request.json
    except (ValueError, zlib.error):
        return "unknown"
    name = body.get("next_action") if isinstance(body, dict) else None
    return name if isinstance(name, str) and name else "unknown"


def instrument(app: Sanic) -> Sanic:
    """Add /metrics and per-action metrics to a rasa_sdk app."""

    @app.middleware("request")
    async def start_timer(request: Request) -> None:
        request.ctx.started = time.perf_counter()

    @app.middleware("response")
    async def observe(request: Request, response: HTTPResponse) -> None:
        if request.path != "/webhook" or not hasattr(request.ctx, "started"):
            return
        action = action_name(request)
        ACTION_LATENCY.labels(action).observe(time.perf_counter() - request.ctx.started)
        ACTION_RUNS.labels(action, str(response.status)).inc()

    @app.get("/metrics")
    async def metrics(_: Request) -> HTTPResponse:
        return HTTPResponse(generate_latest(), content_type=CONTENT_TYPE_LATEST)

    return app


OPEN_PATHS = ("/health", "/metrics")  # probes and Prometheus carry no token


def presented_token(request: Request) -> str:
    header = request.headers.get("Authorization", "")
    if header.lower().startswith("bearer "):
        return header[len("bearer ") :].strip()
    return request.args.get("token", "")


def require_token(app: Sanic, token: str) -> Sanic:
    """Refuse (401) every call but the open paths that does not carry `token`."""

    @app.middleware("request")
    async def authenticate(request: Request) -> HTTPResponse | None:
        if request.path in OPEN_PATHS or hmac.compare_digest(presented_token(request).encode(), token.encode()):
            return None
        return json_response({"error": "not_authenticated", "detail": "missing or wrong action server token"}, 401)

    return app


def configured_token(env: dict[str, str] | None = None) -> str | None:
    """ACTION_SERVER_TOKEN, or None in development; production refuses to start without one."""
    env = dict(os.environ) if env is None else env
    token = (env.get("ACTION_SERVER_TOKEN") or "").strip() or None
    if token is None and env.get("ENVIRONMENT") == "production":
        raise SystemExit("ACTION_SERVER_TOKEN must be set when ENVIRONMENT=production (Rasa sends it, endpoints.yml)")
    return token


def main() -> None:
    args = create_argument_parser().parse_args()
    token = configured_token()
    logging.getLogger("matplotlib").setLevel(logging.WARN)
    utils.configure_colored_logging(args.loglevel)
    utils.configure_file_logging(
        logging.getLogger(APPLICATION_ROOT_LOGGER_NAME), args.log_file, args.loglevel, args.logging_config_file
    )
    utils.update_sanic_log_level()
    app = instrument(create_app(args.actions, cors_origins=args.cors, auto_reload=args.auto_reload))
    if token:
        require_token(app, token)
    plugin_manager().hook.attach_sanic_app_extensions(app=app)
    ssl_context = create_ssl_context(args.ssl_certificate, args.ssl_keyfile, args.ssl_password)
    host = os.environ.get("SANIC_HOST", "0.0.0.0")
    log.info("action server with metrics on port=%s", args.port)
    app.run(host, args.port, ssl=ssl_context, workers=utils.number_of_sanic_workers())


if __name__ == "__main__":
    main()
