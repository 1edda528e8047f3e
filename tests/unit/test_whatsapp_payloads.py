"""Meta's notification shapes -> stored messages and statuses; the signature check."""

import orjson
import pytest

from connectors.whatsapp.payloads import MalformedPayload, parse_notification
from connectors.whatsapp.signature import is_valid, sign
from tests.support.whatsapp import APP_SECRET, fixture


def parse(payload: dict):
    return parse_notification(orjson.dumps(payload))


@pytest.mark.parametrize(
    ("name", "kind", "text", "bot_text", "media"),
    [
        ("text", "text", "hello", "hello", None),
        ("interactive_button_reply", "interactive", "Yes, please", "/affirm", None),
        ("interactive_list_reply", "interactive", "Opening hours", '/faq{"topic": "opening_hours"}', None),
        ("button", "button", "Talk to a person", "/request_human", None),
        (
            "image",
            "image",
            "Is this colour available?",
            "Is this colour available?",
            ("1003383421387256", "image/jpeg"),
        ),
        ("audio", "audio", "[voice message]", "[voice message]", ("1003383421387257", "audio/ogg; codecs=opus")),
        ("video", "video", "the hair cut I'd like", "the hair cut I'd like", ("1003383421387258", "video/mp4")),
        ("document", "document", "[document: invoice-0042.pdf]", None, ("1003383421387259", "application/pdf")),
        ("sticker", "sticker", "[sticker]", "[sticker]", ("1003383421387260", "image/webp")),
        ("contacts", "contacts", "[contacts: Barbara Johnson +1 (940) 555-1234]", None, None),
        ("reaction", "reaction", None, None, None),
        ("unsupported", "unsupported", "[unsupported message: 131051]", None, None),
        ("unknown_type", "poll_vote", "[poll_vote message]", None, None),
    ],
)
def test_every_message_type_is_read(name, kind, text, bot_text, media) -> None:
    payload = fixture(name, WA_ID="447700900001", WAMID="wamid.X1", TIMESTAMP="1700000000", NAME="Ana")
    notification = parse(payload)
    assert len(notification.messages) == 1
    message = notification.messages[0]
    assert (message.wamid, message.wa_id, message.type) == ("wamid.X1", "447700900001", kind)
    assert message.timestamp.timestamp() == 1700000000
    assert message.profile_name == "Ana" and notification.profile_names == {"447700900001": "Ana"}
    if text is not None:
        assert message.text == text
    if name == "reaction":
        assert message.text.startswith("[reaction 👍 to wamid.")
    if name in ("document", "contacts"):
        bot_text = message.text  # no caption: the bot gets the readable description
    assert message.bot_text == bot_text
    assert (message.media_id, message.mime_type) == (media or (None, None))
    assert message.raw["id"] == "wamid.X1"


def test_reactions_unsupported_and_unknown_types_do_not_go_to_the_bot() -> None:
    for name in ("reaction", "unsupported", "unknown_type"):
        assert parse(fixture(name)).messages[0].bot_text is None


def test_a_batch_yields_every_entry_change_message_and_status() -> None:
    payload = fixture(
        "batch", WA_ID_1="441", WA_ID_2="442", WA_ID_3="443", WAMID_1="w1", WAMID_2="w2", WAMID_3="w3",
        STATUS_WAMID="out-1", TIMESTAMP="1700000000",
    )  # fmt: skip
    notification = parse(payload)
    assert [(m.wamid, m.wa_id, m.text) for m in notification.messages] == [
        ("w1", "441", "hello"),
        ("w2", "442", "hi there"),
        ("w3", "443", "good morning"),
    ]
    assert [(s.wamid, s.status) for s in notification.statuses] == [("out-1", "delivered"), ("out-1", "read")]
    assert notification.profile_names == {"441": "Ana", "442": "Ben", "443": "Cleo"}


def test_statuses_carry_the_error_of_a_failure() -> None:
    status = parse(fixture("status_failed", WAMID="out-9", WA_ID="441")).statuses[0]
    assert (status.wamid, status.status, status.recipient_id, status.error_code) == ("out-9", "failed", "441", 131047)
    assert "24 hours" in status.error_reason
    assert parse(fixture("status_read", WAMID="out-9")).statuses[0].error_code is None


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (b"{not json", "not valid JSON"),
        (b"\xff\xfe", "not valid JSON"),
        (b"[]", "JSON object"),
        (b'{"object": "page", "entry": []}', "object"),
        (b'{"object": "whatsapp_business_account", "entry": {}}', "entry must be a list"),
        (
            b'{"object": "whatsapp_business_account", "entry": [{"changes": [{"field": "messages", '
            b'"value": {"messages": [{"type": "text", "text": {"body": "no id"}}]}}]}]}',
            "id",
        ),
    ],
)
def test_malformed_bodies_are_refused_with_a_reason(body: bytes, reason: str) -> None:
    with pytest.raises(MalformedPayload, match=reason):
        parse_notification(body)


def test_the_signature_is_over_the_raw_bytes() -> None:
    # Non-ASCII and spacing as Meta sends them: re-serialising would change the bytes.
    raw = '{"object":"whatsapp_business_account", "entry":[{"text":"olá @ café"}]}'.encode()
    header = sign(raw, APP_SECRET)
    assert header.startswith("sha256=") and is_valid(raw, header, APP_SECRET)
    assert not is_valid(orjson.dumps(orjson.loads(raw)), header, APP_SECRET)
    assert not is_valid(raw, header, "another-secret")
    assert not is_valid(raw, header.replace("sha256=", "sha1="), APP_SECRET)
    assert not is_valid(raw, "sha256=ünïcode", APP_SECRET)
