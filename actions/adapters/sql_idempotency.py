"""Do a write once per idempotency key, on the embedded database; the database decides, not the process.

`once()` claims `(operation, key)` in `biz_idempotency` as the first statement of the
transaction that does the work and stores the work's result beside it. A second call
with the key finds the stored result and returns it. A concurrent second call blocks on
the claim (PostgreSQL's unique index, SQLite's write lock) until the first commits, then
fails the insert and returns the stored result; if the first rolled back (a business
refusal, a crash), the key is free again and the second does the work.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
from collections.abc import Callable
from datetime import datetime
from typing import Any, TypeVar
from zoneinfo import ZoneInfo

from sqlalchemy import and_, select
from sqlalchemy.engine import Connection
from sqlalchemy.exc import IntegrityError

from actions.adapters.sql_db import Database, idempotency, utcnow
from actions.ports import Appointment, Cart, CartLine, Customer, Feedback, Order

log = logging.getLogger(__name__)

T = TypeVar("T")
Decoder = Callable[[dict[str, Any]], T]

MAX_KEY = 255  # the column's width


def _column_key(key: str) -> str:
    # Keys are built from ids we do not control the length of; a digest keeps long ones unique.
    if len(key) <= MAX_KEY:
        return key
    return "sha256:" + hashlib.sha256(key.encode()).hexdigest()


def _encode(value: Any) -> str:
    def default(item: Any) -> Any:
        if isinstance(item, datetime):
            return item.isoformat()
        raise TypeError(f"cannot store {type(item).__name__}")

    return json.dumps(dataclasses.asdict(value), default=default)


def _stored(db: Database, operation: str, key: str) -> str | None:
    with db.begin() as connection:
        return connection.execute(
            select(idempotency.c.result).where(and_(idempotency.c.operation == operation, idempotency.c.key == key))
        ).scalar()


def once(db: Database, *, operation: str, key: str | None, work: Callable[[Connection], T], decode: Decoder[T]) -> T:
    """`work(connection)` in one transaction, at most once per `(operation, key)`; `key=None` always runs it.

    `work`'s result must be a port dataclass (`decode` turns its stored JSON back into one).
    Errors raised by `work` roll the claim back with everything else.
    """
    if key is None:
        with db.begin() as connection:
            return work(connection)
    key = _column_key(key)
    stored = _stored(db, operation, key)
    if stored is not None:
        log.info("idempotent replay operation=%s key=%s", operation, key)
        return decode(json.loads(stored))
    try:
        with db.begin() as connection:
            connection.execute(idempotency.insert().values(operation=operation, key=key, created_at=utcnow()))
            result = work(connection)
            connection.execute(
                idempotency.update()
                .where(and_(idempotency.c.operation == operation, idempotency.c.key == key))
                .values(result=_encode(result))
            )
            return result
    except IntegrityError:
        stored = _stored(db, operation, key)
        if stored is None:  # not the claim that conflicted: the work's own constraint
            raise
        log.info("idempotent replay (concurrent) operation=%s key=%s", operation, key)
        return decode(json.loads(stored))


# --- decoders of the stored results ------------------------------------------------
def _moment(value: str, tz: ZoneInfo) -> datetime:
    return datetime.fromisoformat(value).astimezone(tz)


def _lines(data: dict[str, Any]) -> list[CartLine]:
    return [CartLine(**line) for line in data["lines"]]


def appointment(tz: ZoneInfo) -> Decoder[Appointment]:
    return lambda d: Appointment(**{**d, "start": _moment(d["start"], tz), "end": _moment(d["end"], tz)})


def order(tz: ZoneInfo) -> Decoder[Order]:
    return lambda d: Order(**{**d, "lines": _lines(d), "created_at": _moment(d["created_at"], tz)})


def cart(data: dict[str, Any]) -> Cart:
    return Cart(customer_id=data["customer_id"], lines=_lines(data))


def customer(data: dict[str, Any]) -> Customer:
    return Customer(**data)


def feedback(data: dict[str, Any]) -> Feedback:
    return Feedback(**data)
