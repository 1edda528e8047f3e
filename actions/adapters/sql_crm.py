"""CrmService on the embedded database."""

from __future__ import annotations

from typing import Optional

from sqlalchemy import select
from sqlalchemy.engine import Connection
from sqlalchemy.exc import IntegrityError

from actions.adapters import sql_idempotency
from actions.adapters.sql_db import Database, customers, translate_errors, utcnow
from actions.adapters.sql_idempotency import once
from actions.ports import Customer, NotFound


class SqlCrmService:
    def __init__(self, db: Database) -> None:
        self.db = db

    @staticmethod
    def _customer(row) -> Customer:
        return Customer(id=row.id, name=row.name, email=row.email, phone=row.phone, channel=row.channel)

    @translate_errors
    def get(self, *, customer_id: str) -> Optional[Customer]:
        with self.db.begin() as connection:
            row = connection.execute(select(customers).where(customers.c.id == customer_id)).first()
            return self._customer(row) if row else None

    @translate_errors
    def get_or_create(self, *, customer_id: str, channel: Optional[str] = None) -> Customer:
        existing = self.get(customer_id=customer_id)
        if existing:
            return existing
        # A WhatsApp user id is the customer's phone number: keep it as their phone.
        phone = "+" + customer_id.lstrip("+") if channel == "whatsapp" and customer_id.lstrip("+").isdigit() else None
        try:
            with self.db.begin() as connection:
                now = utcnow()
                connection.execute(customers.insert().values(id=customer_id, channel=channel, phone=phone,
                                                              created_at=now, updated_at=now))
        except IntegrityError:  # created concurrently by another turn
            pass
        created = self.get(customer_id=customer_id)
        assert created is not None
        return created

    @translate_errors
    def update(self, *, customer_id: str, name: Optional[str] = None, email: Optional[str] = None,
               phone: Optional[str] = None, idempotency_key: str | None = None) -> Customer:
        values = {k: v for k, v in (("name", name), ("email", email), ("phone", phone)) if v is not None}

        def work(connection: Connection) -> Customer:
            result = connection.execute(customers.update().where(customers.c.id == customer_id)
                                        .values(updated_at=utcnow(), **values))
            if result.rowcount != 1:
                raise NotFound(f"no customer {customer_id}")
            return self._customer(connection.execute(select(customers).where(customers.c.id == customer_id)).one())

        # Setting a value twice looks harmless, but a replay after a later change would undo that change.
        return once(self.db, operation="crm.update", key=idempotency_key, work=work, decode=sql_idempotency.customer)
