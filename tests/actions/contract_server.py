"""A small real HTTP server implementing docs/business-services.openapi.yml, for the HTTP adapter tests.

It serves the four services from the SQL adapters on a private SQLite file, so the
HTTP adapters are checked against the same behaviour as the embedded ones. Knobs
let a test make it fail (`fail_with`: status for every request, `delay`: seconds).

It honours `Idempotency-Key` on the writes the way a real service must: it hands the
key to the SQL adapter, whose database answers a repeated key with the first result
(a repeat arriving while the first is in progress waits for it), and it does so per
route, so the same key on two different routes is two operations.
"""

from __future__ import annotations

import inspect
import json
import re
import threading
import time
from collections.abc import Callable
from dataclasses import asdict
from datetime import date, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlparse

from actions.adapters.http_client import IDEMPOTENCY_HEADER
from actions.ports import NotFound, OutOfStock, ServiceError


def _json(value: Any) -> Any:
    if isinstance(value, (datetime, date)):
        return value.isoformat()
    if isinstance(value, list):
        return [_json(v) for v in value]
    if isinstance(value, dict):
        return {k: _json(v) for k, v in value.items()}
    if hasattr(value, "__dataclass_fields__"):
        data = {k: _json(v) for k, v in asdict(value).items()}
        if "lines" in data and hasattr(value, "total"):
            data["total"] = value.total
        return data
    return value


def _appointment(a) -> dict[str, Any]:
    return {
        "id": a.id,
        "customer_id": a.customer_id,
        "service": a.service,
        "start": a.start.isoformat(),
        "end": a.end.isoformat(),
        "staff": a.staff,
        "status": a.status,
    }


class ContractServer:
    def __init__(self, booking, commerce, crm, feedback) -> None:
        self.booking, self.commerce, self.crm, self.feedback = booking, commerce, crm, feedback
        self.fail_with: int | None = None
        self.delay = 0.0
        self.requests: list[tuple[str, str]] = []
        self.idempotency_keys: list[tuple[str, str, str | None]] = []  # (method, path, header) of every request
        self.routes: list[tuple[str, re.Pattern, Callable[..., tuple[int, Any]]]] = [
            ("GET", re.compile(r"^/slots$"), self.slots),
            ("POST", re.compile(r"^/appointments$"), self.book),
            ("GET", re.compile(r"^/customers/(?P<cid>[^/]+)/appointments$"), self.upcoming),
            ("PATCH", re.compile(r"^/appointments/(?P<aid>[^/]+)$"), self.reschedule),
            ("POST", re.compile(r"^/appointments/(?P<aid>[^/]+)/cancel$"), self.cancel),
            ("GET", re.compile(r"^/products$"), self.search),
            ("GET", re.compile(r"^/carts/(?P<cid>[^/]+)$"), self.get_cart),
            ("POST", re.compile(r"^/carts/(?P<cid>[^/]+)/items$"), self.add_item),
            ("DELETE", re.compile(r"^/carts/(?P<cid>[^/]+)$"), self.clear_cart),
            ("POST", re.compile(r"^/orders$"), self.place_order),
            ("GET", re.compile(r"^/orders/(?P<oid>[^/]+)$"), self.get_order),
            ("GET", re.compile(r"^/customers/(?P<cid>[^/]+)/orders/latest$"), self.latest_order),
            ("POST", re.compile(r"^/orders/(?P<oid>[^/]+)/cancel$"), self.cancel_order),
            ("PUT", re.compile(r"^/customers/(?P<cid>[^/]+)$"), self.upsert_customer),
            ("GET", re.compile(r"^/customers/(?P<cid>[^/]+)$"), self.get_customer),
            ("PATCH", re.compile(r"^/customers/(?P<cid>[^/]+)$"), self.update_customer),
            ("POST", re.compile(r"^/feedback$"), self.record_feedback),
        ]
        self._server: ThreadingHTTPServer | None = None

    # --- booking --------------------------------------------------------------
    def slots(self, q, body):
        slots = self.booking.free_slots(
            service=q["service"],
            day=date.fromisoformat(q["date"]),
            limit=int(q.get("limit", 20)),
            ignore_appointment=q.get("ignore_appointment"),
        )
        return 200, {"slots": [s.isoformat() for s in slots]}

    def book(self, q, body, key=None):
        return 201, _appointment(
            self.booking.book(
                customer_id=body["customer_id"],
                service=body["service"],
                start=datetime.fromisoformat(body["start"]),
                idempotency_key=key,
            )
        )

    def upcoming(self, q, body, cid):
        return 200, {"appointments": [_appointment(a) for a in self.booking.upcoming(customer_id=cid)]}

    def reschedule(self, q, body, aid, key=None):
        return 200, _appointment(
            self.booking.reschedule(
                appointment_id=aid,
                customer_id=body["customer_id"],
                start=datetime.fromisoformat(body["start"]),
                idempotency_key=key,
            )
        )

    def cancel(self, q, body, aid, key=None):
        return 200, _appointment(
            self.booking.cancel(appointment_id=aid, customer_id=body["customer_id"], idempotency_key=key)
        )

    # --- commerce -------------------------------------------------------------
    def search(self, q, body):
        return 200, {"products": _json(self.commerce.search(query=q.get("q", ""), limit=int(q.get("limit", 5))))}

    def get_cart(self, q, body, cid):
        return 200, _json(self.commerce.get_cart(customer_id=cid))

    def add_item(self, q, body, cid, key=None):
        return 200, _json(
            self.commerce.add_to_cart(
                customer_id=cid, sku=body["sku"], quantity=int(body["quantity"]), idempotency_key=key
            )
        )

    def clear_cart(self, q, body, cid):
        return 200, _json(self.commerce.clear_cart(customer_id=cid))

    def place_order(self, q, body, key=None):
        return 201, _json(self.commerce.place_order(customer_id=body["customer_id"], idempotency_key=key))

    def get_order(self, q, body, oid):
        return 200, _json(self.commerce.get_order(order_id=oid, customer_id=q["customer_id"]))

    def latest_order(self, q, body, cid):
        order = self.commerce.last_order(customer_id=cid)
        return (200, _json(order)) if order else (404, {"error": "not_found", "message": "no orders"})

    def cancel_order(self, q, body, oid, key=None):
        return 200, _json(
            self.commerce.cancel_order(order_id=oid, customer_id=body["customer_id"], idempotency_key=key)
        )

    # --- crm and feedback -----------------------------------------------------
    def upsert_customer(self, q, body, cid):
        return 200, _json(self.crm.get_or_create(customer_id=cid, channel=body.get("channel")))

    def get_customer(self, q, body, cid):
        customer = self.crm.get(customer_id=cid)
        return (200, _json(customer)) if customer else (404, {"error": "not_found", "message": "no customer"})

    def update_customer(self, q, body, cid, key=None):
        return 200, _json(self.crm.update(customer_id=cid, idempotency_key=key, **body))

    def record_feedback(self, q, body, key=None):
        return 201, _json(
            self.feedback.record(
                customer_id=body["customer_id"],
                rating=int(body["rating"]),
                comment=body.get("comment"),
                conversation_id=body.get("conversation_id"),
                idempotency_key=key,
            )
        )

    # --- plumbing ---------------------------------------------------------------
    def handle(
        self, method: str, raw_path: str, body: dict[str, Any], idempotency_key: str | None = None
    ) -> tuple[int, Any]:
        self.requests.append((method, raw_path))
        self.idempotency_keys.append((method, raw_path, idempotency_key))
        if self.delay:
            time.sleep(self.delay)
        if self.fail_with:
            return self.fail_with, {"error": "internal", "message": "injected failure"}
        url = urlparse(raw_path)
        query = {k: v[0] for k, v in parse_qs(url.query).items()}
        for verb, pattern, handler in self.routes:
            match = pattern.match(url.path)
            if verb == method and match:
                params = match.groupdict()
                if idempotency_key and "key" in inspect.signature(handler).parameters:
                    params["key"] = f"{verb} {pattern.pattern} {idempotency_key}"  # keys are per route
                try:
                    return handler(query, body, **params)
                except NotFound as exc:
                    return 404, {"error": "not_found", "message": str(exc)}
                except OutOfStock as exc:
                    return 409, {
                        "error": "out_of_stock",
                        "message": str(exc),
                        "sku": exc.sku,
                        "available": exc.available,
                    }
                except ServiceError as exc:
                    return 409, {"error": exc.reason, "message": str(exc)}
        return 404, {"error": "not_found", "message": "no such route"}

    def start(self) -> str:
        contract = self

        class Handler(BaseHTTPRequestHandler):
            def _serve(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = json.loads(self.rfile.read(length) or b"{}") if length else {}
                status, payload = contract.handle(
                    self.command, self.path, body or {}, self.headers.get(IDEMPOTENCY_HEADER)
                )
                data = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _serve

            def log_message(self, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def stop(self) -> None:
        if self._server:
            self._server.shutdown()
            self._server.server_close()
