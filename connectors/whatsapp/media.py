"""What the connector answers to media the bot cannot read, and how staff see that media.

Rasa reads text. A voice note, a picture without a caption, a sticker or a shared
location reaches it only as "[voice message]", "[image]"… which its NLU (trained on
what customers type) can only misread. So the connector answers these at the edge, once
per message, with a reply that helps: asks for the voice note in writing, tells where the
team will see a document, and answers a location with the business's address and
directions from where the customer is. The address comes from the business file the
bot's actions read (`rasa_project/business/salon.yml`, `BUSINESS_DATA_DIR`), so it is
changed in one place. A media message with a caption is different: the caption is text
the customer typed, and it goes to the bot as any message does.

The bytes are never stored here: staff fetch them through the connector
(`GET /api/v1/whatsapp/media/{wamid}`, connectors/whatsapp/admin.py), which asks the
Graph API for a fresh URL each time and streams the download on, size-capped.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import yaml

from connectors.whatsapp.payloads import MEDIA_TYPES

DEFAULT_BUSINESS_DIR = Path(__file__).resolve().parents[2] / "rasa_project" / "business"
# Google Maps' documented cross-platform URL (opens the app on a phone): directions from the
# customer's shared position to the business's address.
DIRECTIONS_URL = "https://www.google.com/maps/dir/"

# Types answered here when they carry no caption (a location never has one).
ANSWERED_TYPES = (*MEDIA_TYPES, "location")

REPLIES = {
    "voice": "Thanks for your voice note! I can't listen to voice notes yet — could you type your message for me?",
    "audio": "Thanks for the audio! I can't listen to recordings yet — could you type your message for me?",
    "image": (
        "Thanks for the picture! I can't look at images yet — could you tell me in a few words what you need? "
        "Our team can see it too."
    ),
    "video": (
        "Thanks for the video! I can't watch videos yet — could you tell me in a few words what you need? "
        "Our team can see it too."
    ),
    "document": (
        "Thanks, we've received your document{name}. I can't read documents myself, but our team can see it. "
        "Is there anything I can help you with meanwhile?"
    ),
    "sticker": "😊 Thanks! How can I help you today? You can ask me about our services, prices or a booking.",
}

# Types a browser may show inline from our origin; anything else (PDF, SVG, HTML, Office files…)
# is served as an attachment, so user-supplied content never runs as a page of ours.
INLINE_TYPES = re.compile(r"^(image/(jpeg|png|webp|gif)|audio/[\w.+-]+|video/[\w.+-]+)$")
MIME = re.compile(r"^[\w.+-]+/[\w.+-]+$")
PRINTABLE = re.compile(r"^[\x20-\x7e]*$")


@dataclass(frozen=True, slots=True)
class BusinessPlace:
    name: str
    address: str

    @classmethod
    def load(cls, directory: str | Path | None = None) -> BusinessPlace:
        """The business's name and address from `salon.yml` in `directory` (default rasa_project/business)."""
        path = Path(directory or DEFAULT_BUSINESS_DIR) / "salon.yml"
        salon = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        if not salon.get("address"):
            raise ValueError(f"{path}: the business needs an `address` to answer a shared location")
        return cls(name=str(salon.get("name") or "us"), address=str(salon["address"]))


def directions_url(*, latitude: Any, longitude: Any, destination: str) -> str:
    query = {"api": "1", "destination": destination}
    if latitude is not None and longitude is not None:
        query["origin"] = f"{latitude},{longitude}"
    return f"{DIRECTIONS_URL}?{urlencode(query)}"


@dataclass(frozen=True, slots=True)
class MediaReplies:
    """The connector's one reply to a media message or a location the bot cannot read."""

    place: BusinessPlace

    def reply_for(self, *, kind: str, content: dict[str, Any]) -> str | None:
        """The reply to a message of type `kind` whose type-named object is `content`; None = ask the bot."""
        if kind not in ANSWERED_TYPES:
            return None
        if kind == "location":
            return self._location(content)
        if (content.get("caption") or "").strip():
            return None  # the customer's own words: a turn for the bot
        if kind == "audio":
            return REPLIES["voice" if content.get("voice") else "audio"]
        if kind == "document":
            filename = str(content.get("filename") or "").strip()
            return REPLIES["document"].format(name=f" ({filename})" if filename else "")
        return REPLIES[kind]

    def _location(self, location: dict[str, Any]) -> str:
        link = directions_url(
            latitude=location.get("latitude"), longitude=location.get("longitude"), destination=self.place.address
        )
        return (
            f"Thanks for sharing your location! You'll find {self.place.name} at {self.place.address}. "
            f"Directions from where you are: {link}"
        )


def content_type_of(mime_type: str | None) -> str:
    """A safe Content-Type for the media (Meta's mime type, parameters kept), or octet-stream."""
    if not mime_type:
        return "application/octet-stream"
    essence = mime_type.split(";", 1)[0].strip().lower()
    if not MIME.match(essence):
        return "application/octet-stream"
    # Parameters (`codecs=opus`) are kept when they are plain printable text: nothing to break a header.
    return mime_type.strip() if PRINTABLE.match(mime_type.strip()) else essence


def disposition(mime_type: str | None, filename: str | None) -> str:
    essence = (mime_type or "").split(";", 1)[0].strip().lower()
    kind = "inline" if INLINE_TYPES.match(essence) else "attachment"
    if not filename:
        return kind
    safe = re.sub(r"[^\w.\- ]", "_", filename)[:200] or "media"
    return f'{kind}; filename="{safe}"'
