"""CommerceService over the REST contract in docs/business-services.openapi.yml (tag commerce)."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Dict, List, Optional

from actions.adapters.http_client import JsonClient, require
from actions.ports import Cart, CartLine, Order, Product, ServiceUnavailable


def _line(body: Dict[str, Any]) -> CartLine:
    return CartLine(sku=body["sku"], name=body["name"], quantity=int(body["quantity"]),
                    unit_price=float(body["unit_price"]))


class HttpCommerceService:
    def __init__(self, client: JsonClient) -> None:
        self.client = client

    @staticmethod
    def _cart(body: Dict[str, Any]) -> Cart:
        try:
            return Cart(customer_id=body["customer_id"], lines=[_line(l) for l in body.get("lines", [])])
        except (KeyError, TypeError, ValueError) as exc:
            raise ServiceUnavailable("the commerce service sent an incomplete cart") from exc

    @staticmethod
    def _order(body: Dict[str, Any]) -> Order:
        try:
            return Order(id=body["id"], customer_id=body["customer_id"], status=body["status"],
                         lines=[_line(l) for l in body.get("lines", [])], total=float(body["total"]),
                         created_at=datetime.fromisoformat(body["created_at"].replace("Z", "+00:00")))
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise ServiceUnavailable("the commerce service sent an incomplete order") from exc

    def search(self, *, query: str, limit: int = 5) -> List[Product]:
        body = self.client.request("GET", "/products", params={"q": query, "limit": limit})
        try:
            return [Product(sku=p["sku"], name=p["name"], category=p["category"], price=float(p["price"]),
                            stock=int(p["stock"])) for p in require(body, "products")]
        except (KeyError, TypeError, ValueError) as exc:
            raise ServiceUnavailable("the commerce service sent an incomplete product") from exc

    def get_cart(self, *, customer_id: str) -> Cart:
        return self._cart(self.client.request("GET", f"/carts/{customer_id}"))

    def add_to_cart(self, *, customer_id: str, sku: str, quantity: int,
                    idempotency_key: str | None = None) -> Cart:
        return self._cart(self.client.request("POST", f"/carts/{customer_id}/items",
                                              json={"sku": sku, "quantity": quantity},
                                              idempotency_key=idempotency_key))

    def clear_cart(self, *, customer_id: str) -> Cart:
        return self._cart(self.client.request("DELETE", f"/carts/{customer_id}"))

    def place_order(self, *, customer_id: str, idempotency_key: str | None = None) -> Order:
        return self._order(self.client.request("POST", "/orders", json={"customer_id": customer_id},
                                               idempotency_key=idempotency_key))

    def get_order(self, *, order_id: str, customer_id: str) -> Order:
        return self._order(self.client.request("GET", f"/orders/{order_id}", params={"customer_id": customer_id}))

    def last_order(self, *, customer_id: str) -> Optional[Order]:
        body = self.client.request("GET", f"/customers/{customer_id}/orders/latest", allow_404=True)
        return self._order(body) if body is not None else None

    def cancel_order(self, *, order_id: str, customer_id: str, idempotency_key: str | None = None) -> Order:
        return self._order(self.client.request("POST", f"/orders/{order_id}/cancel",
                                               json={"customer_id": customer_id}, idempotency_key=idempotency_key))
