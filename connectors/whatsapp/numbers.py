"""The business's WhatsApp phone numbers: which ones we serve, and which one a reply goes out from.

`WHATSAPP_PHONE_NUMBER_ID` lists them (`id=display name,...`). A notification for a number not
in the list belongs to another deployment or a number being set up: it is acknowledged (Meta
would otherwise redeliver it for days), not stored, logged and counted.
"""

from __future__ import annotations

import logging
from collections import Counter
from dataclasses import dataclass, field

from connectors.whatsapp import metrics
from connectors.whatsapp.payloads import Notification

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class PhoneNumbers:
    names: dict[str, str]  # phone number id -> display name, the default sender first

    def __post_init__(self) -> None:
        if not self.names:
            raise ValueError("at least one WhatsApp phone number id is needed")

    @property
    def default(self) -> str:
        return next(iter(self.names))

    def serves(self, phone_number_id: str | None) -> bool:
        # A notification without metadata (never seen from Meta) is not refused for it.
        return phone_number_id is None or phone_number_id in self.names

    def sender_for(self, phone_number_id: str | None) -> str:
        """The number to send from: the one the customer wrote to while we serve it, else the default."""
        if phone_number_id and phone_number_id in self.names:
            return phone_number_id
        if phone_number_id:
            log.warning(
                "phone number %s is no longer configured; sending from the default %s", phone_number_id, self.default
            )
        return self.default

    def name_of(self, phone_number_id: str | None) -> str | None:
        return self.names.get(phone_number_id or "") if phone_number_id else None


@dataclass(slots=True)
class Ignored:
    """What a notification held for numbers we do not serve, by phone number id."""

    messages: Counter[str] = field(default_factory=Counter)
    statuses: Counter[str] = field(default_factory=Counter)
    preferences: Counter[str] = field(default_factory=Counter)

    @property
    def total(self) -> int:
        return sum(self.messages.values()) + sum(self.statuses.values()) + sum(self.preferences.values())


def keep_served(notification: Notification, numbers: PhoneNumbers) -> tuple[Notification, Ignored]:
    """The part of `notification` for numbers we serve, and a count of the rest (logged and counted)."""
    ignored = Ignored()
    # Template updates concern the business account, not one number: always kept.
    kept = Notification(profile_names=notification.profile_names, templates=notification.templates)
    for message in notification.messages:
        if numbers.serves(message.phone_number_id):
            kept.messages.append(message)
        else:
            ignored.messages[str(message.phone_number_id)] += 1
    for status in notification.statuses:
        if numbers.serves(status.phone_number_id):
            kept.statuses.append(status)
        else:
            ignored.statuses[str(status.phone_number_id)] += 1
    for preference in notification.preferences:
        if numbers.serves(preference.phone_number_id):
            kept.preferences.append(preference)
        else:
            ignored.preferences[str(preference.phone_number_id)] += 1
    for kind, counts in (
        ("message", ignored.messages),
        ("status", ignored.statuses),
        ("preference", ignored.preferences),
    ):
        for phone_number_id, n in counts.items():
            metrics.UNCONFIGURED_NUMBER.labels(phone_number_id=phone_number_id, kind=kind).inc(n)
            log.warning(
                "whatsapp notification for an unconfigured phone number ignored phone_number_id=%s kind=%s count=%d"
                " (add it to WHATSAPP_PHONE_NUMBER_ID to serve it)",
                phone_number_id,
                kind,
                n,
            )
    return kept, ignored
