"""The connector's replies to media, the directions link, and the headers the staff media route sends."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest

from connectors.whatsapp.media import BusinessPlace, MediaReplies, content_type_of, directions_url, disposition

SALON = Path(__file__).resolve().parents[2] / "rasa_project" / "business" / "salon.yml"


@pytest.fixture
def replies() -> MediaReplies:
    return MediaReplies(BusinessPlace(name="Corner Salon", address="1 High St, Town"))


def test_the_place_comes_from_the_business_file_the_action_server_reads(tmp_path: Path) -> None:
    place = BusinessPlace.load()
    assert place.address and place.address in SALON.read_text()
    (tmp_path / "salon.yml").write_text("name: Elsewhere\naddress: 9 Side Road\n")
    assert BusinessPlace.load(tmp_path) == BusinessPlace(name="Elsewhere", address="9 Side Road")
    (tmp_path / "salon.yml").write_text("name: Nowhere\n")
    with pytest.raises(ValueError, match="needs an `address`"):
        BusinessPlace.load(tmp_path)


@pytest.mark.parametrize(
    ("kind", "content", "expected"),
    [
        ("audio", {"id": "1", "voice": True}, "I can't listen to voice notes yet"),
        ("audio", {"id": "1"}, "I can't listen to recordings yet"),
        ("image", {"id": "1"}, "I can't look at images yet"),
        ("image", {"id": "1", "caption": "  "}, "I can't look at images yet"),  # a blank caption is none
        ("video", {"id": "1"}, "I can't watch videos yet"),
        ("document", {"id": "1", "filename": "cv.pdf"}, "your document (cv.pdf)."),
        ("document", {"id": "1"}, "your document. I can't read"),
        ("sticker", {"id": "1", "animated": True}, "How can I help you today?"),
    ],
)
def test_media_the_bot_cannot_read_gets_a_helpful_reply(
    replies: MediaReplies, kind: str, content: dict, expected: str
) -> None:
    reply = replies.reply_for(kind=kind, content=content)
    assert reply is not None and expected in reply


@pytest.mark.parametrize(
    ("kind", "content"),
    [
        ("image", {"id": "1", "caption": "Is this colour available?"}),
        ("video", {"id": "1", "caption": "this cut please"}),
        ("document", {"id": "1", "caption": "my invoice, is it paid?"}),
        ("text", {"body": "hello"}),
        ("contacts", {}),
        ("reaction", {"emoji": "👍"}),
    ],
)
def test_a_caption_and_other_types_go_to_the_bot(replies: MediaReplies, kind: str, content: dict) -> None:
    assert replies.reply_for(kind=kind, content=content) is None


def test_a_location_is_answered_with_the_address_and_directions(replies: MediaReplies) -> None:
    reply = replies.reply_for(kind="location", content={"latitude": 51.5, "longitude": -0.12, "name": "Home"})
    assert reply is not None and "Corner Salon at 1 High St, Town" in reply
    link = urlsplit(reply.split("Directions from where you are: ")[1])
    assert (link.netloc, link.path) == ("www.google.com", "/maps/dir/")
    assert parse_qs(link.query) == {"api": ["1"], "destination": ["1 High St, Town"], "origin": ["51.5,-0.12"]}
    # Without coordinates the link still finds the business.
    assert "origin" not in directions_url(latitude=None, longitude=None, destination="1 High St, Town")


@pytest.mark.parametrize(
    ("mime", "expected"),
    [
        ("image/jpeg", "image/jpeg"),
        ("audio/ogg; codecs=opus", "audio/ogg; codecs=opus"),
        (None, "application/octet-stream"),
        ("not a type", "application/octet-stream"),
        ("text/html\r\nSet-Cookie: x=1", "application/octet-stream"),
        ("audio/ogg; codecs=\u00e9\r\nX: y", "audio/ogg"),
    ],
)
def test_the_content_type_is_meta_s_when_it_is_a_plain_type(mime: str | None, expected: str) -> None:
    assert content_type_of(mime) == expected


@pytest.mark.parametrize(
    ("mime", "filename", "expected"),
    [
        ("image/png", None, "inline"),
        ("audio/ogg; codecs=opus", None, "inline"),
        ("video/mp4", "clip.mp4", 'inline; filename="clip.mp4"'),
        ("image/svg+xml", None, "attachment"),  # scripts run in an SVG
        ("text/html", None, "attachment"),
        ("application/pdf", 'bad"name\r\n.pdf', 'attachment; filename="bad_name__.pdf"'),
    ],
)
def test_only_passive_types_are_shown_inline(mime: str, filename: str | None, expected: str) -> None:
    assert disposition(mime, filename) == expected
