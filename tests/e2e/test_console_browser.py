"""The CSR console in a real headless Chromium, against the real API, Rasa and PostgreSQL.

A customer asks for a human; the CSR sees it in the queue, claims it, replies, and
resolves it; the customer sees the reply in their history and the bot answers again.
The console's screenshot is saved as artifacts/console.png.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import Browser, Page, expect, sync_playwright

from tests.conftest import TokenFactory, auth
from tests.support.processes import ROOT
from tests.support.stack import RASA_TOKEN, BotStack

pytestmark = pytest.mark.e2e

CHROMIUM = os.environ.get("CHROMIUM_PATH", "/usr/bin/chromium")
ARTIFACTS = ROOT / "artifacts"
# Without the background-networking flags Chromium keeps calling hosts this machine cannot reach.
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    if not Path(CHROMIUM).exists():
        pytest.fail(f"no Chromium at {CHROMIUM}: run `make browser` (apt-get install chromium chromium-driver)")
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield launched
        finally:
            launched.close()


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    context = browser.new_context(viewport={"width": 1440, "height": 900})
    try:
        yield context.new_page()
    finally:
        context.close()


def say(api: httpx.Client, token: str, user: str, text: str, conversation_id: str = "") -> dict:
    response = api.post(
        "/api/v1/messages",
        headers=auth(token),
        json={"conversation_id": conversation_id, "user_id": user, "message": text},
    )
    assert response.status_code == 200, response.text
    return response.json()


def sign_in(page: Page, api_url: str, token: str) -> None:
    page.goto(f"{api_url}/console")
    page.get_by_test_id("token").fill(token)
    page.get_by_test_id("sign-in").click()


def test_a_csr_takes_a_conversation_in_the_console(
    page: Page, api: httpx.Client, api_url: str, real_bot: BotStack, token: TokenFactory
) -> None:
    customer = token("e2e-maria")
    # Someone else waiting too, so the queue looks like a queue.
    say(api, token("e2e-jonas"), "e2e-jonas", "talk to an agent")
    say(api, customer, "e2e-maria", "hello")
    cid = say(
        api, customer, "e2e-maria", "can i talk to a human", say(api, customer, "e2e-maria", "hi")["conversation_id"]
    )["conversation_id"]
    say(api, customer, "e2e-maria", "my booking for saturday is wrong", cid)

    sign_in(page, api_url, token("e2e-csr-lena", "csr"))
    expect(page.get_by_test_id("who")).to_contain_text("e2e-csr-lena")
    card = page.locator(f'[data-testid="queue-item"][data-conversation="{cid}"]')
    expect(card).to_be_visible()
    expect(card).to_contain_text("e2e-maria")
    expect(card).to_contain_text("request_human")
    card.click()

    transcript = page.get_by_test_id("transcript")
    expect(transcript).to_contain_text("my booking for saturday is wrong")
    expect(page.get_by_test_id("intents")).to_contain_text("request_human")
    expect(page.get_by_test_id("state")).to_have_text("Waiting for a CSR")

    page.get_by_test_id("claim").click()
    expect(page.get_by_test_id("state")).to_have_text("With a CSR")
    page.get_by_test_id("reply").fill("Hi Maria, Lena here. Let me fix that booking for you.")
    page.get_by_test_id("reply").press("Enter")
    expect(page.locator('[data-testid="message"][data-sender="csr"]')).to_contain_text("Lena here")

    history = api.get(f"/api/v1/user/e2e-maria/messages/{cid}", headers=auth(customer)).json()["messages"]
    assert (history[-1]["sender"], history[-1]["text"]) == (
        "csr",
        "Hi Maria, Lena here. Let me fix that booking for you.",
    )

    # The customer answers; the console picks it up by itself.
    assert say(api, customer, "e2e-maria", "thank you!", cid)["message"] == ""
    expect(transcript).to_contain_text("thank you!", timeout=10_000)
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "console.png"))

    page.get_by_test_id("note").fill("moved the booking to 10:00")
    page.get_by_test_id("resolve").click()
    expect(page.get_by_test_id("state")).to_have_text("With the bot")
    expect(page.get_by_test_id("history")).to_contain_text("moved the booking to 10:00")
    page.screenshot(path=str(ARTIFACTS / "console-resolved.png"))

    back = say(api, customer, "e2e-maria", "what are your opening hours?", cid)
    assert back["handoff_state"] == "bot" and "open" in back["message"].lower()
    rasa = httpx.get(f"{real_bot.rasa_url}/conversations/{cid}/tracker", params={"token": RASA_TOKEN}).json()
    assert rasa["paused"] is False


def test_the_console_refuses_a_client_token(page: Page, api_url: str, token: TokenFactory) -> None:
    sign_in(page, api_url, token("e2e-nosy"))
    expect(page.locator("#toast")).to_contain_text("needs a csr or admin token")
    expect(page.get_by_test_id("who")).to_have_text("Not signed in")
