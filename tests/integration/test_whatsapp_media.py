"""Media: every type Meta sends, in its documented webhook shape, is acknowledged 200, stored with its
media id and type, answered once (by the connector when the bot cannot read it), marked read with the
typing indicator before the reply; staff see the bytes through the Graph API's media endpoint.

Against the Graph API stand-in, on PostgreSQL and SQLite, with a fake bot.
"""

from __future__ import annotations

import asyncio
import copy
import uuid
from typing import Any

import httpx
import pytest

from connectors.whatsapp.media import BusinessPlace
from conversation_api.conversations.models import Sender
from tests.integration.test_whatsapp_templates import Desk, auth, start_desk
from tests.integration.test_whatsapp_webhook import WA, _async, metric
from tests.support.whatsapp import eventually, fixture, new_wa_id, new_wamid, text_payload

PLACE = BusinessPlace.load()  # rasa_project/business/salon.yml, as the action server reads it

JPEG = b"\xff\xd8\xff\xe0\x00\x10JFIF\x00" + bytes(range(256)) * 4 + b"\xff\xd9"
PDF = b"%PDF-1.4\n1 0 obj <<>> endobj\ntrailer <<>>\n%%EOF\n"


@pytest.fixture
async def desk(db_settings, fake_graph, token, tmp_path):
    async for d in start_desk(db_settings, fake_graph, token, tmp_path):
        yield d


def media_payload(name: str, wa_id: str, wamid: str, **changes: Any) -> dict[str, Any]:
    """Meta's notification for a `name` message; `changes` set (or, as None, remove) fields of its object."""
    payload = copy.deepcopy(fixture(name, WA_ID=wa_id, WAMID=wamid))
    content = payload["entry"][0]["changes"][0]["value"]["messages"][0][name]
    for key, value in changes.items():
        if value is None:
            content.pop(key, None)
        else:
            content[key] = value
    return payload


def content_of(payload: dict[str, Any]) -> dict[str, Any]:
    message = payload["entry"][0]["changes"][0]["value"]["messages"][0]
    return message[message["type"]]


EXPECTED = {
    "image": "I can't look at images yet",
    "video": "I can't watch videos yet",
    "audio": "I can't listen to voice notes yet — could you type your message for me?",
    "document": "we've received your document (invoice-0042.pdf)",
    "sticker": "How can I help you today?",
    "location": PLACE.address,
}
CASES = {  # the fixture, and what to change in it: media without a caption, as customers send them
    "image": ("image", {"caption": None}),
    "video": ("video", {"caption": None}),
    "audio": ("audio", {}),
    "document": ("document", {}),
    "sticker": ("sticker", {}),
    "location": ("location", {}),
}


@pytest.mark.parametrize("case", list(CASES))
async def test_each_media_type_is_acknowledged_stored_and_answered_once_by_the_connector(desk: Desk, case: str) -> None:
    wa: WA = desk.wa
    name, changes = CASES[case]
    wa_id, wamid = new_wa_id(), new_wamid()
    payload = media_payload(name, wa_id, wamid, **changes)
    answered_before = metric("whatsapp_media_messages_total", type=name, answered="true")

    response = await wa.post(payload)
    assert response.status_code == 200 and response.json()["messages"] == 1
    row = await eventually(lambda: wa.done(wamid))
    assert (await wa.post(payload)).json()["duplicates"] == 1  # Meta redelivers it

    # Stored once, with its media id and type; the bot was not asked to read "[voice message]".
    user, reply = await wa.messages(wa_id)
    assert (user.sender, user.external_id, user.id) == (Sender.user, wamid, row.message_id)
    stored = user.payload["whatsapp"]
    assert stored["type"] == name
    content = content_of(payload)
    if name != "location":
        assert (row.media_id, row.mime_type) == (content["id"], content["mime_type"])
        assert (stored["media_id"], stored["mime_type"]) == (content["id"], content["mime_type"])
    else:
        assert stored["content"]["latitude"] == content["latitude"]
    assert wa.bot_texts(wa_id, row.conversation_id) == []

    # Answered once, by the connector, in the bot's place.
    assert (reply.sender, reply.reply_to, reply.payload) == (Sender.bot, user.id, {"media_reply": name})
    assert EXPECTED[case] in reply.text
    await eventually(lambda: _async(len(wa.graph.texts(wa_id)) == 1))
    await asyncio.sleep(0.3)
    assert wa.graph.texts(wa_id) == [reply.text]
    assert metric("whatsapp_media_messages_total", type=name, answered="true") == answered_before + 1

    # Read, with the typing indicator, in Meta's documented shape, before the reply went out.
    [typing] = [r for r in wa.graph.typing() if r.body["message_id"] == wamid]
    assert typing.body == {
        "messaging_product": "whatsapp",
        "status": "read",
        "message_id": wamid,
        "typing_indicator": {"type": "text"},
    }
    [sent] = wa.graph.attempts(wa_id)
    assert typing.at <= sent.at and typing.answer == 200


async def test_a_voice_note_is_not_a_voice_file_and_a_document_without_a_name_still_helps(desk: Desk) -> None:
    wa = desk.wa
    voice, file, document = new_wa_id(), new_wa_id(), new_wa_id()
    await wa.post(media_payload("audio", voice, new_wamid(), voice=True))
    await wa.post(media_payload("audio", file, new_wamid(), voice=False))
    await wa.post(media_payload("document", document, new_wamid(), filename=None))
    await eventually(lambda: _async(all(wa.graph.texts(w) for w in (voice, file, document))))
    assert "voice notes" in wa.graph.texts(voice)[0]
    assert "recordings" in wa.graph.texts(file)[0]
    assert "we've received your document. I can't read" in wa.graph.texts(document)[0]


async def test_a_location_is_answered_with_the_address_and_directions_from_where_the_customer_is(
    desk: Desk,
) -> None:
    wa_id, wamid = new_wa_id(), new_wamid()
    await desk.wa.post(media_payload("location", wa_id, wamid, latitude=51.5033, longitude=-0.1196))
    [text] = await eventually(lambda: _async(desk.wa.graph.texts(wa_id)))
    assert PLACE.name in text and PLACE.address in text
    link = httpx.URL(text.split("Directions from where you are: ")[1])
    assert (link.host, link.path) == ("www.google.com", "/maps/dir/")
    assert link.params["origin"] == "51.5033,-0.1196"
    assert link.params["destination"] == PLACE.address


async def test_a_caption_is_the_customers_words_and_goes_to_the_bot(desk: Desk) -> None:
    wa = desk.wa
    wa_id, wamid = new_wa_id(), new_wamid()
    await wa.post(media_payload("image", wa_id, wamid))  # "Is this colour available?"
    row = await eventually(lambda: wa.done(wamid))
    assert wa.bot_texts(wa_id, row.conversation_id) == ["Is this colour available?"]
    user = (await wa.messages(wa_id))[0]
    assert user.payload["whatsapp"]["media_id"] == content_of(fixture("image"))["id"]
    await eventually(lambda: _async(wa.graph.texts(wa_id) == ["echo: Is this colour available?", "pick one"]))
    assert wamid in [r.body["message_id"] for r in wa.graph.typing()]


async def test_with_a_human_media_is_stored_for_the_csr_without_a_reply_or_typing(desk: Desk) -> None:
    wa = desk.wa
    wa_id = new_wa_id()
    await desk.customer_writes(wa_id, "can I talk to someone?")
    await desk.hand_to_csr(wa_id)
    sent_before = len(wa.graph.sends(wa_id))
    wamid = new_wamid()
    await wa.post(media_payload("audio", wa_id, wamid))
    row = await eventually(lambda: wa.done(wamid))
    await asyncio.sleep(0.3)
    assert len(wa.graph.sends(wa_id)) == sent_before
    assert wamid in wa.graph.reads() and wamid not in [r.body["message_id"] for r in wa.graph.typing()]
    stored = await wa.messages(wa_id)
    assert stored[-1].id == row.message_id and stored[-1].payload["whatsapp"]["type"] == "audio"


# --- staff see the media ----------------------------------------------------------------------------


async def customer_sends(desk: Desk, name: str, content: bytes, mime: str, **changes: Any) -> tuple[str, str]:
    """A customer sends `name` media the stand-in holds; (wa_id, wamid) once handled."""
    media_id = str(uuid.uuid4().int % 10**16)
    desk.wa.graph.add_media(media_id, content, mime)
    wa_id, wamid = new_wa_id(), new_wamid()
    await desk.wa.post(media_payload(name, wa_id, wamid, id=media_id, mime_type=mime, **changes))
    await eventually(lambda: desk.wa.done(wamid))
    return wa_id, wamid


async def test_a_csr_sees_an_image_and_a_document_fetched_through_the_graph_media_endpoint(desk: Desk) -> None:
    _, image = await customer_sends(desk, "image", JPEG, "image/jpeg", caption=None)
    _, document = await customer_sends(desk, "document", PDF, "application/pdf")
    before = len(desk.wa.graph.media_requests())

    for role in ("csr", "admin"):
        shown = await desk.admin(f"/api/v1/whatsapp/media/{image}", role=role)
        assert shown.status_code == 200, shown.text
        assert shown.content == JPEG
        assert shown.headers["content-type"] == "image/jpeg"
        assert shown.headers["content-disposition"] == "inline"
        assert shown.headers["cache-control"] == "private, no-store"
        assert shown.headers["x-content-type-options"] == "nosniff"

    pdf = await desk.admin(f"/api/v1/whatsapp/media/{document}", role="csr")
    assert (pdf.status_code, pdf.content) == (200, PDF)
    assert pdf.headers["content-type"] == "application/pdf"
    # A PDF (like SVG or HTML) could run as a page of ours: it comes as an attachment, sandboxed.
    assert pdf.headers["content-disposition"] == 'attachment; filename="invoice-0042.pdf"'
    assert "sandbox" in pdf.headers["content-security-policy"]

    # Fetched now, each time, from Meta's media endpoint then its URL, with the token; neither leaks.
    fetched = desk.wa.graph.media_requests()[before:]
    assert len(fetched) == 6 and all(r.authorization == f"Bearer {desk.wa.graph.access_token}" for r in fetched)
    for response in (shown, pdf):
        exposed = str(response.headers).lower()
        assert desk.wa.graph.access_token.lower() not in exposed and "media-download" not in exposed


async def test_the_media_is_refused_without_a_token_to_a_client_and_for_a_message_without_media(
    desk: Desk,
) -> None:
    wa_id, image = await customer_sends(desk, "image", JPEG, "image/jpeg")
    before = len(desk.wa.graph.media_requests())
    path = f"/api/v1/whatsapp/media/{image}"

    missing = await desk.wa.http.get(path)
    assert (missing.status_code, missing.json()["code"]) == (401, "not_authenticated")
    forged = await desk.wa.http.get(path, headers={"Authorization": "Bearer not-a-token"})
    assert forged.status_code == 401
    for role in ("client", "designer"):
        refused = await desk.admin(path, role=role)
        assert (refused.status_code, refused.json()["code"]) == (403, "forbidden")
    owner = await desk.wa.http.get(path, headers=auth(desk.token(f"whatsapp:{wa_id}", "client")))
    assert owner.status_code == 403
    assert len(desk.wa.graph.media_requests()) == before  # nothing asked of Meta

    text_wamid = new_wamid()
    await desk.wa.post(text_payload(new_wa_id(), "hello", wamid=text_wamid))
    await eventually(lambda: desk.wa.done(text_wamid))
    for unknown in (text_wamid, "wamid.NOSUCH"):
        nothing = await desk.admin(f"/api/v1/whatsapp/media/{unknown}", role="csr")
        assert (nothing.status_code, nothing.json()["code"]) == (404, "media_not_found")


async def test_media_meta_no_longer_has_is_a_clear_502(desk: Desk) -> None:
    _, gone = await customer_sends(desk, "image", JPEG, "image/jpeg")
    row = await desk.wa.inbound(gone)
    del desk.wa.graph.media[row.media_id]  # Meta keeps a customer's media for 7 days
    expired = await desk.admin(f"/api/v1/whatsapp/media/{gone}", role="csr")
    assert (expired.status_code, expired.json()["code"]) == (502, "media_unavailable")


async def test_media_over_the_cap_is_refused_before_a_byte_is_downloaded(
    db_settings, fake_graph, token, tmp_path
) -> None:
    async for desk in start_desk(db_settings, fake_graph, token, tmp_path, whatsapp_media_max_bytes=len(JPEG) - 1):
        _, big = await customer_sends(desk, "image", JPEG, "image/jpeg")
        before = len(fake_graph.media_requests())
        refused = await desk.admin(f"/api/v1/whatsapp/media/{big}", role="csr")
        assert (refused.status_code, refused.json()["code"]) == (502, "media_too_large")
        assert "WHATSAPP_MEDIA_MAX_BYTES" in refused.json()["detail"]
        fetched = fake_graph.media_requests()[before:]
        assert [r.path.startswith("/media-download") for r in fetched] == [False]  # only GET /{media-id}
