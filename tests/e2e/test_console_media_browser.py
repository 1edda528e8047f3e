"""The CSR console shows a WhatsApp customer's media, in a real headless Chromium.

The API runs as a real HTTP server (uvicorn, in a thread, with a scripted bot) on PostgreSQL,
against the Graph API stand-in. A customer asks for a human, then sends a picture, a voice
note, a document and their location; the CSR opens the conversation and sees the picture
(fetched through the connector's media route with the CSR's token, never Meta's URL), a player
for the voice note, a download link for the document and a map link for the location. The
screenshot is saved as artifacts/console-media.png.
"""

from __future__ import annotations

import struct
import zlib

import httpx
import pytest
from playwright.sync_api import Page, expect

from tests.conftest import TokenFactory
from tests.e2e.test_console_browser import ARTIFACTS, browser, page, sign_in  # noqa: F401  (fixtures)
from tests.e2e.test_console_whatsapp_browser import served  # noqa: F401  (fixture)
from tests.integration.test_whatsapp_media import media_payload
from tests.support.fake_graph import FakeGraph
from tests.support.whatsapp import WEBHOOK, new_wa_id, new_wamid, signed, text_payload, wait_until

pytestmark = pytest.mark.e2e


def png(width: int, height: int, rgb: tuple[int, int, int]) -> bytes:
    """A real PNG of one colour (the browser must decode it to show it)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    rows = b"".join(b"\x00" + bytes(rgb) * width for _ in range(height))
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b"")


def post(url: str, payload: dict) -> None:
    body, headers = signed(payload)
    assert httpx.post(url + WEBHOOK, content=body, headers=headers).status_code == 200


def test_the_console_shows_a_customers_picture_voice_note_document_and_location(
    page: Page,  # noqa: F811
    served: tuple[str, FakeGraph, str],  # noqa: F811
    token: TokenFactory,
) -> None:
    url, graph, _ = served
    wa_id = new_wa_id()
    post(url, text_payload(wa_id, "human please", name="Maria Lopez"))
    wait_until(lambda: "A member of our team will reply here shortly." in graph.texts(wa_id))

    graph.add_media("7001", png(120, 80, (214, 40, 90)), "image/png")
    graph.add_media("7002", b"OggS\x00fake-opus-voice-note", "audio/ogg; codecs=opus")
    graph.add_media("7003", b"%PDF-1.4\n%%EOF\n", "application/pdf")
    post(url, media_payload("image", wa_id, new_wamid(), id="7001", mime_type="image/png", caption=None))
    post(url, media_payload("audio", wa_id, new_wamid(), id="7002"))
    post(url, media_payload("document", wa_id, new_wamid(), id="7003"))
    post(url, media_payload("location", wa_id, new_wamid(), latitude=51.5033, longitude=-0.1196))

    sign_in(page, url, token("csr-lena", "csr"))
    card = page.locator('[data-testid="queue-item"]', has_text=f"whatsapp:{wa_id}")
    expect(card).to_be_visible(timeout=10_000)
    card.click()

    image = page.get_by_test_id("media-image")
    expect(image).to_be_visible(timeout=10_000)
    # Decoded by the browser: the bytes came through the connector, whole.
    page.wait_for_function("() => document.querySelector('[data-testid=media-image]').naturalWidth === 120")
    src = image.get_attribute("src") or ""
    assert src.startswith("blob:") and "media-download" not in page.content() and graph.access_token not in src
    expect(page.get_by_test_id("media-audio")).to_have_count(1)
    expect(page.get_by_test_id("media-link")).to_have_text("⬇ invoice-0042.pdf")
    location = page.locator('[data-testid="media"][data-type="location"] a')
    expect(location).to_have_attribute("href", "https://www.google.com/maps/search/?api=1&query=51.5033%2C-0.1196")
    page.get_by_test_id("media-image").scroll_into_view_if_needed()
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "console-media.png"))

    # The 2-second refresh keeps the same elements: each media was fetched from Meta once.
    page.wait_for_timeout(2500)
    downloads = [r for r in graph.media_requests() if r.path.startswith("/media-download")]
    assert sorted(r.path for r in downloads) == ["/media-download/7001", "/media-download/7002", "/media-download/7003"]
