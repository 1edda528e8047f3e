"""CrmService over the REST contract in docs/business-services.openapi.yml (tag crm)."""

from __future__ import annotations

from typing import Any, Dict, Optional

from actions.adapters.http_client import JsonClient
from actions.ports import Customer, ServiceUnavailable


class HttpCrmService:
    def __init__(self, client: JsonClient) -> None:
        self.client = client

    @staticmethod
    def _customer(body: Dict[str, Any]) -> Customer:
        try:
            return Customer(id=body["id"], name=body.get("name"), email=body.get("email"),
                            phone=body.get("phone"), channel=body.get("channel"))
        except (KeyError, TypeError) as exc:
            raise ServiceUnavailable("the CRM sent an incomplete customer") from exc

    def get(self, *, customer_id: str) -> Optional[Customer]:
        body = self.client.request("GET", f"/customers/{customer_id}", allow_404=True)
        return self._customer(body) if body is not None else None

    def get_or_create(self, *, customer_id: str, channel: Optional[str] = None) -> Customer:
        return self._customer(self.client.request("PUT", f"/customers/{customer_id}", json={"channel": channel}))

    def update(self, *, customer_id: str, name: Optional[str] = None, email: Optional[str] = None,
               phone: Optional[str] = None, idempotency_key: str | None = None) -> Customer:
        changes = {k: v for k, v in (("name", name), ("email", email), ("phone", phone)) if v is not None}
        return self._customer(self.client.request("PATCH", f"/customers/{customer_id}", json=changes,
                                                  idempotency_key=idempotency_key))
