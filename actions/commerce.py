"""The shop: search products, cart, place an order, order status, cancel an order."""

from __future__ import annotations

import json
import re
from abc import ABC, abstractmethod
from typing import Any, List, Optional, Text

from rasa_sdk import Action, Tracker
from rasa_sdk.events import EventType, SlotSet
from rasa_sdk.executor import CollectingDispatcher
from rasa_sdk.types import DomainDict

from actions.common import (
    call,
    channel,
    confirm_buttons,
    customer_id,
    idempotency_key,
    latest_entity,
    latest_text,
    log,
    normalise_order_id,
    parse_quantity,
    utter_unavailable,
    workflow_event,
)
from actions.business import names_cover
from actions.ports import (
    Cart,
    EmptyCart,
    InvalidState,
    NotFound,
    Order,
    OutOfStock,
    Product,
    ServiceError,
    ServiceUnavailable,
)
from actions.wiring import UsesPorts

MAX_RESULTS = 5
_FILLER = re.compile(
    r"\b(do|you|u|have|got|sell|any|some|i|im|i'm|want|wanna|need|looking|look|for|to|buy|a|an|the|search|find|"
    r"show|me|please|pls|plz|what|which|kind|kinds|of|is|are|there|in|stock|products?|price|how|much|can|get|"
    r"your|shop|store|items?|hi|hey|hello|stuff|sth|something|good)\b", re.IGNORECASE)


def _payload(intent: str, **entities: Any) -> str:
    return f"/{intent}{json.dumps(entities, separators=(',', ':'))}"


class _ShopAction(UsesPorts, Action, ABC):
    @abstractmethod
    def name(self) -> Text:
        """Abstract: rasa-sdk registers only concrete actions."""

    def describe_cart(self, cart: Cart) -> str:
        lines = [f"- {l.quantity} x {l.name} ({self.biz.money(l.total)})" for l in cart.lines]
        return "\n".join(lines) + f"\nTotal: {self.biz.money(cart.total)}"

    async def load_cart(self, dispatcher: CollectingDispatcher, tracker: Tracker, *, purpose: str) -> Optional[Cart]:
        """The customer's cart with lines, or None after telling them it is empty or unavailable."""
        try:
            cart = await call(self.commerce.get_cart, customer_id=customer_id(tracker))
        except ServiceError as exc:
            log.error("%s failed error=%s", purpose, exc)
            utter_unavailable(dispatcher)
            return None
        if not cart.lines:
            dispatcher.utter_message(response="utter_cart_empty")
            return None
        return cart

    def describe_order(self, order: Order) -> str:
        items = ", ".join(f"{l.quantity} x {l.name}" for l in order.lines)
        return f"Order {order.id} ({order.created_at:%d %b %Y}): {items}. Total {self.biz.money(order.total)}."

    async def find_order(self, tracker: Tracker) -> Optional[Order]:
        """The order the customer names by id, else their latest one. Raises ServiceError (NotFound for a named one)."""
        order_id = named_order_id(tracker)
        if order_id:
            return await call(self.commerce.get_order, order_id=order_id, customer_id=customer_id(tracker))
        return await call(self.commerce.last_order, customer_id=customer_id(tracker))


def named_order_id(tracker: Tracker) -> Optional[str]:
    """The stored form of the order reference in the latest message, if it names one."""
    return normalise_order_id(latest_entity(tracker, "order_id")) or normalise_order_id(latest_text(tracker))


def order_not_found(tracker: Tracker) -> str:
    named = named_order_id(tracker)
    return (f"I couldn't find an order {named} on your account. " if named else
            "I couldn't find that order on your account. ") + \
        "Please check the number: our order numbers look like ORD-123456."


def _query(tracker: Tracker) -> str:
    """What to search for when the message names no product: its words without the filler."""
    words = _FILLER.sub(" ", latest_text(tracker).lower())
    return re.sub(r"[^\w£ -]+", " ", words).strip()


class ActionSearchProducts(_ShopAction):
    def name(self) -> Text:
        return "action_search_products"

    async def run(self, dispatcher: CollectingDispatcher, tracker: Tracker,
                  domain: DomainDict) -> List[EventType]:
        named = latest_entity(tracker, "product")
        query = named or _query(tracker)
        if not query:
            categories = sorted({p.category for p in self.biz.products})
            dispatcher.utter_message(
                text="What are you looking for? We stock " + ", ".join(categories) + ".",
                buttons=[{"title": c, "payload": _payload("search_product", product=c)} for c in categories[:6]])
            return []
        try:
            found: List[Product] = await call(self.commerce.search, query=query, limit=MAX_RESULTS)
        except ServiceError as exc:
            log.error("product search failed query=%s error=%s", query, exc)
            utter_unavailable(dispatcher)
            return []
        if not found:
            # Say plainly that the shop doesn't carry it, and what it does carry instead.
            categories = sorted({p.category for p in self.biz.products})
            dispatcher.utter_message(text=f"Sorry, we don't carry {query}. We stock " + ", ".join(categories) + ".")
            return []
        lines = [f"- {p.name}: {self.biz.money(p.price)}" + (f" ({p.stock} in stock)" if p.stock else " (out of stock)")
                 for p in found]
        if named and not any(names_cover(named, (p.name, p.category, *self.biz.synonyms_of(p.sku))) for p in found):
            # "tea tree shampoo" finds shampoos, but not that one: say so before offering them.
            heading = f"Sorry, we don't carry {named}. The closest we have:"
        else:
            heading = "Here's what I found:"
        dispatcher.utter_message(
            text=heading + "\n" + "\n".join(lines) + "\nTap one to add it to your cart.",
            buttons=[{"title": f"Add {p.name}", "payload": _payload("add_to_cart", product=p.name, quantity="1")}
                     for p in found if p.stock > 0])
        return [SlotSet("product", found[0].name if len(found) == 1 else None)]


class ActionAddToCart(_ShopAction):
    def name(self) -> Text:
        return "action_add_to_cart"

    async def run(self, dispatcher: CollectingDispatcher, tracker: Tracker,
                  domain: DomainDict) -> List[EventType]:
        wanted = latest_entity(tracker, "product") or tracker.get_slot("product")
        quantity = parse_quantity(latest_entity(tracker, "quantity")) or 1
        if not wanted:
            dispatcher.utter_message(text="Which product would you like to add? You can say e.g. "
                                          "\"add 2 argan shampoo\" or search for a product first.")
            return []
        user = customer_id(tracker)
        try:
            matches = await call(self.commerce.search, query=wanted, limit=3)
            if not matches:
                dispatcher.utter_message(text=f"Sorry, I couldn't find \"{wanted}\" in our shop.")
                return [SlotSet("product", None), SlotSet("quantity", None)]
            product = matches[0]
            await call(self.crm.get_or_create, customer_id=user, channel=channel(tracker))
            cart = await call(self.commerce.add_to_cart, customer_id=user, sku=product.sku, quantity=quantity,
                              idempotency_key=idempotency_key(tracker, self.name()))
        except OutOfStock as exc:
            dispatcher.utter_message(
                text=f"Sorry, we only have {exc.available} of {product.name} left"
                     + (" altogether, including what's already in your cart." if exc.available else "."))
            return [SlotSet("quantity", None)]
        except ServiceError as exc:
            log.error("add to cart failed customer_id=%s error=%s", user, exc)
            utter_unavailable(dispatcher)
            return [SlotSet("quantity", None)]
        dispatcher.utter_message(
            text=f"Added {quantity} x {product.name} to your cart.\n{self.describe_cart(cart)}",
            buttons=[{"title": "Checkout", "payload": "/place_order"},
                     {"title": "View cart", "payload": "/view_cart"}])
        return [SlotSet("product", product.name), SlotSet("quantity", None)]


class ActionViewCart(_ShopAction):
    def name(self) -> Text:
        return "action_view_cart"

    async def run(self, dispatcher: CollectingDispatcher, tracker: Tracker,
                  domain: DomainDict) -> List[EventType]:
        cart = await self.load_cart(dispatcher, tracker, purpose="view cart")
        if cart is None:
            return []
        dispatcher.utter_message(text="Your cart:\n" + self.describe_cart(cart),
                                 buttons=[{"title": "Checkout", "payload": "/place_order"}])
        return []


class ActionAskOrderConfirmation(_ShopAction):
    def name(self) -> Text:
        return "action_ask_order_confirmation"

    async def run(self, dispatcher: CollectingDispatcher, tracker: Tracker,
                  domain: DomainDict) -> List[EventType]:
        cart = await self.load_cart(dispatcher, tracker, purpose="checkout")
        if cart is None:
            return []
        dispatcher.utter_message(
            text="Please confirm your order:\n" + self.describe_cart(cart) + "\nShall I place it?",
            buttons=confirm_buttons("Yes, place order"))
        return []


class ActionPlaceOrder(_ShopAction):
    def name(self) -> Text:
        return "action_place_order"

    async def run(self, dispatcher: CollectingDispatcher, tracker: Tracker,
                  domain: DomainDict) -> List[EventType]:
        user = customer_id(tracker)
        try:
            await call(self.crm.get_or_create, customer_id=user, channel=channel(tracker))
            order = await call(self.commerce.place_order, customer_id=user,
                               idempotency_key=idempotency_key(tracker, self.name()))
        except EmptyCart as exc:
            dispatcher.utter_message(response="utter_cart_empty")
            return [workflow_event("order.placed", "order", False, reason=exc.reason)]
        except OutOfStock as exc:
            dispatcher.utter_message(text=f"Sorry, one of the products ran out while you were shopping "
                                          f"(only {exc.available} left). Your order was not placed; "
                                          "please adjust your cart.")
            return [workflow_event("order.placed", "order", False, reason=exc.reason, sku=exc.sku)]
        except ServiceError as exc:
            log.error("place order failed customer_id=%s error=%s", user, exc)
            utter_unavailable(dispatcher)
            return [workflow_event("order.placed", "order", False, reason=exc.reason)]
        dispatcher.utter_message(
            text=f"Thank you! Your order {order.id} is placed. Total {self.biz.money(order.total)}. "
                 "We'll let you know when it ships; ask me \"where is my order\" any time.")
        return [SlotSet("order_id", order.id), SlotSet("product", None),
                workflow_event("order.placed", "order", True, order_id=order.id, total=order.total,
                               items=[{"sku": l.sku, "quantity": l.quantity} for l in order.lines])]


class ActionOrderNotPlaced(_ShopAction):
    def name(self) -> Text:
        return "action_order_not_placed"

    async def run(self, dispatcher: CollectingDispatcher, tracker: Tracker,
                  domain: DomainDict) -> List[EventType]:
        dispatcher.utter_message(text="OK, I haven't placed the order. Your cart is saved for later.")
        return []


STATUS_TEXT = {
    "placed": "has been placed and is being prepared",
    "shipped": "has shipped and is on its way",
    "delivered": "has been delivered",
    "cancelled": "was cancelled",
}


class ActionOrderStatus(_ShopAction):
    def name(self) -> Text:
        return "action_order_status"

    async def run(self, dispatcher: CollectingDispatcher, tracker: Tracker,
                  domain: DomainDict) -> List[EventType]:
        try:
            order = await self.find_order(tracker)
        except NotFound:
            dispatcher.utter_message(text=order_not_found(tracker))
            return []
        except ServiceError as exc:
            log.error("order status failed error=%s", exc)
            utter_unavailable(dispatcher)
            return []
        if order is None:
            dispatcher.utter_message(text="You haven't placed any orders with us yet.")
            return []
        dispatcher.utter_message(
            text=f"Your order {order.id} {STATUS_TEXT.get(order.status, 'is ' + order.status)}.\n"
                 + self.describe_order(order))
        return [SlotSet("order_id", order.id)]


class ActionAskCancelOrder(_ShopAction):
    def name(self) -> Text:
        return "action_ask_cancel_order"

    async def run(self, dispatcher: CollectingDispatcher, tracker: Tracker,
                  domain: DomainDict) -> List[EventType]:
        try:
            order = await self.find_order(tracker)
        except NotFound:
            dispatcher.utter_message(text=order_not_found(tracker))
            return [SlotSet("order_id", None)]
        except ServiceError as exc:
            log.error("cancel order lookup failed error=%s", exc)
            utter_unavailable(dispatcher)
            return [SlotSet("order_id", None)]
        if order is None:
            dispatcher.utter_message(text="You haven't placed any orders with us yet.")
            return [SlotSet("order_id", None)]
        if order.status != "placed":
            dispatcher.utter_message(
                text=f"Sorry, order {order.id} {STATUS_TEXT.get(order.status, 'is ' + order.status)}, "
                     "so it can't be cancelled any more."
                     + (" You can return it instead: ask me about returns." if order.status != "cancelled" else ""))
            return [SlotSet("order_id", None),
                    workflow_event("order.cancelled", "cancel_order", False, order_id=order.id,
                                   reason=f"order_{order.status}")]
        dispatcher.utter_message(
            text=f"Cancel this order?\n{self.describe_order(order)}",
            buttons=confirm_buttons("Yes, cancel it", "No, keep it"))
        return [SlotSet("order_id", order.id)]


class ActionCancelOrder(_ShopAction):
    def name(self) -> Text:
        return "action_cancel_order"

    async def run(self, dispatcher: CollectingDispatcher, tracker: Tracker,
                  domain: DomainDict) -> List[EventType]:
        order_id = tracker.get_slot("order_id")
        if not order_id:
            dispatcher.utter_message(text="Which order would you like to cancel? Please send its number.")
            return []
        try:
            order = await call(self.commerce.cancel_order, order_id=order_id, customer_id=customer_id(tracker),
                               idempotency_key=idempotency_key(tracker, self.name()))
        except (InvalidState, NotFound) as exc:
            dispatcher.utter_message(text=f"Sorry, order {order_id} can't be cancelled ({exc}).")
            return [SlotSet("order_id", None),
                    workflow_event("order.cancelled", "cancel_order", False, order_id=order_id, reason=exc.reason)]
        except ServiceError as exc:
            log.error("cancel order failed order_id=%s error=%s", order_id, exc)
            if isinstance(exc, ServiceUnavailable):
                utter_unavailable(dispatcher)
            return [SlotSet("order_id", None),
                    workflow_event("order.cancelled", "cancel_order", False, order_id=order_id, reason=exc.reason)]
        dispatcher.utter_message(text=f"Order {order.id} is cancelled. Any payment will be refunded within 5 working days.")
        return [SlotSet("order_id", None),
                workflow_event("order.cancelled", "cancel_order", True, order_id=order.id, total=order.total)]


class ActionKeepOrder(_ShopAction):
    def name(self) -> Text:
        return "action_keep_order"

    async def run(self, dispatcher: CollectingDispatcher, tracker: Tracker,
                  domain: DomainDict) -> List[EventType]:
        dispatcher.utter_message(text="OK, your order stays as it is.")
        return [SlotSet("order_id", None)]
