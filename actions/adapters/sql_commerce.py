"""CommerceService on the embedded database: catalogue, carts, orders and stock."""

from __future__ import annotations

import re
import secrets
from typing import List, Optional

from sqlalchemy import and_, select
from sqlalchemy.engine import Connection
from sqlalchemy.exc import IntegrityError

from actions.adapters import sql_idempotency
from actions.adapters.sql_db import (
    Database,
    cart_lines,
    from_utc_naive,
    order_lines,
    orders,
    products,
    translate_errors,
    utcnow,
)
from actions.adapters.sql_idempotency import once
from actions.business import singular
from actions.ports import Cart, CartLine, EmptyCart, InvalidState, NotFound, Order, OutOfStock, Product

CANCELLABLE = {"placed"}


def _words(text: str) -> List[str]:
    return [w for w in re.findall(r"[a-z0-9£]+", text.lower()) if w not in {"a", "the", "some", "any", "of", "for"}]


def score(query: str, name: str, category: str, synonyms: str) -> float:
    """How well a product matches a customer's words (0 = not at all)."""
    wanted = " ".join(_words(query))
    if not wanted:
        return 0.0
    names = [name.lower(), *[s.lower() for s in synonyms.split("|") if s]]
    if wanted in names:
        return 100.0
    if wanted in (category.lower(), category.lower() + "s"):
        return 50.0
    haystack = {singular(w) for w in _words(" ".join(names + [category]))}
    query_words = [singular(w) for w in _words(query)]
    hits = sum(1 for w in query_words if w in haystack)
    if not hits:
        return 0.0
    return 10.0 * hits / len(query_words) + (5.0 if any(wanted in n for n in names) else 0.0)


class SqlCommerceService:
    def __init__(self, db: Database) -> None:
        self.db = db

    @staticmethod
    def _product(row) -> Product:
        return Product(sku=row.sku, name=row.name, category=row.category, price=row.price, stock=row.stock)

    @translate_errors
    def search(self, *, query: str, limit: int = 5) -> List[Product]:
        with self.db.begin() as connection:
            rows = list(connection.execute(select(products)))
        scored = [(score(query, r.name, r.category, r.synonyms), r) for r in rows]
        scored = [(s, r) for s, r in scored if s > 0]
        scored.sort(key=lambda pair: (-pair[0], pair[1].name))
        if scored and scored[0][0] >= 100:
            scored = [p for p in scored if p[0] >= 100]
        return [self._product(r) for _, r in scored[:limit]]

    def _cart(self, connection: Connection, customer_id: str) -> Cart:
        rows = connection.execute(
            select(cart_lines.c.sku, cart_lines.c.quantity, products.c.name, products.c.price)
            .join(products, products.c.sku == cart_lines.c.sku)
            .where(cart_lines.c.customer_id == customer_id).order_by(products.c.name))
        return Cart(customer_id=customer_id,
                    lines=[CartLine(sku=r.sku, name=r.name, quantity=r.quantity, unit_price=r.price) for r in rows])

    @translate_errors
    def get_cart(self, *, customer_id: str) -> Cart:
        with self.db.begin() as connection:
            return self._cart(connection, customer_id)

    @translate_errors
    def add_to_cart(self, *, customer_id: str, sku: str, quantity: int,
                    idempotency_key: str | None = None) -> Cart:
        if quantity < 1:
            raise ValueError("quantity must be at least 1")

        def work(connection: Connection) -> Cart:
            product = connection.execute(select(products).where(products.c.sku == sku)).first()
            if product is None:
                raise NotFound(f"no product {sku}")
            line = connection.execute(select(cart_lines.c.quantity).where(and_(
                cart_lines.c.customer_id == customer_id, cart_lines.c.sku == sku))).first()
            wanted = quantity + (line.quantity if line else 0)
            if wanted > product.stock:
                raise OutOfStock(sku=sku, available=product.stock)
            if line:
                connection.execute(cart_lines.update().where(and_(
                    cart_lines.c.customer_id == customer_id, cart_lines.c.sku == sku)).values(quantity=wanted))
            else:
                connection.execute(cart_lines.insert().values(customer_id=customer_id, sku=sku, quantity=wanted))
            return self._cart(connection, customer_id)

        return once(self.db, operation="commerce.add_to_cart", key=idempotency_key, work=work,
                    decode=sql_idempotency.cart)

    @translate_errors
    def clear_cart(self, *, customer_id: str) -> Cart:
        with self.db.begin() as connection:
            connection.execute(cart_lines.delete().where(cart_lines.c.customer_id == customer_id))
        return Cart(customer_id=customer_id)

    def _order(self, connection: Connection, row) -> Order:
        lines = connection.execute(select(order_lines).where(order_lines.c.order_id == row.id)
                                   .order_by(order_lines.c.name))
        return Order(id=row.id, customer_id=row.customer_id, status=row.status, total=row.total,
                     created_at=from_utc_naive(row.created_at, self.db.business.tz),
                     lines=[CartLine(sku=l.sku, name=l.name, quantity=l.quantity, unit_price=l.unit_price)
                            for l in lines])

    @translate_errors
    def place_order(self, *, customer_id: str, idempotency_key: str | None = None) -> Order:
        for _ in range(5):
            try:
                return once(self.db, operation="commerce.place_order", key=idempotency_key,
                            work=lambda connection: self._place_order(connection, customer_id),
                            decode=sql_idempotency.order(self.db.business.tz))
            except IntegrityError:  # order id collision (once() answers a key conflict itself): try another id
                continue
        raise InvalidState("could not allocate an order id")

    def _place_order(self, connection: Connection, customer_id: str) -> Order:
        cart = self._cart(connection, customer_id)
        if not cart.lines:
            raise EmptyCart("the cart is empty")
        order_id = f"ORD-{secrets.randbelow(900000) + 100000}"
        now = utcnow()
        connection.execute(orders.insert().values(id=order_id, customer_id=customer_id, status="placed",
                                                  total=cart.total, created_at=now, updated_at=now))
        for line in cart.lines:
            # The conditional UPDATE is the stock check: it cannot oversell under concurrency.
            updated = connection.execute(products.update().where(and_(
                products.c.sku == line.sku, products.c.stock >= line.quantity))
                .values(stock=products.c.stock - line.quantity))
            if updated.rowcount != 1:
                available = connection.execute(select(products.c.stock).where(products.c.sku == line.sku)).scalar()
                raise OutOfStock(sku=line.sku, available=available or 0)
            connection.execute(order_lines.insert().values(order_id=order_id, sku=line.sku, name=line.name,
                                                           quantity=line.quantity, unit_price=line.unit_price))
        connection.execute(cart_lines.delete().where(cart_lines.c.customer_id == customer_id))
        row = connection.execute(select(orders).where(orders.c.id == order_id)).one()
        return self._order(connection, row)

    @translate_errors
    def get_order(self, *, order_id: str, customer_id: str) -> Order:
        with self.db.begin() as connection:
            row = connection.execute(select(orders).where(and_(
                orders.c.id == order_id.upper(), orders.c.customer_id == customer_id))).first()
            if row is None:
                raise NotFound(f"no order {order_id}")
            return self._order(connection, row)

    @translate_errors
    def last_order(self, *, customer_id: str) -> Optional[Order]:
        with self.db.begin() as connection:
            row = connection.execute(select(orders).where(orders.c.customer_id == customer_id)
                                     .order_by(orders.c.created_at.desc(), orders.c.id.desc())).first()
            return self._order(connection, row) if row else None

    @translate_errors
    def cancel_order(self, *, order_id: str, customer_id: str, idempotency_key: str | None = None) -> Order:
        def work(connection: Connection) -> Order:
            row = connection.execute(select(orders).where(and_(
                orders.c.id == order_id.upper(), orders.c.customer_id == customer_id))).first()
            if row is None:
                raise NotFound(f"no order {order_id}")
            if row.status not in CANCELLABLE:
                raise InvalidState(f"the order is {row.status}")
            for line in connection.execute(select(order_lines).where(order_lines.c.order_id == row.id)):
                connection.execute(products.update().where(products.c.sku == line.sku)
                                   .values(stock=products.c.stock + line.quantity))
            connection.execute(orders.update().where(orders.c.id == row.id)
                               .values(status="cancelled", updated_at=utcnow()))
            row = connection.execute(select(orders).where(orders.c.id == row.id)).one()
            return self._order(connection, row)

        return once(self.db, operation="commerce.cancel_order", key=idempotency_key, work=work,
                    decode=sql_idempotency.order(self.db.business.tz))

    @translate_errors
    def set_order_status(self, *, order_id: str, status: str) -> None:
        """Back-office operation (shipping, delivery): not part of the port."""
        with self.db.begin() as connection:
            connection.execute(orders.update().where(orders.c.id == order_id).values(status=status, updated_at=utcnow()))
