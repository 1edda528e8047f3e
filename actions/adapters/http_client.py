"""A small JSON-over-HTTP client shared by the `http_*` adapters.

Maps the documented error contract (docs/business-services.openapi.yml) to the
port errors: 404 -> NotFound, 409 {"error": code} -> the matching ServiceError,
5xx, timeouts and connection failures -> ServiceUnavailable.

A write sent with an idempotency key carries it as the `Idempotency-Key` header
(draft-ietf-httpapi-idempotency-key-header): the service answers a repeated key with
the first answer instead of doing the work again.
"""

from __future__ import annotations

import logging
from typing import Any, Dict, Optional

import requests

from actions.ports import (
    EmptyCart,
    InvalidState,
    NotFound,
    OutOfStock,
    ServiceError,
    ServiceUnavailable,
    SlotUnavailable,
)

log = logging.getLogger(__name__)

IDEMPOTENCY_HEADER = "Idempotency-Key"

_CONFLICTS = {
    "slot_unavailable": SlotUnavailable,
    "invalid_state": InvalidState,
    "empty_cart": EmptyCart,
}


class JsonClient:
    def __init__(self, base_url: str, *, token: Optional[str] = None, timeout: float = 5.0,
                 session: Optional[requests.Session] = None) -> None:
        self.base_url = base_url.rstrip("/")
        self.timeout = timeout
        self.session = session or requests.Session()
        self.session.headers.update({"Accept": "application/json"})
        if token:
            self.session.headers["Authorization"] = f"Bearer {token}"

    def request(self, method: str, path: str, *, params: Optional[Dict[str, Any]] = None,
                json: Optional[Dict[str, Any]] = None, allow_404: bool = False,
                idempotency_key: str | None = None) -> Any:
        url = f"{self.base_url}{path}"
        headers = {IDEMPOTENCY_HEADER: idempotency_key} if idempotency_key else None
        try:
            response = self.session.request(method, url, params=params, json=json, headers=headers,
                                            timeout=self.timeout)
        except requests.Timeout as exc:
            log.error("business service timed out method=%s url=%s", method, url)
            raise ServiceUnavailable("the service did not answer in time") from exc
        except requests.RequestException as exc:
            log.error("business service unreachable method=%s url=%s error=%s", method, url, type(exc).__name__)
            raise ServiceUnavailable("the service is unreachable") from exc
        if response.status_code >= 500:
            log.error("business service failed method=%s url=%s status=%s", method, url, response.status_code)
            raise ServiceUnavailable(f"the service answered HTTP {response.status_code}")
        body = self._body(response)
        if response.status_code == 404:
            if allow_404:
                return None
            raise NotFound(body.get("message") or "not found")
        if response.status_code == 409:
            code = body.get("error", "")
            if code == "out_of_stock":
                raise OutOfStock(body.get("message", ""), sku=body.get("sku", ""), available=int(body.get("available", 0)))
            raise _CONFLICTS.get(code, InvalidState)(body.get("message") or code)
        if response.status_code >= 400:
            log.error("business service refused method=%s url=%s status=%s body=%s", method, url,
                      response.status_code, body)
            raise ServiceUnavailable(f"the service refused the request (HTTP {response.status_code})")
        return body

    @staticmethod
    def _body(response: requests.Response) -> Dict[str, Any]:
        if not response.content:
            return {}
        try:
            body = response.json()
        except ValueError as exc:
            if response.status_code < 400:
                raise ServiceUnavailable("the service sent a body we could not read") from exc
            return {}
        return body if isinstance(body, dict) else {"items": body}


def require(body: Any, key: str) -> Any:
    try:
        return body[key]
    except (KeyError, TypeError) as exc:
        raise ServiceUnavailable(f"the service's answer lacks {key!r}") from exc


__all__ = ["IDEMPOTENCY_HEADER", "JsonClient", "require", "ServiceError"]
