"""The review page in a real headless Chromium, against the real API, Rasa and PostgreSQL.

A CSR flags a customer message from the console while handling the conversation; a
designer opens it in the review page, corrects the intent, tags an entity span by
selecting it in the text, saves, and sees it leave the queue. Screenshots are saved
as artifacts/review.png and artifacts/review-saved.png.
"""

from __future__ import annotations

import httpx
from playwright.sync_api import Browser, Page, expect

from tests.conftest import TokenFactory, auth
from tests.e2e.test_console_browser import ARTIFACTS, say, sign_in
from tests.e2e.test_console_browser import browser as browser  # noqa: F401  (a fixture)
from tests.e2e.test_console_browser import page as page  # noqa: F401  (a fixture)

SELECT_IN_TEXT = """(part) => {
  const box = document.querySelector('[data-testid="review-text"]');
  const walker = document.createTreeWalker(box, NodeFilter.SHOW_TEXT);
  for (let node = walker.nextNode(); node; node = walker.nextNode()) {
    const at = node.textContent.indexOf(part);
    if (at >= 0) {
      const range = document.createRange();
      range.setStart(node, at); range.setEnd(node, at + part.length);
      const selection = window.getSelection(); selection.removeAllRanges(); selection.addRange(range);
      return true;
    }
  }
  return false;
}"""


def test_a_designer_corrects_a_flagged_message_in_the_review_page(
    page: Page, browser: Browser, api: httpx.Client, api_url: str, token: TokenFactory
) -> None:
    customer = token("e2e-rosa")
    cid = say(api, customer, "e2e-rosa", "hi")["conversation_id"]
    text = "my parcel 10234 has gone walkabout"
    say(api, customer, "e2e-rosa", text, cid)
    assert say(api, customer, "e2e-rosa", "i want to talk to a human", cid)["handoff_state"] == "pending_human"
    history = api.get(f"/api/v1/user/e2e-rosa/messages/{cid}", headers=auth(customer)).json()["messages"]
    message_id = next(m["id"] for m in history if m["text"] == text)

    # The CSR flags the message from the console.
    sign_in(page, api_url, token("e2e-csr-omar", "csr"))
    page.locator(f'[data-testid="queue-item"][data-conversation="{cid}"]').click()
    bubble = page.locator('[data-testid="message"][data-sender="user"]', has_text="walkabout")
    bubble.get_by_test_id("flag").click()
    expect(page.locator("#toast")).to_contain_text("Flagged")
    expect(bubble.get_by_test_id("flag")).to_be_disabled()

    # The designer reviews it.
    context = browser.new_context(viewport={"width": 1440, "height": 900})
    review = context.new_page()
    try:
        review.goto(f"{api_url}/console/review")
        review.get_by_test_id("token").fill(token("e2e-designer-ida", "designer"))
        review.get_by_test_id("sign-in").click()
        expect(review.get_by_test_id("who")).to_contain_text("e2e-designer-ida")
        review.get_by_test_id("filter-reason").select_option("flagged")
        card = review.locator(f'[data-testid="review-item"][data-message="{message_id}"]')
        expect(card).to_contain_text("flagged")
        expect(card).to_contain_text("before handoff")
        card.click()
        expect(review.get_by_test_id("review-text")).to_have_text(text)
        expect(review.get_by_test_id("focus-message")).to_contain_text(text)
        expect(review.get_by_test_id("prediction")).to_contain_text("flagged by e2e-csr-omar")

        # Whatever the bot found, start from no entities, then tag the order number: a part of it is
        # selected, the page widens the selection to the whole word.
        while review.get_by_test_id("span").count():
            review.get_by_test_id("span").first.get_by_role("button").click()
        review.get_by_test_id("intent").select_option("order_status")
        assert review.evaluate(SELECT_IN_TEXT, "023")
        expect(review.get_by_test_id("selection")).to_have_text("“10234”")
        review.get_by_test_id("entity-type").select_option("order_id")
        review.get_by_test_id("tag").click()
        expect(review.get_by_test_id("spans")).to_have_text("order_id: 10234×")
        expect(review.locator('[data-testid="review-text"] mark[data-entity="order_id"]')).to_contain_text("10234")
        ARTIFACTS.mkdir(exist_ok=True)
        review.screenshot(path=str(ARTIFACTS / "review.png"))

        review.get_by_test_id("save").click()
        expect(review.locator("#toast")).to_contain_text("Saved")
        expect(card).to_have_count(0)
        review.screenshot(path=str(ARTIFACTS / "review-saved.png"))
    finally:
        context.close()

    designer = auth(token("e2e-designer-ida", "designer"))
    saved = api.get(f"/api/v1/review/messages/{message_id}", headers=designer).json()
    start = text.index("10234")
    assert saved["annotation"]["intent"] == "order_status"
    assert saved["annotation"]["entities"] == [
        {"start": start, "end": start + 5, "entity": "order_id", "value": "10234"}
    ]
    assert saved["annotation"]["reviewed_by"] == "e2e-designer-ida"
    queue = api.get("/api/v1/review/queue", headers=designer, params={"reason": "flagged", "limit": 100}).json()
    assert message_id not in [i["message"]["id"] for i in queue["items"]]


def test_the_review_page_refuses_a_csr_token(page: Page, api_url: str, token: TokenFactory) -> None:
    page.goto(f"{api_url}/console/review")
    page.get_by_test_id("token").fill(token("e2e-csr-nosy", "csr"))
    page.get_by_test_id("sign-in").click()
    expect(page.locator("#toast")).to_contain_text("needs a designer or admin token")
    expect(page.get_by_test_id("who")).to_have_text("Not signed in")
