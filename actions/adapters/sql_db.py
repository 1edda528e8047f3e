"""Tables of the embedded business services and the engine that holds them.

Tables are prefixed `biz_` so they never clash with the API's. They are created on
first use (idempotent `create_all`) and the catalogue is synchronised from the
business data files then: new products are inserted with their seed stock, names,
categories and prices follow the file, stock levels already in the database stay.
"""

from __future__ import annotations

import functools
import logging
import threading
from contextlib import contextmanager
from datetime import datetime, timezone
from typing import Any, Callable, Iterator, Optional, TypeVar

from sqlalchemy import (
    Column,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    create_engine,
    event,
    select,
    text,
)
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import SQLAlchemyError

from actions.business import Business
from actions.ports import ServiceError, ServiceUnavailable

log = logging.getLogger(__name__)

metadata = MetaData(naming_convention={
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
})

customers = Table(
    "biz_customers", metadata,
    Column("id", String(128), primary_key=True),
    Column("name", String(200)),
    Column("email", String(254)),
    Column("phone", String(32)),
    Column("channel", String(32)),
    Column("created_at", DateTime, nullable=False),
    Column("updated_at", DateTime, nullable=False),
)

appointments = Table(
    "biz_appointments", metadata,
    Column("id", String(16), primary_key=True),
    Column("customer_id", String(128), nullable=False, index=True),
    Column("service", String(100), nullable=False),
    Column("staff", String(100), nullable=False),
    Column("start_at", DateTime, nullable=False),  # UTC, naive
    Column("end_at", DateTime, nullable=False),
    Column("status", String(16), nullable=False, default="booked"),
    Column("created_at", DateTime, nullable=False),
    Index("ix_biz_appointments_staff_start", "staff", "start_at"),
)

products = Table(
    "biz_products", metadata,
    Column("sku", String(32), primary_key=True),
    Column("name", String(200), nullable=False),
    Column("category", String(100), nullable=False),
    Column("synonyms", Text, nullable=False, default=""),
    Column("price", Float, nullable=False),
    Column("stock", Integer, nullable=False),
)

cart_lines = Table(
    "biz_cart_lines", metadata,
    Column("customer_id", String(128), primary_key=True),
    Column("sku", String(32), ForeignKey("biz_products.sku"), primary_key=True),
    Column("quantity", Integer, nullable=False),
)

orders = Table(
    "biz_orders", metadata,
    Column("id", String(16), primary_key=True),
    Column("customer_id", String(128), nullable=False, index=True),
    Column("status", String(16), nullable=False),
    Column("total", Float, nullable=False),
    Column("created_at", DateTime, nullable=False),
    Column("updated_at", DateTime, nullable=False),
)

order_lines = Table(
    "biz_order_lines", metadata,
    Column("order_id", String(16), ForeignKey("biz_orders.id"), primary_key=True),
    Column("sku", String(32), primary_key=True),
    Column("name", String(200), nullable=False),
    Column("quantity", Integer, nullable=False),
    Column("unit_price", Float, nullable=False),
)

feedback = Table(
    "biz_feedback", metadata,
    Column("id", String(36), primary_key=True),
    Column("customer_id", String(128), nullable=False, index=True),
    Column("conversation_id", String(128)),
    Column("rating", Integer, nullable=False),
    Column("comment", Text),
    Column("created_at", DateTime, nullable=False),
)

# One row per side effect done under an idempotency key (actions/ports.py): the key is
# claimed in the transaction that does the work, so a second call with it, even a
# concurrent one in another process, finds the first call's result instead of doing it
# again. A table of its own, not a column on each business table, so an existing
# database gains it through create_all like any missing table.
idempotency = Table(
    "biz_idempotency", metadata,
    Column("operation", String(64), primary_key=True),  # e.g. "booking.book"
    Column("key", String(255), primary_key=True),
    Column("result", Text),  # JSON of the value the first call returned; set in the claiming transaction
    Column("created_at", DateTime, nullable=False),
)


def utcnow() -> datetime:
    return datetime.now(timezone.utc).replace(tzinfo=None)


def to_utc_naive(moment: datetime) -> datetime:
    return moment.astimezone(timezone.utc).replace(tzinfo=None)


def from_utc_naive(moment: datetime, tz: Any) -> datetime:
    return moment.replace(tzinfo=timezone.utc).astimezone(tz)


F = TypeVar("F", bound=Callable[..., Any])


def translate_errors(method: F) -> F:
    """Database failures become ServiceUnavailable (the transaction has rolled back)."""

    @functools.wraps(method)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return method(*args, **kwargs)
        except ServiceError:
            raise
        except SQLAlchemyError as exc:
            log.error("database error in %s: %s", method.__qualname__, exc)
            raise ServiceUnavailable("the database is unavailable") from exc

    return wrapper  # type: ignore[return-value]


class Database:
    """Engine + lazy schema creation + catalogue seeding, shared by the SQL adapters."""

    def __init__(self, url: str, *, schema: Optional[str] = None, business: Business) -> None:
        self.url = url
        self.schema = schema
        self.business = business
        self._engine: Optional[Engine] = None
        self._ready = False
        self._lock = threading.RLock()
        # One booking at a time in this process; PostgreSQL adds an advisory lock across processes.
        self.booking_lock = threading.Lock()

    @property
    def is_postgres(self) -> bool:
        return self.url.startswith("postgresql")

    @property
    def engine(self) -> Engine:
        if self._engine is None:
            with self._lock:
                if self._engine is None:
                    self._engine = self._create_engine()
        return self._engine

    def _create_engine(self) -> Engine:
        if self.url.startswith("sqlite"):
            engine = create_engine(self.url, connect_args={"timeout": 30, "check_same_thread": False})

            @event.listens_for(engine, "connect")
            def _pragmas(dbapi_connection: Any, _record: Any) -> None:
                cursor = dbapi_connection.cursor()
                cursor.execute("PRAGMA journal_mode=WAL")
                cursor.execute("PRAGMA foreign_keys=ON")
                cursor.close()

            return engine
        options: dict = {"pool_size": 5, "max_overflow": 10, "pool_pre_ping": True}
        if self.schema:
            options["connect_args"] = {"options": f"-csearch_path={self.schema}"}
        return create_engine(self.url, future=True, **options)

    @contextmanager
    def begin(self) -> Iterator[Connection]:
        """A transaction on a ready schema: commits on success, rolls back on any error."""
        self.ensure_ready()
        with self.engine.begin() as connection:
            yield connection

    def ensure_ready(self) -> None:
        if self._ready:
            return
        with self._lock:
            if self._ready:
                return
            try:
                metadata.create_all(self.engine, checkfirst=True)
                self._seed()
            except SQLAlchemyError as exc:
                log.error("could not prepare the business tables: %s", exc)
                raise ServiceUnavailable("the database is unavailable") from exc
            self._ready = True

    def _seed(self) -> None:
        with self.engine.begin() as connection:
            existing = {row.sku for row in connection.execute(select(products.c.sku))}
            for product in self.business.products:
                values = {"name": product.name, "category": product.category, "price": product.price,
                          "synonyms": "|".join(product.synonyms)}
                if product.sku in existing:
                    connection.execute(products.update().where(products.c.sku == product.sku).values(**values))
                else:
                    connection.execute(products.insert().values(sku=product.sku, stock=product.stock, **values))

    def lock_bookings(self, connection: Connection) -> None:
        """Serialise bookings across action-server processes sharing one PostgreSQL database."""
        if self.is_postgres:
            connection.execute(text("SELECT pg_advisory_xact_lock(727274)"))

    def dispose(self) -> None:
        if self._engine is not None:
            self._engine.dispose()
            self._engine = None
            self._ready = False
