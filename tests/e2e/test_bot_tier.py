"""The bot tier under failure: durable dialogue state, several Rasa replicas, session-bounded turns.

Real processes throughout: the action server, Rasa servers with the trained model and the SQL
tracker store (PostgreSQL, and the embedded SQLite default), Redis ticket locks, and the API.
"""

from __future__ import annotations

import re
import sqlite3
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from conversation_api.settings import Settings
from tests.conftest import TokenFactory, auth
from tests.e2e.test_business_dialogues import Customer, open_weekday, rows
from tests.support.database import migrate, sqlite_settings
from tests.support.processes import Server
from tests.support.stack import RASA_TOKEN, BotStack, api_server, bot_stack

pytestmark = pytest.mark.e2e

REDIS_URL = "redis://127.0.0.1:6379/0"


@pytest.fixture(scope="module")
def replicated_settings(stack_settings: Settings) -> Settings:
    return stack_settings.model_copy(update={"redis_url": REDIS_URL})


@pytest.fixture(scope="module")
def replicated_bot(replicated_settings: Settings) -> Iterator[BotStack]:
    """Two Rasa replicas sharing the PostgreSQL tracker store and the Redis lock store."""
    with bot_stack(replicated_settings, replicas=2) as stack:
        yield stack


@pytest.fixture(scope="module")
def replicated_api(replicated_settings: Settings, replicated_bot: BotStack) -> Iterator[httpx.Client]:
    with (
        api_server(replicated_settings, replicated_bot.rasa_urls) as server,
        httpx.Client(base_url=server.url, timeout=30) as client,
    ):
        yield client


def book_until_the_name_question(customer: Customer, hour: int) -> None:
    assert "Which day" in customer.say("I'd like to book a haircut")
    day = open_weekday()
    assert "What time" in customer.say(f"{day.day}/{day.month}")
    assert "name" in customer.say(f"{hour - 12}pm").lower()


def finish_booking(customer: Customer, hour: int) -> str:
    # After a lost tracker the bot took the name for a profile update ("Done, your name is now …").
    asked = customer.say("Alice Smith")
    assert "phone" in asked.lower() and "your name is now" not in asked, asked
    confirm = customer.say("07700 900123")
    assert "Shall I book a haircut" in confirm and f"{hour}:00" in confirm, confirm
    booked = customer.say("yes")
    assert "You're booked" in booked, booked
    return booked


def replica_counts(api: httpx.Client) -> dict[str, float]:
    """reviewbot_bot_replica_requests_total{outcome="ok"} by replica URL."""
    counts: dict[str, float] = {}
    pattern = r'reviewbot_bot_replica_requests_total\{outcome="ok",replica="([^"]+)"\} ([\d.e+]+)'
    for url, value in re.findall(pattern, api.get("/metrics").text):
        counts[url] = float(value)
    return counts


def test_rasa_killed_mid_booking_form_continues_after_restart_on_postgresql(
    replicated_api: httpx.Client, replicated_bot: BotStack, replicated_settings: Settings, token: TokenFactory
) -> None:
    customers = [Customer(replicated_api, token, f"e2e-durable-pg-{i}") for i in range(3)]
    hours = [14, 15, 16]  # one free slot each
    for customer, hour in zip(customers, hours, strict=True):
        customer.say("hi")
        book_until_the_name_question(customer, hour)

    for server in replicated_bot.rasas:  # kill -9 every replica: nothing of the dialogue is in memory anywhere
        server.kill()
    with ThreadPoolExecutor(max_workers=2) as pool:
        list(pool.map(replicated_bot.restart_rasa, range(len(replicated_bot.rasas))))

    for customer, hour in zip(customers, hours, strict=True):
        booked = finish_booking(customer, hour)
        [(appointment_id, status)] = rows(
            replicated_settings,
            "SELECT id, status FROM biz_appointments WHERE customer_id = %s",
            customer.user_id,
        )
        assert appointment_id in booked and status == "booked"
    # The dialogue state was in the shared database all along.
    [(stored,)] = rows(
        replicated_settings,
        "SELECT count(*) FROM rasa_tracker_events WHERE sender_id = %s",
        customers[0].conversation_id,
    )
    assert stored > 10


def test_a_booking_form_alternating_between_two_replicas(
    replicated_api: httpx.Client, replicated_bot: BotStack, token: TokenFactory
) -> None:
    before = replica_counts(replicated_api)
    customer = Customer(replicated_api, token, "e2e-replicas-form")
    customer.say("hello")
    book_until_the_name_question(customer, 17)
    finish_booking(customer, 17)
    after = replica_counts(replicated_api)
    served = [after.get(server.url, 0) - before.get(server.url, 0) for server in replicated_bot.rasas]
    # Seven turns, round-robin: every other step of the form on the other process.
    assert sorted(served) == [3, 4], served


def test_concurrent_messages_to_one_conversation_alternate_replicas_and_stay_in_order(
    replicated_api: httpx.Client, replicated_bot: BotStack, token: TokenFactory
) -> None:
    user, bearer = "e2e-replicas-order", token("e2e-replicas-order")
    first = replicated_api.post(
        "/api/v1/messages", headers=auth(bearer), json={"conversation_id": "", "user_id": user, "message": "hello"}
    ).json()
    cid = first["conversation_id"]
    texts = ["hello", "where are you located", "thanks!", "what services do you offer"] * 3
    replies: dict[str, set[str]] = {text: set() for text in texts}

    def post(text: str) -> None:
        response = replicated_api.post(
            "/api/v1/messages", headers=auth(bearer), json={"conversation_id": cid, "user_id": user, "message": text}
        )
        assert response.status_code == 200, response.text
        replies[text].add(response.json()["message"])

    before = replica_counts(replicated_api)
    with ThreadPoolExecutor(max_workers=6) as pool:
        list(pool.map(post, texts))
    after = replica_counts(replicated_api)
    served = [after.get(server.url, 0) - before.get(server.url, 0) for server in replicated_bot.rasas]
    assert served == [6, 6], served

    history = replicated_api.get(f"/api/v1/user/{user}/messages/{cid}", headers=auth(bearer)).json()["messages"]
    exchanges: list[tuple[str, list[str]]] = []
    for message in history:
        if message["sender"] == "user":
            exchanges.append((message["text"], []))
        else:
            exchanges[-1][1].append(message["text"])
    exchanges = exchanges[1:]  # after the opening hello
    assert sorted(text for text, _ in exchanges) == sorted(texts)
    assert all(not replies[a] & replies[b] for a in replies for b in replies if a != b)  # replies tell them apart
    for asked, answered in exchanges:
        # Each reply stands right after its own message, whichever replica produced it.
        assert "\n".join(answered) in replies[asked], (asked, answered)


def test_a_replica_killed_under_load_loses_no_message(
    replicated_api: httpx.Client, replicated_bot: BotStack, token: TokenFactory
) -> None:
    users = [f"e2e-replica-kill-{i}" for i in range(4)]
    conversations: dict[str, str] = {}
    for user in users:
        body = replicated_api.post(
            "/api/v1/messages",
            headers=auth(token(user)),
            json={"conversation_id": "", "user_id": user, "message": "hi"},
        ).json()
        conversations[user] = body["conversation_id"]
    outcomes: list[tuple[str, int, dict]] = []
    lock = threading.Lock()
    killed = threading.Event()

    def chat(user: str) -> None:
        for i in range(12):
            if i == 4 and user == users[0]:
                replicated_bot.rasas[1].kill()
                killed.set()
            response = replicated_api.post(
                "/api/v1/messages",
                headers=auth(token(user)),
                json={"conversation_id": conversations[user], "user_id": user, "message": f"thanks! {i}"},
            )
            with lock:
                outcomes.append((user, response.status_code, response.json()))

    with ThreadPoolExecutor(max_workers=len(users)) as pool:
        list(pool.map(chat, users))
    assert killed.is_set()

    statuses = [status for _, status, _ in outcomes]
    assert set(statuses) <= {200, 503}
    # A turn in flight on the killed replica gets the clear 503, with the message kept.
    for _, status, body in outcomes:
        if status == 503:
            assert body["code"] == "bot_unavailable" and body["message_id"]
    assert statuses.count(503) <= len(users), statuses
    # Every message is stored, once, whatever the answer was.
    for user in users:
        history = replicated_api.get(
            f"/api/v1/user/{user}/messages/{conversations[user]}", headers=auth(token(user)), params={"limit": 100}
        ).json()["messages"]
        sent = [m["text"] for m in history if m["sender"] == "user"]
        assert sent == ["hi"] + [f"thanks! {i}" for i in range(12)]
    # After the kill the surviving replica served the rest.
    ready = replicated_api.get("/readyz").json()
    assert ready["status"] == "ready" and ready["checks"]["bot"] == "ok"
    assert ready["bot_replicas"][replicated_bot.rasas[1].url].startswith("error")


def test_a_turn_loads_only_the_current_session(replicated_bot: BotStack, replicated_settings: Settings) -> None:
    sender = "e2e-sessions-bounded"
    script = ["hello", "where are you located", "thanks!", "what services do you offer", "how much is a manicure"]
    loaded: list[list[int]] = []
    with httpx.Client(base_url=replicated_bot.rasa_url, headers={"Authorization": f"Bearer {RASA_TOKEN}"}) as rasa:

        def turn(text: str) -> dict:
            response = rasa.post("/webhooks/reviewbot/webhook", json={"sender": sender, "message": text}, timeout=30)
            assert response.status_code == 200, response.text
            return response.json()

        for session in range(4):
            if session:
                turn("/session_start")  # what a session that expired does, without waiting an hour
            loaded.append([turn(text)["tracker_events"] for text in script])
        # One long session: the turn works on a window of it, however long it gets.
        long_session = [turn(script[i % len(script)])["tracker_events"] for i in range(30)]
    [(stored,)] = rows(replicated_settings, "SELECT count(*) FROM rasa_tracker_events WHERE sender_id = %s", sender)
    # Every session's turns work on that session's events only: the fourth costs what the second did,
    # while the database holds all four.
    assert loaded[3] == loaded[2] == loaded[1], loaded
    assert loaded[3][-1] * 3 < stored
    assert max(long_session) <= 40 + 15 and max(long_session[-10:]) <= max(long_session[:15]) + 5, long_session


@pytest.fixture(scope="module")
def sqlite_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Settings, BotStack, httpx.Client, Path]]:
    """The embedded default: API, actions and Rasa on SQLite files, in-process locks, no Redis."""
    path = tmp_path_factory.mktemp("sqlite-stack") / "reviewbot.db"
    settings = sqlite_settings(path)
    migrate(settings)
    with (
        bot_stack(settings) as stack,
        api_server(settings, stack.rasa_url) as server,
        httpx.Client(base_url=server.url, timeout=30) as client,
    ):
        yield settings, stack, client, path


def test_rasa_killed_mid_booking_form_continues_after_restart_on_sqlite(
    sqlite_stack: tuple[Settings, BotStack, httpx.Client, Path], token: TokenFactory
) -> None:
    _, stack, api, path = sqlite_stack
    customer = Customer(api, token, "e2e-durable-sqlite")
    customer.say("hi")
    book_until_the_name_question(customer, 14)

    rasa: Server = stack.rasa
    rasa.kill()
    stack.restart_rasa(0)

    booked = finish_booking(customer, 14)
    tracker_file = path.with_name("reviewbot-tracker.db")
    with sqlite3.connect(path) as business, sqlite3.connect(tracker_file) as tracker:
        [(appointment_id, status)] = business.execute(
            "SELECT id, status FROM biz_appointments WHERE customer_id = ?", (customer.user_id,)
        ).fetchall()
        [(stored,)] = tracker.execute(
            "SELECT count(*) FROM rasa_tracker_events WHERE sender_id = ?", (customer.conversation_id,)
        ).fetchall()
    assert appointment_id in booked and status == "booked"
    assert stored > 10
