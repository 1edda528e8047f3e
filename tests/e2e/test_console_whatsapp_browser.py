"""The CSR console's WhatsApp side in a real headless Chromium: the 24-hour window and the template picker.

The API runs as a real HTTP server (uvicorn, in a thread, with a scripted bot) on PostgreSQL,
against the Graph API stand-in. A WhatsApp customer asks for a human, the CSR claims the
conversation, the window closes: the console says so, refuses free text, and sends a template
with the parameters the CSR typed. The screenshot is saved as artifacts/console-template.png.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import psycopg
import pytest
import uvicorn
from playwright.sync_api import Page, expect

from conversation_api.main import create_app
from tests.conftest import TokenFactory
from tests.e2e.test_console_browser import ARTIFACTS, browser, page, sign_in  # noqa: F401  (fixtures)
from tests.integration.test_whatsapp_templates import TEMPLATES, approve_all
from tests.support.database import POSTGRES_URL, drop_schema, migrate, new_schema_name, plain_dsn, postgres_settings
from tests.support.fake_graph import FakeGraph
from tests.support.fakes import ScriptedBot
from tests.support.processes import free_port
from tests.support.whatsapp import WEBHOOK, new_wa_id, signed, text_payload, wait_until, whatsapp_settings

pytestmark = pytest.mark.e2e


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[str, FakeGraph, str]]:
    """(the API's URL, the Graph stand-in, the PostgreSQL schema) with the WhatsApp connector and templates."""
    registry = tmp_path / "templates.yml"
    registry.write_text(TEMPLATES)
    graph = FakeGraph().start()
    approve_all(graph)
    schema = new_schema_name()
    base = postgres_settings(schema)
    # In a thread of its own: Alembic runs its own event loop, and Playwright's sync API has one running here.
    migrating = threading.Thread(target=migrate, args=(base,))
    migrating.start()
    migrating.join()
    try:
        settings = whatsapp_settings(base, graph, whatsapp_templates_file=str(registry))
        app = create_app(settings, bot=ScriptedBot())
        port = free_port()
        server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
        thread = threading.Thread(target=server.run, name="api", daemon=True)
        thread.start()
        wait_until(lambda: server.started, within=20)
        try:
            yield f"http://127.0.0.1:{port}", graph, str(settings.database_schema)
        finally:
            server.should_exit = True
            thread.join(timeout=20)
    finally:
        graph.stop()
        drop_schema(schema)


def test_the_console_shows_the_closed_window_and_sends_a_template(
    page: Page,  # noqa: F811
    served: tuple[str, FakeGraph, str],
    token: TokenFactory,
) -> None:
    url, graph, schema = served
    wa_id = new_wa_id()
    body, headers = signed(text_payload(wa_id, "human please", name="Maria Lopez"))
    assert httpx.post(url + WEBHOOK, content=body, headers=headers).status_code == 200
    wait_until(lambda: "A member of our team will reply here shortly." in graph.texts(wa_id))

    sign_in(page, url, token("csr-lena", "csr"))
    card = page.locator('[data-testid="queue-item"]', has_text=f"whatsapp:{wa_id}")
    expect(card).to_be_visible(timeout=10_000)
    card.click()
    page.get_by_test_id("claim").click()
    expect(page.get_by_test_id("state")).to_have_text("With a CSR")
    expect(page.get_by_test_id("window")).to_contain_text("window open")

    # A day passes without a word from the customer: the window closes.
    with psycopg.connect(plain_dsn(POSTGRES_URL), autocommit=True) as connection:
        connection.execute(
            f"UPDATE \"{schema}\".whatsapp_contact SET last_inbound_at = now() - interval '25 hours' WHERE wa_id = %s",
            (wa_id,),
        )
    expect(page.get_by_test_id("window")).to_contain_text("window closed", timeout=10_000)
    expect(page.get_by_test_id("reply")).to_be_disabled()

    page.get_by_test_id("template").select_option("appointment_reminder/en_US")
    page.get_by_test_id("param-customer_name").fill("Maria")
    page.get_by_test_id("param-date").fill("Monday 8 December")
    expect(page.get_by_test_id("template-preview")).to_contain_text("Hi Maria, this is a reminder")
    expect(page.get_by_test_id("template-preview")).to_contain_text("[time]")
    page.get_by_test_id("param-time").fill("10:30")
    expect(page.get_by_test_id("template-preview")).to_contain_text("[Confirm] [Reschedule] [Cancel]")
    page.get_by_test_id("send-template").click()
    expect(page.locator("#toast")).to_contain_text("Template sent")
    expect(page.locator('[data-testid="message"][data-sender="csr"]')).to_contain_text("on Monday 8 December at 10:30")
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "console-template.png"))

    deadline = time.monotonic() + 10
    while not [b for b in graph.sends(wa_id) if b["type"] == "template"] and time.monotonic() < deadline:
        time.sleep(0.1)
    [sent] = [b for b in graph.sends(wa_id) if b["type"] == "template"]
    assert sent["template"]["name"] == "appointment_reminder"
    assert [p["text"] for p in sent["template"]["components"][0]["parameters"]] == [
        "Maria",
        "Monday 8 December",
        "10:30",
    ]
