"""Meta's webhook notification shapes -> what the connector stores.

Every entry, change, message and status is read (batches are real); a message of
a type we don't know is still returned, as type `unknown`, so it is stored and
acknowledged. Structural errors (not an object, `entry` not a list, a message
without `id`/`from`) raise MalformedPayload before anything is stored.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import orjson

WHATSAPP_OBJECT = "whatsapp_business_account"
MEDIA_TYPES = ("image", "audio", "video", "document", "sticker")
# Types whose text goes to the bot; the rest are stored without asking it.
CONVERSATIONAL_TYPES = {"text", "interactive", "button", "location", "contacts", *MEDIA_TYPES}


class MalformedPayload(ValueError):
    """The body is not a WhatsApp notification we can read; the reason says why."""


@dataclass(frozen=True, slots=True)
class InboundMessage:
    wamid: str
    wa_id: str
    type: str
    timestamp: datetime
    text: str  # readable, stored in the conversation
    bot_text: str | None  # what the bot gets (a button's id, a caption...); None = don't ask the bot
    phone_number_id: str | None = None
    profile_name: str | None = None
    media_id: str | None = None
    mime_type: str | None = None
    raw: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class StatusUpdate:
    wamid: str
    status: str
    timestamp: datetime
    recipient_id: str | None
    error_code: int | None
    error_reason: str | None
    raw: dict[str, Any]
    phone_number_id: str | None = None  # the business number the message was sent from


@dataclass(frozen=True, slots=True)
class TemplateUpdate:
    """A `message_template_status_update` (value = the event) or `message_template_quality_update`."""

    field: str
    name: str
    language: str
    template_id: str | None
    value: str  # APPROVED, REJECTED, PAUSED, DISABLED... or the new quality score
    previous: str | None  # the previous quality score
    reason: str | None
    timestamp: datetime
    raw: dict[str, Any]


@dataclass(frozen=True, slots=True)
class PreferenceUpdate:
    """A `user_preferences` item: the customer stopped (`stop`) or resumed (`resume`) marketing messages."""

    wa_id: str
    value: str
    category: str | None
    detail: str | None
    timestamp: datetime
    phone_number_id: str | None
    raw: dict[str, Any]


@dataclass(slots=True)
class Notification:
    messages: list[InboundMessage] = field(default_factory=list)
    statuses: list[StatusUpdate] = field(default_factory=list)
    profile_names: dict[str, str] = field(default_factory=dict)  # wa_id -> profile name
    templates: list[TemplateUpdate] = field(default_factory=list)
    preferences: list[PreferenceUpdate] = field(default_factory=list)


def parse_timestamp(value: Any) -> datetime:
    try:
        return datetime.fromtimestamp(int(value), UTC)
    except (TypeError, ValueError, OverflowError, OSError):
        # A missing or odd timestamp must not lose the message; "now" keeps the window open.
        return datetime.now(UTC)


def _obj(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _list(value: Any, where: str) -> list[Any]:
    if value is None:
        return []
    if not isinstance(value, list):
        raise MalformedPayload(f"{where} must be a list")
    return value


def _media_text(kind: str, media: dict[str, Any]) -> str:
    caption = (media.get("caption") or "").strip()
    if caption:
        return caption
    if kind == "document" and media.get("filename"):
        return f"[document: {media['filename']}]"
    if kind == "audio" and media.get("voice"):
        return "[voice message]"
    return f"[{kind}]"


def _location_text(location: dict[str, Any]) -> str:
    label = ", ".join(str(location[k]) for k in ("name", "address") if location.get(k))
    coords = f"{location.get('latitude')}, {location.get('longitude')}"
    return f"[location: {label} ({coords})]" if label else f"[location: {coords}]"


def _contacts_text(contacts: list[Any]) -> str:
    cards = []
    for card in contacts:
        card = _obj(card)
        name = _obj(card.get("name")).get("formatted_name") or "contact"
        phones = [str(p["phone"]) for p in card.get("phones") or [] if isinstance(p, dict) and p.get("phone")]
        cards.append(f"{name} {', '.join(phones)}".strip())
    return f"[contacts: {'; '.join(cards)}]" if cards else "[contacts]"


def describe(message: dict[str, Any]) -> tuple[str, str, str | None, str | None, str | None]:
    """(type, readable text, text for the bot or None, media id, mime type) of one `messages[]` item."""
    kind = str(message.get("type") or "unknown")
    body = _obj(message.get(kind))
    if kind == "text":
        text = str(body.get("body") or "")
        return kind, text, text or None, None, None
    if kind == "interactive":
        reply = _obj(body.get(body.get("type") or "")) if body.get("type") in ("button_reply", "list_reply") else {}
        if reply:
            title = str(reply.get("title") or reply.get("id") or "")
            # The reply id goes to the bot: our own buttons carry Rasa payloads such as /intent{...}.
            return kind, title, str(reply.get("id") or title) or None, None, None
        return kind, f"[interactive: {body.get('type') or 'unknown'}]", None, None, None
    if kind == "button":
        title = str(body.get("text") or body.get("payload") or "")
        return kind, title, str(body.get("payload") or title) or None, None, None
    if kind in MEDIA_TYPES:
        text = _media_text(kind, body)
        return kind, text, text, body.get("id"), body.get("mime_type")
    if kind == "location":
        text = _location_text(body)
        return kind, text, text, None, None
    if kind == "contacts":
        text = _contacts_text(message.get("contacts") or [])
        return kind, text, text, None, None
    if kind == "reaction":
        emoji = body.get("emoji")
        target = body.get("message_id")
        text = f"[reaction {emoji} to {target}]" if emoji else f"[reaction removed from {target}]"
        return kind, text, None, None, None
    if kind == "unsupported":
        codes = ",".join(str(_obj(e).get("code")) for e in message.get("errors") or [])
        return kind, f"[unsupported message{': ' + codes if codes else ''}]", None, None, None
    return kind, f"[{kind} message]", None, None, None


def _status(item: Any, phone_number_id: str | None) -> StatusUpdate:
    item = _obj(item)
    if not item.get("id") or not item.get("status"):
        raise MalformedPayload("every status needs `id` and `status`")
    errors = [_obj(e) for e in item.get("errors") or []]
    first = errors[0] if errors else {}
    code = first.get("code")
    reason = first.get("title") or first.get("message")
    details = _obj(first.get("error_data")).get("details")
    return StatusUpdate(
        wamid=str(item["id"]),
        status=str(item["status"]),
        timestamp=parse_timestamp(item.get("timestamp")),
        recipient_id=item.get("recipient_id"),
        error_code=int(code) if isinstance(code, int | str) and str(code).isdigit() else None,
        error_reason=" - ".join(str(x) for x in (reason, details) if x) or None,
        raw=item,
        phone_number_id=phone_number_id,
    )


TEMPLATE_FIELDS = ("message_template_status_update", "message_template_quality_update")


def _template_update(kind: str, value: dict[str, Any], entry_time: Any) -> TemplateUpdate | None:
    name, language = value.get("message_template_name"), value.get("message_template_language")
    new = value.get("event") if kind == "message_template_status_update" else value.get("new_quality_score")
    if not name or not language or not new:
        return None  # nothing we could attach it to; acknowledged all the same
    template_id = value.get("message_template_id")
    reason = value.get("reason")
    return TemplateUpdate(
        field=kind,
        name=str(name),
        language=str(language),
        template_id=str(template_id) if template_id is not None else None,
        value=str(new).upper(),
        previous=str(value["previous_quality_score"]).upper() if value.get("previous_quality_score") else None,
        reason=None if reason in (None, "", "NONE") else str(reason),
        timestamp=parse_timestamp(entry_time),
        raw=value,
    )


def _preferences(value: dict[str, Any]) -> list[PreferenceUpdate]:
    phone_number_id = _obj(value.get("metadata")).get("phone_number_id")
    updates = []
    for item in _list(value.get("user_preferences"), "user_preferences"):
        item = _obj(item)
        if not item.get("wa_id") or item.get("value") not in ("stop", "resume"):
            continue
        updates.append(
            PreferenceUpdate(
                wa_id=str(item["wa_id"]),
                value=str(item["value"]),
                category=item.get("category"),
                detail=item.get("detail"),
                timestamp=parse_timestamp(item.get("timestamp")),
                phone_number_id=phone_number_id,
                raw=item,
            )
        )
    return updates


def parse_notification(raw: bytes) -> Notification:
    """Read every entry/change/message/status of a webhook body; MalformedPayload if it is not one."""
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise MalformedPayload(f"the body is not valid JSON ({exc})") from exc
    if not isinstance(body, dict):
        raise MalformedPayload("the body must be a JSON object")
    if body.get("object") != WHATSAPP_OBJECT:
        raise MalformedPayload(f"`object` must be {WHATSAPP_OBJECT!r}, got {body.get('object')!r}")

    notification = Notification()
    for entry in _list(body.get("entry"), "entry"):
        for change in _list(_obj(entry).get("changes"), "entry[].changes"):
            change = _obj(change)
            kind = change.get("field")
            if kind in TEMPLATE_FIELDS:
                update = _template_update(str(kind), _obj(change.get("value")), _obj(entry).get("time"))
                if update is not None:
                    notification.templates.append(update)
                continue
            if kind == "user_preferences":
                notification.preferences.extend(_preferences(_obj(change.get("value"))))
                continue
            if kind not in (None, "messages"):
                continue  # account updates and the like: acknowledged, not ours to handle
            value = _obj(change.get("value"))
            phone_number_id = _obj(value.get("metadata")).get("phone_number_id")
            names = {}
            for contact in _list(value.get("contacts"), "contacts"):
                contact = _obj(contact)
                name = _obj(contact.get("profile")).get("name")
                if contact.get("wa_id") and name:
                    names[str(contact["wa_id"])] = str(name)
            notification.profile_names.update(names)
            for message in _list(value.get("messages"), "messages"):
                if not isinstance(message, dict) or not message.get("id") or not message.get("from"):
                    raise MalformedPayload("every message needs `id` and `from`")
                kind, text, bot_text, media_id, mime_type = describe(message)
                wa_id = str(message["from"])
                notification.messages.append(
                    InboundMessage(
                        wamid=str(message["id"]),
                        wa_id=wa_id,
                        type=kind,
                        timestamp=parse_timestamp(message.get("timestamp")),
                        text=text,
                        bot_text=bot_text if kind in CONVERSATIONAL_TYPES else None,
                        phone_number_id=phone_number_id,
                        profile_name=names.get(wa_id),
                        media_id=media_id,
                        mime_type=mime_type,
                        raw=message,
                    )
                )
            notification.statuses.extend(_status(s, phone_number_id) for s in _list(value.get("statuses"), "statuses"))
    return notification
