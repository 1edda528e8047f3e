"""The ports the actions depend on, and the values that cross them.

Actions never see SQL or HTTP: they talk to these protocols. The adapters in
`actions/adapters/` satisfy them structurally (`SqlBookingService`,
`HttpBookingService`, ...); `actions/bootstrap.py` picks one per port.

Every method may raise `ServiceUnavailable` (database down, HTTP 5xx, timeout);
business refusals are typed (`SlotUnavailable`, `OutOfStock`, ...) so the action
can say something precise. A method that raises has changed nothing.

Methods that change something take `idempotency_key`: a second call with a key
already used for that operation changes nothing and returns the first call's
result, whatever the arguments and whatever happened since (a replayed turn must
get the reply it got the first time). Only a call that succeeded uses its key up.
`None` (no key: `rasa shell`, tests) means "always do it".
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime
from typing import List, Optional, Protocol, runtime_checkable


# --- errors -----------------------------------------------------------------
class ServiceError(Exception):
    """Base of every error a port raises."""

    reason = "error"


class ServiceUnavailable(ServiceError):
    """The backing service failed (5xx, timeout, connection, database error)."""

    reason = "service_unavailable"


class NotFound(ServiceError):
    reason = "not_found"


class SlotUnavailable(ServiceError):
    """The requested appointment time is taken or outside opening hours."""

    reason = "slot_unavailable"


class OutOfStock(ServiceError):
    reason = "out_of_stock"

    def __init__(self, message: str = "", *, sku: str = "", available: int = 0) -> None:
        super().__init__(message or f"{sku} has only {available} left")
        self.sku = sku
        self.available = available


class InvalidState(ServiceError):
    """The operation is not allowed now (order shipped, appointment in the past...)."""

    reason = "invalid_state"


class EmptyCart(ServiceError):
    reason = "empty_cart"


# --- values -----------------------------------------------------------------
@dataclass(frozen=True)
class Appointment:
    id: str
    customer_id: str
    service: str
    start: datetime  # timezone-aware, business time zone
    end: datetime
    staff: str
    status: str = "booked"  # booked | cancelled


@dataclass(frozen=True)
class Product:
    sku: str
    name: str
    category: str
    price: float
    stock: int


@dataclass(frozen=True)
class CartLine:
    sku: str
    name: str
    quantity: int
    unit_price: float

    @property
    def total(self) -> float:
        return round(self.quantity * self.unit_price, 2)


@dataclass(frozen=True)
class Cart:
    customer_id: str
    lines: List[CartLine] = field(default_factory=list)

    @property
    def total(self) -> float:
        return round(sum(line.total for line in self.lines), 2)


@dataclass(frozen=True)
class Order:
    id: str
    customer_id: str
    status: str  # placed | shipped | delivered | cancelled
    lines: List[CartLine]
    total: float
    created_at: datetime


@dataclass(frozen=True)
class Customer:
    id: str  # the user id (for WhatsApp: the phone number / wa_id)
    name: Optional[str] = None
    email: Optional[str] = None
    phone: Optional[str] = None
    channel: Optional[str] = None


@dataclass(frozen=True)
class Feedback:
    id: str
    customer_id: str
    rating: int
    comment: Optional[str]
    conversation_id: Optional[str]


# --- ports ------------------------------------------------------------------
@runtime_checkable
class BookingService(Protocol):
    def free_slots(self, *, service: str, day: date, limit: int = 20,
                   ignore_appointment: Optional[str] = None) -> List[datetime]:
        """Start times on `day` when `service` can be booked (empty when closed or full)."""
        ...

    def book(self, *, customer_id: str, service: str, start: datetime,
             idempotency_key: str | None = None) -> Appointment:
        """Book atomically; raises SlotUnavailable when the time is taken or closed."""
        ...

    def upcoming(self, *, customer_id: str) -> List[Appointment]:
        """The customer's booked appointments from now on, soonest first."""
        ...

    def reschedule(self, *, appointment_id: str, customer_id: str, start: datetime,
                   idempotency_key: str | None = None) -> Appointment: ...

    def cancel(self, *, appointment_id: str, customer_id: str,
               idempotency_key: str | None = None) -> Appointment: ...


@runtime_checkable
class CommerceService(Protocol):
    def search(self, *, query: str, limit: int = 5) -> List[Product]:
        """Products whose name, synonym or category matches `query`, best first."""
        ...

    def get_cart(self, *, customer_id: str) -> Cart: ...

    def add_to_cart(self, *, customer_id: str, sku: str, quantity: int,
                    idempotency_key: str | None = None) -> Cart:
        """Add to the customer's cart; raises OutOfStock when stock is short."""
        ...

    def clear_cart(self, *, customer_id: str) -> Cart: ...

    def place_order(self, *, customer_id: str, idempotency_key: str | None = None) -> Order:
        """Turn the cart into an order, decrementing stock, all or nothing."""
        ...

    def get_order(self, *, order_id: str, customer_id: str) -> Order: ...

    def last_order(self, *, customer_id: str) -> Optional[Order]: ...

    def cancel_order(self, *, order_id: str, customer_id: str, idempotency_key: str | None = None) -> Order:
        """Cancel an order that has not shipped and put its stock back; InvalidState otherwise."""
        ...


@runtime_checkable
class CrmService(Protocol):
    def get_or_create(self, *, customer_id: str, channel: Optional[str] = None) -> Customer: ...

    def get(self, *, customer_id: str) -> Optional[Customer]: ...

    def update(self, *, customer_id: str, name: Optional[str] = None, email: Optional[str] = None,
               phone: Optional[str] = None, idempotency_key: str | None = None) -> Customer: ...


@runtime_checkable
class FeedbackService(Protocol):
    def record(self, *, customer_id: str, rating: int, comment: Optional[str],
               conversation_id: Optional[str], idempotency_key: str | None = None) -> Feedback: ...
