"""WhatsApp media end to end: the API server configured by environment (as `make run`), the real Rasa
with the trained model, the Graph API stand-in, PostgreSQL.

A voice note and a location are answered once by the connector (the location with the address from
the business file the server found on its own), a caption goes to the real bot, the conversation
carries on with Rasa afterwards, and a CSR downloads the voice note through the staff route.
"""

from __future__ import annotations

import httpx
import pytest

from connectors.whatsapp.media import BusinessPlace
from tests.conftest import TokenFactory, auth
from tests.e2e.test_whatsapp_e2e import deliver, graph, history, whatsapp_api  # noqa: F401  (fixtures)
from tests.integration.test_whatsapp_media import media_payload
from tests.support.fake_graph import FakeGraph
from tests.support.whatsapp import new_wa_id, new_wamid, text_payload, wait_until

pytestmark = pytest.mark.e2e


def test_media_is_answered_once_by_the_connector_and_the_conversation_goes_on_with_rasa(
    whatsapp_api: httpx.Client,  # noqa: F811
    graph: FakeGraph,  # noqa: F811
    token: TokenFactory,
) -> None:
    wa_id, voice = new_wa_id(), new_wamid()
    graph.add_media("880001", b"OggS\x00voice-note-bytes", "audio/ogg; codecs=opus")
    payload = media_payload("audio", wa_id, voice, id="880001")
    assert deliver(whatsapp_api, payload).status_code == 200
    [asked] = wait_until(lambda: graph.texts(wa_id))
    assert "I can't listen to voice notes yet" in asked
    assert deliver(whatsapp_api, payload).json()["duplicates"] == 1
    assert any(r.body["message_id"] == voice for r in graph.typing())

    assert (
        deliver(whatsapp_api, media_payload("location", wa_id, new_wamid(), latitude=51.5, longitude=-0.12)).status_code
        == 200
    )
    texts = wait_until(lambda: graph.texts(wa_id)[1:])
    assert BusinessPlace.load().address in texts[0] and "origin=51.5%2C-0.12" in texts[0]

    # The customer types, as asked: the real bot answers.
    assert deliver(whatsapp_api, text_payload(wa_id, "what are your opening hours?")).status_code == 200
    wait_until(lambda: len(graph.texts(wa_id)) >= 3)
    messages = history(whatsapp_api, token, wa_id)
    assert [m["sender"] for m in messages[:4]] == ["user", "bot", "user", "bot"]
    assert messages[0]["payload"]["whatsapp"]["media_id"] == "880001"
    assert messages[1]["payload"] == {"media_reply": "audio"}
    typed = next(m for m in messages if m["text"] == "what are your opening hours?")
    assert typed["intent"] and typed["intent"] != "nlu_fallback"
    assert len([t for t in graph.texts(wa_id) if "voice notes" in t]) == 1  # answered once

    shown = whatsapp_api.get(f"/api/v1/whatsapp/media/{voice}", headers=auth(token("csr-sam", "csr")))
    assert (shown.status_code, shown.content) == (200, b"OggS\x00voice-note-bytes")
    assert shown.headers["content-type"] == "audio/ogg; codecs=opus"
    assert (
        whatsapp_api.get(f"/api/v1/whatsapp/media/{voice}", headers=auth(token(f"whatsapp:{wa_id}"))).status_code == 403
    )


def test_a_picture_with_a_caption_goes_to_rasa(whatsapp_api: httpx.Client, graph: FakeGraph) -> None:  # noqa: F811
    wa_id = new_wa_id()
    assert deliver(whatsapp_api, media_payload("image", wa_id, new_wamid(), caption="hello")).status_code == 200
    [reply] = wait_until(lambda: graph.texts(wa_id))
    assert "Welcome" in reply  # Rasa greeted back: the caption was its text
