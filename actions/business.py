"""The business as conversation designers describe it in `rasa_project/business/*.yml`.

Pure data and calendar arithmetic: no database, no network. Loaded lazily (never
at import time) and cached by `bootstrap.business()`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from pathlib import Path
from typing import Dict, List, Optional, Tuple
from zoneinfo import ZoneInfo

import yaml

DEFAULT_DIR = Path(__file__).resolve().parent.parent / "rasa_project" / "business"
WEEKDAYS = ["monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday"]


def _key(text: str) -> str:
    return re.sub(r"[^a-z0-9£]+", " ", text.lower()).strip()


def singular(word: str) -> str:
    """"brushes" -> "brushe", "gels" -> "gel", "gloss" stays: the same rule on both sides is all a match needs."""
    return word[:-1] if len(word) > 3 and word.endswith("s") and not word.endswith("ss") else word


@dataclass(frozen=True)
class ServiceInfo:
    name: str
    duration_minutes: int
    price: float
    description: str = ""
    synonyms: Tuple[str, ...] = ()


@dataclass(frozen=True)
class StaffMember:
    name: str
    role: str
    services: Tuple[str, ...]


@dataclass(frozen=True)
class ProductInfo:
    sku: str
    name: str
    category: str
    price: float
    stock: int
    synonyms: Tuple[str, ...] = ()


@dataclass
class Business:
    name: str
    timezone: str
    currency: str
    address: str
    phone: str
    email: str
    slot_minutes: int
    booking_horizon_days: int
    opening_hours: Dict[str, Tuple[time, time]]
    closed_dates: List[date]
    staff: List[StaffMember]
    services: List[ServiceInfo]
    products: List[ProductInfo]
    faq: Dict[str, str] = field(default_factory=dict)
    maps_url: str = ""

    def money(self, amount: float) -> str:
        symbol = {"GBP": "£", "EUR": "€", "USD": "$"}.get(self.currency, self.currency + " ")
        return f"{symbol}{amount:.2f}"

    @property
    def tz(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

    def now(self) -> datetime:
        return datetime.now(self.tz)

    # --- services -----------------------------------------------------------
    def service(self, text: Optional[str]) -> Optional[ServiceInfo]:
        """The service a customer's word refers to (name, synonym or a close substring)."""
        if not text:
            return None
        wanted = _key(text)
        for svc in self.services:
            if wanted == _key(svc.name) or wanted in (_key(s) for s in svc.synonyms):
                return svc
        # Otherwise the longest name found inside the text wins ("beard trim" over "trim").
        best: Optional[Tuple[int, ServiceInfo]] = None
        for svc in self.services:
            for name in (_key(svc.name), *(_key(s) for s in svc.synonyms)):
                if name and f" {name} " in f" {wanted} " and (best is None or len(name) > best[0]):
                    best = (len(name), svc)
        return best[1] if best else None

    def staff_for(self, service: str) -> List[StaffMember]:
        return [s for s in self.staff if service in s.services]

    # --- calendar -----------------------------------------------------------
    def hours_on(self, day: date) -> Optional[Tuple[time, time]]:
        if day in self.closed_dates:
            return None
        return self.opening_hours.get(WEEKDAYS[day.weekday()])

    def candidate_starts(self, service: ServiceInfo, day: date) -> List[datetime]:
        """Every grid start on `day` at which `service` fits inside opening hours, in the future."""
        hours = self.hours_on(day)
        if hours is None:
            return []
        opening = datetime.combine(day, hours[0], tzinfo=self.tz)
        closing = datetime.combine(day, hours[1], tzinfo=self.tz)
        length = timedelta(minutes=service.duration_minutes)
        step = timedelta(minutes=self.slot_minutes)
        now = self.now()
        starts, start = [], opening
        while start + length <= closing:
            if start > now:
                starts.append(start)
            start += step
        return starts

    def within_hours(self, service: ServiceInfo, start: datetime) -> bool:
        start = start.astimezone(self.tz)
        hours = self.hours_on(start.date())
        if hours is None:
            return False
        end = start + timedelta(minutes=service.duration_minutes)
        return hours[0] <= start.time() and end <= datetime.combine(start.date(), hours[1], tzinfo=self.tz)

    def describe_hours(self) -> str:
        parts = []
        for day in WEEKDAYS:
            hours = self.opening_hours.get(day)
            label = day.capitalize()
            parts.append(f"{label} {hours[0]:%H:%M}-{hours[1]:%H:%M}" if hours else f"{label} closed")
        return ", ".join(parts)

    # --- shop ---------------------------------------------------------------
    def product_names(self) -> List[str]:
        return [p.name for p in self.products]

    def synonyms_of(self, sku: str) -> Tuple[str, ...]:
        """The other names customers use for a product of the catalogue (none for an unknown sku)."""
        return next((p.synonyms for p in self.products if p.sku == sku), ())


def names_cover(wanted: str, names: Tuple[str, ...]) -> bool:
    """Whether every word of `wanted` (plural or not) is in one of `names`: "tea tree shampoo" is not
    covered by ("argan shampoo", "shampoo"), though a search for it finds the argan shampoo."""
    known = {singular(word) for name in names for word in _key(name).split()}
    words = [singular(word) for word in _key(wanted).split()]
    return bool(words) and all(word in known for word in words)


def _hhmm(text: str) -> time:
    hours, minutes = str(text).split(":")
    return time(int(hours), int(minutes))


def load_business(directory: Optional[Path] = None) -> Business:
    """Read salon.yml and catalogue.yml from `directory` (default rasa_project/business)."""
    directory = Path(directory or DEFAULT_DIR)
    salon = yaml.safe_load((directory / "salon.yml").read_text(encoding="utf-8"))
    catalogue = yaml.safe_load((directory / "catalogue.yml").read_text(encoding="utf-8"))
    hours = {day.lower(): (_hhmm(v[0]), _hhmm(v[1])) for day, v in (salon.get("opening_hours") or {}).items()}
    services = [
        ServiceInfo(name=s["name"], duration_minutes=int(s["duration_minutes"]), price=float(s["price"]),
                    description=s.get("description", ""), synonyms=tuple(s.get("synonyms") or ()))
        for s in salon["services"]
    ]
    staff = [StaffMember(name=s["name"], role=s.get("role", ""), services=tuple(s["services"]))
             for s in salon.get("staff") or []]
    products = [
        ProductInfo(sku=p["sku"], name=p["name"], category=p["category"], price=float(p["price"]),
                    stock=int(p.get("stock", 0)), synonyms=tuple(p.get("synonyms") or ()))
        for p in catalogue["products"]
    ]
    shipping = salon.get("shipping") or {}
    business = Business(
        name=salon["name"], timezone=salon.get("timezone", "Europe/London"), currency=salon.get("currency", "GBP"),
        address=salon["address"], phone=str(salon.get("phone", "")), email=salon.get("email", ""),
        maps_url=salon.get("maps_url", ""),
        slot_minutes=int(salon.get("slot_minutes", 30)), booking_horizon_days=int(salon.get("booking_horizon_days", 60)),
        opening_hours=hours, closed_dates=[date.fromisoformat(str(d)) for d in salon.get("closed_dates") or []],
        staff=staff, services=services, products=products,
    )
    business.faq = {
        "opening_hours": f"Our opening hours: {business.describe_hours()}.",
        "location": f"You'll find us at {business.address}." + (f" Map: {business.maps_url}" if business.maps_url else ""),
        "shipping": " ".join(str(v) for v in shipping.values()),
        "returns": str(salon.get("returns", "")),
        "payment_methods": str(salon.get("payment_methods", "")),
        "pricing": "Our prices: "
        + ", ".join(f"{s.name} {business.money(s.price)} ({s.duration_minutes} min)" for s in services)
        + f". Shop products start at {business.money(min(p.price for p in products))}; ask me about any product.",
    }
    return business
