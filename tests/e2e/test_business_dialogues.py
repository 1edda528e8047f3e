"""The business assistant end to end: HTTP -> conversation API -> real Rasa -> real action server
-> the embedded SQL business services in the test's PostgreSQL schema. Each dialogue asserts on
what was stored (biz_* tables), not only on what the bot said."""

from __future__ import annotations

from datetime import date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import psycopg
import pytest

from conversation_api.settings import Settings
from tests.conftest import TokenFactory, auth
from tests.support.database import POSTGRES_URL, plain_dsn

pytestmark = pytest.mark.e2e

TZ = ZoneInfo("Europe/London")


class Customer:
    """One customer chatting through the API, keeping the conversation id."""

    def __init__(self, api: httpx.Client, token: TokenFactory, user_id: str) -> None:
        self.api, self.user_id, self.token = api, user_id, token(user_id)
        self.conversation_id = ""

    def say(self, text: str) -> str:
        response = self.api.post(
            "/api/v1/messages",
            headers=auth(self.token),
            json={"conversation_id": self.conversation_id, "user_id": self.user_id, "message": text},
        )
        assert response.status_code == 200, response.text
        body = response.json()
        self.conversation_id = body["conversation_id"]
        return body["message"]


def rows(settings: Settings, sql: str, *params: Any) -> list[tuple]:
    with psycopg.connect(plain_dsn(POSTGRES_URL), options=f"-csearch_path={settings.database_schema}") as conn:
        return conn.execute(sql, params).fetchall()


def open_weekday() -> date:
    """A Tuesday-Friday at least two days ahead (open 09:00-19:00 in salon.yml)."""
    day = datetime.now(TZ).date() + timedelta(days=2)
    while day.weekday() not in (1, 2, 3, 4):
        day += timedelta(days=1)
    return day


def test_book_an_appointment_as_a_new_customer(
    api: httpx.Client, token: TokenFactory, stack_settings: Settings
) -> None:
    anna = Customer(api, token, "e2e-biz-anna")
    assert "Welcome to ReviewBot Salon" in anna.say("hi")
    assert "Which day" in anna.say("I'd like to book a haircut")
    day = open_weekday()
    assert "What time" in anna.say(f"{day.day}/{day.month}")
    assert "name" in anna.say("11am").lower()
    assert "phone" in anna.say("Anna Smith").lower()
    confirm = anna.say("07700 900123")
    assert "Shall I book a haircut" in confirm and "11:00" in confirm
    booked = anna.say("yes")
    assert "You're booked" in booked

    [(appointment_id, service, start_at, status)] = rows(
        stack_settings,
        "SELECT id, service, start_at, status FROM biz_appointments WHERE customer_id = %s",
        "e2e-biz-anna",
    )
    assert appointment_id in booked and service == "haircut" and status == "booked"
    local = start_at.replace(tzinfo=ZoneInfo("UTC")).astimezone(TZ)
    assert (local.date(), local.hour, local.minute) == (day, 11, 0)
    [(name, phone)] = rows(stack_settings, "SELECT name, phone FROM biz_customers WHERE id = %s", "e2e-biz-anna")
    assert (name, phone) == ("Anna Smith", "+447700900123")

    # A returning customer is greeted by name in a new conversation, and the slot is now taken.
    anna.conversation_id = ""
    assert "Welcome back, Anna" in anna.say("hello")
    ben = Customer(api, token, "e2e-biz-ben")
    ben.say("hi")
    ben.say("book a haircut")
    ben.say(f"{day.day}/{day.month}")
    # Maria and Tom both cut hair: take the second chair, then the third request must be refused.
    ben.say("11am")
    ben.say("Ben Jones")
    ben.say("+44 7700 900456")
    assert "You're booked" in ben.say("yes")
    carl = Customer(api, token, "e2e-biz-carl")
    carl.say("book a haircut")
    carl.say(f"{day.day}/{day.month}")
    taken = carl.say("11am")
    # 45-minute haircuts: 10:30 and 11:30 would overlap the two 11:00 bookings.
    assert "already taken" in taken and "10:00" in taken and "12:00" in taken


def test_buy_two_products_and_check_the_order(api: httpx.Client, token: TokenFactory, stack_settings: Settings) -> None:
    dora = Customer(api, token, "e2e-biz-dora")
    found = dora.say("do you have argan shampoo?")
    [(stock_before,)] = rows(stack_settings, "SELECT stock FROM biz_products WHERE sku = 'SH-001'")
    assert "argan shampoo: £12.50" in found
    assert "Added 2 x argan shampoo" in dora.say("add 2 argan shampoo to my cart")
    assert "Added 1 x beard oil" in dora.say("add 1 beard oil to my cart")
    assert "Total: £39.50" in dora.say("what's in my cart?")
    assert "Shall I place it" in dora.say("checkout")
    placed = dora.say("yes")
    assert "is placed" in placed

    [(order_id, status, total)] = rows(
        stack_settings, "SELECT id, status, total FROM biz_orders WHERE customer_id = %s", "e2e-biz-dora"
    )
    assert order_id in placed and status == "placed" and total == pytest.approx(39.5)
    lines = rows(stack_settings, "SELECT sku, quantity FROM biz_order_lines WHERE order_id = %s ORDER BY sku", order_id)
    assert lines == [("OI-003", 1), ("SH-001", 2)]
    [(stock_after,)] = rows(stack_settings, "SELECT stock FROM biz_products WHERE sku = 'SH-001'")
    assert stock_after == stock_before - 2
    assert rows(stack_settings, "SELECT * FROM biz_cart_lines WHERE customer_id = %s", "e2e-biz-dora") == []

    # Check the order, by "my last order" and by its id.
    assert order_id in dora.say("where is my order?")
    status_reply = dora.say(f"what's the status of order {order_id}")
    assert order_id in status_reply and "placed" in status_reply


def test_ask_for_products_the_shop_does_not_carry(api: httpx.Client, token: TokenFactory) -> None:
    """The product is read off the question even when the catalogue (and so DIET) has never seen it."""
    gina = Customer(api, token, "e2e-biz-gina")
    assert "Sorry, we don't carry perfume. We stock" in gina.say("do you sell perfume?")
    closest = gina.say("is there tea tree shampoo in your shop")
    assert closest.startswith("Sorry, we don't carry tea tree shampoo. The closest we have:")
    assert "argan shampoo: £12.50" in closest
    assert gina.say("have you got dry shampoo").startswith("Sorry, we don't carry dry shampoo. The closest")
    assert gina.say("any hairspray in stock?").startswith("Here's what I found:\n- hair spray: £8.50")


def test_update_an_email(api: httpx.Client, token: TokenFactory, stack_settings: Settings) -> None:
    erin = Customer(api, token, "e2e-biz-erin")
    reply = erin.say("my email is erin.walsh@example.com")
    assert "erin.walsh@example.com" in reply
    [(email,)] = rows(stack_settings, "SELECT email FROM biz_customers WHERE id = %s", "e2e-biz-erin")
    assert email == "erin.walsh@example.com"
    assert "erin.walsh@example.com" in erin.say("show my profile")


def test_give_feedback(api: httpx.Client, token: TokenFactory, stack_settings: Settings) -> None:
    finn = Customer(api, token, "e2e-biz-finn")
    assert "1 (poor) to 5" in finn.say("I'd like to leave some feedback")
    assert "Anything you'd like to add" in finn.say("5")
    assert "Thank you for your feedback" in finn.say("Maria was brilliant")
    [(rating, comment, conversation_id)] = rows(
        stack_settings,
        "SELECT rating, comment, conversation_id FROM biz_feedback WHERE customer_id = %s",
        "e2e-biz-finn",
    )
    assert (rating, comment, conversation_id) == (5, "Maria was brilliant", finn.conversation_id)
