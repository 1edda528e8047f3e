"""In-memory test doubles of the ports (actions/ports.py), plus a tracker builder."""

from __future__ import annotations

import functools
import itertools
from collections.abc import Callable
from datetime import date, datetime, timedelta
from typing import Any

from rasa_sdk import Tracker
from rasa_sdk.events import SlotSet

from actions.business import Business
from actions.ports import (
    Appointment,
    Cart,
    CartLine,
    Customer,
    EmptyCart,
    Feedback,
    InvalidState,
    NotFound,
    Order,
    OutOfStock,
    Product,
    ServiceUnavailable,
    SlotUnavailable,
)


def idempotent(method: Callable[..., Any]) -> Callable[..., Any]:
    """The port's idempotency contract for a fake's write: a used key returns the first successful result."""

    @functools.wraps(method)
    def wrapper(self: Any, *, idempotency_key: str | None = None, **kwargs: Any) -> Any:
        if idempotency_key is None:
            return method(self, **kwargs)
        done = self.__dict__.setdefault("_done", {})
        if (method.__name__, idempotency_key) not in done:
            done[method.__name__, idempotency_key] = method(self, **kwargs)
        return done[method.__name__, idempotency_key]

    return wrapper


class Broken:
    """A port whose every call fails like a service that answers 503."""

    def __getattr__(self, name: str) -> Any:
        def fail(**_: Any) -> Any:
            raise ServiceUnavailable("the service answered HTTP 503")

        return fail


class FakeBooking:
    def __init__(self, business: Business) -> None:
        self.business = business
        self.appointments: dict[str, Appointment] = {}
        self.taken: set = set()  # start datetimes refused as taken
        self._ids = itertools.count(1)

    def free_slots(
        self, *, service: str, day: date, limit: int = 20, ignore_appointment: str | None = None
    ) -> list[datetime]:
        info = self.business.service(service)
        busy = {a.start for a in self.appointments.values() if a.status == "booked" and a.id != ignore_appointment}
        return [s for s in self.business.candidate_starts(info, day) if s not in self.taken and s not in busy][:limit]

    @idempotent
    def book(self, *, customer_id: str, service: str, start: datetime) -> Appointment:
        info = self.business.service(service)
        if start not in self.free_slots(service=service, day=start.date(), limit=1000):
            raise SlotUnavailable("that time is already taken")
        appointment = Appointment(
            id=f"APT-{next(self._ids):06d}",
            customer_id=customer_id,
            service=info.name,
            start=start,
            end=start + timedelta(minutes=info.duration_minutes),
            staff="Maria",
        )
        self.appointments[appointment.id] = appointment
        return appointment

    def upcoming(self, *, customer_id: str) -> list[Appointment]:
        return sorted(
            (a for a in self.appointments.values() if a.customer_id == customer_id and a.status == "booked"),
            key=lambda a: a.start,
        )

    @idempotent
    def reschedule(self, *, appointment_id: str, customer_id: str, start: datetime) -> Appointment:
        current = self.appointments.get(appointment_id)
        if current is None or current.customer_id != customer_id:
            raise NotFound(appointment_id)
        if start not in self.free_slots(
            service=current.service, day=start.date(), limit=1000, ignore_appointment=appointment_id
        ):
            raise SlotUnavailable("that time is already taken")
        moved = Appointment(
            id=current.id,
            customer_id=customer_id,
            service=current.service,
            start=start,
            end=start + (current.end - current.start),
            staff=current.staff,
        )
        self.appointments[appointment_id] = moved
        return moved

    @idempotent
    def cancel(self, *, appointment_id: str, customer_id: str) -> Appointment:
        current = self.appointments.get(appointment_id)
        if current is None or current.customer_id != customer_id:
            raise NotFound(appointment_id)
        cancelled = Appointment(**{**current.__dict__, "status": "cancelled"})
        self.appointments[appointment_id] = cancelled
        return cancelled


class FakeCommerce:
    def __init__(self, business: Business) -> None:
        self.products = {
            p.sku: Product(sku=p.sku, name=p.name, category=p.category, price=p.price, stock=p.stock)
            for p in business.products
        }
        self.synonyms = {p.sku: [s.lower() for s in p.synonyms] for p in business.products}
        self.carts: dict[str, dict[str, int]] = {}
        self.orders: dict[str, Order] = {}
        self._ids = itertools.count(100001)

    def search(self, *, query: str, limit: int = 5) -> list[Product]:
        q = query.lower().strip()
        exact = [p for p in self.products.values() if q == p.name or q in self.synonyms[p.sku]]
        if exact:
            return exact[:limit]
        words = q.rstrip("s").split()
        return [
            p
            for p in self.products.values()
            if all(w in f"{p.name} {p.category} {' '.join(self.synonyms[p.sku])}" for w in words)
        ][:limit]

    def get_cart(self, *, customer_id: str) -> Cart:
        lines = [
            CartLine(sku=sku, name=self.products[sku].name, quantity=q, unit_price=self.products[sku].price)
            for sku, q in self.carts.get(customer_id, {}).items()
        ]
        return Cart(customer_id=customer_id, lines=lines)

    @idempotent
    def add_to_cart(self, *, customer_id: str, sku: str, quantity: int) -> Cart:
        cart = self.carts.setdefault(customer_id, {})
        wanted = cart.get(sku, 0) + quantity
        if wanted > self.products[sku].stock:
            raise OutOfStock(sku=sku, available=self.products[sku].stock)
        cart[sku] = wanted
        return self.get_cart(customer_id=customer_id)

    def clear_cart(self, *, customer_id: str) -> Cart:
        self.carts.pop(customer_id, None)
        return Cart(customer_id=customer_id)

    @idempotent
    def place_order(self, *, customer_id: str) -> Order:
        cart = self.get_cart(customer_id=customer_id)
        if not cart.lines:
            raise EmptyCart("empty")
        for line in cart.lines:
            if self.products[line.sku].stock < line.quantity:
                raise OutOfStock(sku=line.sku, available=self.products[line.sku].stock)
        for line in cart.lines:
            product = self.products[line.sku]
            self.products[line.sku] = Product(**{**product.__dict__, "stock": product.stock - line.quantity})
        order = Order(
            id=f"ORD-{next(self._ids)}",
            customer_id=customer_id,
            status="placed",
            lines=cart.lines,
            total=cart.total,
            created_at=datetime(2030, 1, 1, 12, 0),
        )
        self.orders[order.id] = order
        self.carts.pop(customer_id, None)
        return order

    def get_order(self, *, order_id: str, customer_id: str) -> Order:
        order = self.orders.get(order_id)
        if order is None or order.customer_id != customer_id:
            raise NotFound(order_id)
        return order

    def last_order(self, *, customer_id: str) -> Order | None:
        mine = [o for o in self.orders.values() if o.customer_id == customer_id]
        return mine[-1] if mine else None

    @idempotent
    def cancel_order(self, *, order_id: str, customer_id: str) -> Order:
        order = self.get_order(order_id=order_id, customer_id=customer_id)
        if order.status != "placed":
            raise InvalidState(f"the order is {order.status}")
        cancelled = Order(**{**order.__dict__, "status": "cancelled"})
        self.orders[order_id] = cancelled
        return cancelled


class FakeCrm:
    def __init__(self) -> None:
        self.customers: dict[str, Customer] = {}

    def get(self, *, customer_id: str) -> Customer | None:
        return self.customers.get(customer_id)

    def get_or_create(self, *, customer_id: str, channel: str | None = None) -> Customer:
        return self.customers.setdefault(customer_id, Customer(id=customer_id, channel=channel))

    @idempotent
    def update(
        self, *, customer_id: str, name: str | None = None, email: str | None = None, phone: str | None = None
    ) -> Customer:
        current = self.customers.get(customer_id)
        if current is None:
            raise NotFound(customer_id)
        changes = {k: v for k, v in (("name", name), ("email", email), ("phone", phone)) if v is not None}
        self.customers[customer_id] = Customer(**{**current.__dict__, **changes})
        return self.customers[customer_id]


class FakeFeedback:
    def __init__(self) -> None:
        self.records: list[Feedback] = []

    @idempotent
    def record(self, *, customer_id: str, rating: int, comment: str | None, conversation_id: str | None) -> Feedback:
        entry = Feedback(
            id=f"fb-{len(self.records) + 1}",
            customer_id=customer_id,
            rating=rating,
            comment=comment,
            conversation_id=conversation_id,
        )
        self.records.append(entry)
        return entry


def make_tracker(
    text: str = "",
    intent: str = "",
    entities: list[dict[str, Any]] | None = None,
    slots: dict[str, Any] | None = None,
    *,
    user_id: str | None = "user-1",
    events: list[dict[str, Any]] | None = None,
    active_loop: str | None = None,
    response_selector: dict[str, Any] | None = None,
    sender_id: str = "conv-1",
    message_id: int | str | None = None,
) -> Tracker:
    """A tracker whose latest message is `text`; `slots` are the current values.

    Slots listed in `slots` are also appended as trailing SlotSet events, which is how
    a form hands freshly extracted values to its validation action. `message_id` is the
    API's stored message id, as the gateway puts it in the metadata.
    """
    latest: dict[str, Any] = {
        "text": text,
        "intent": {"name": intent, "confidence": 0.99},
        "entities": [{"entity": e, "value": v} for e, v in (entities or {}).items()]
        if isinstance(entities, dict)
        else (entities or []),
        "metadata": {"user_id": user_id, "channel": "api"} if user_id else {},
    }
    if message_id is not None:
        latest["metadata"]["message_id"] = message_id
    if response_selector:
        latest["response_selector"] = response_selector
    history = list(events or []) + [{"event": "user", "text": text, "parse_data": latest}]
    history += [SlotSet(k, v) for k, v in (slots or {}).items()]
    return Tracker(
        sender_id,
        dict(slots or {}),
        latest,
        history,
        False,
        None,
        {"name": active_loop} if active_loop else {},
        "action_listen",
    )


def slot_events(events: list[dict[str, Any]]) -> dict[str, Any]:
    return {e["name"]: e["value"] for e in events if e.get("event") == "slot"}


def workflow(events: list[dict[str, Any]]) -> dict[str, Any] | None:
    value = slot_events(events).get("workflow_events")
    return value[0] if value else None
