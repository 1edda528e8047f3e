"""Fault drills on the real stack: nothing a client sent is lost, nothing is done twice.

One stack for the module: the action server and Rasa (trained model, tracker store in the
module's PostgreSQL schema, lock store on a Redis of the module's own), and the API as
`uvicorn --workers 2` reaching PostgreSQL through a TCP proxy the drills can cut. Each drill
puts load on it, breaks one dependency, and then checks what the database holds:

- every message a client sent is stored exactly once and answered exactly once;
- every client got a reply or a JSON 503 with its `code`, `Retry-After`, and the stored
  message's `message_id` when it had one; retrying with the same `client_message_id`
  after `Retry-After` ends in a 200;
- the stack recovers by itself: a new message after the fault gets a 200 reply.

Each drill prints its figures (run with -s to see them); they are in its assertion messages too.
"""

from __future__ import annotations

import json
import os
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest

from conversation_api.settings import Settings
from tests.conftest import TokenFactory, auth
from tests.e2e.test_business_dialogues import Customer, open_weekday, rows
from tests.support.database import POSTGRES_URL, drop_schema, migrate, new_schema_name, postgres_settings
from tests.support.processes import Server
from tests.support.redis_process import RedisProcess
from tests.support.stack import BotStack, api_server, bot_stack
from tests.support.tcp_proxy import TcpProxy

pytestmark = pytest.mark.e2e

# Messages the bot answers from its FAQ, without opening a form or handing over.
TEXTS = ["hello", "where are you located", "thanks!", "what services do you offer"]


@dataclass
class Stack:
    settings: Settings  # the module's schema, reached directly (the test's own queries)
    bot: BotStack
    api: Server
    client: httpx.Client
    redis: RedisProcess
    db_proxy: TcpProxy


@pytest.fixture(scope="module")
def stack() -> Iterator[Stack]:
    schema = new_schema_name()
    database = urlsplit(POSTGRES_URL)
    redis = RedisProcess().start()
    proxy = TcpProxy(database.hostname or "127.0.0.1", database.port or 5432).start()
    try:
        settings = postgres_settings(schema, redis_url=redis.url)
        migrate(settings)
        # Only the API goes through the proxy: the drill takes the database away from the API alone.
        credentials, _, _ = database.netloc.rpartition("@")
        netloc = f"{credentials}@{proxy.host}:{proxy.port}" if credentials else f"{proxy.host}:{proxy.port}"
        proxied = settings.model_copy(update={"database_url": database._replace(netloc=netloc).geturl()})
        with (
            bot_stack(settings) as bot,
            api_server(proxied, bot.rasa_url, workers=2) as api,
            httpx.Client(base_url=api.url, timeout=30) as client,
        ):
            wait_for_workers(api, 2)
            yield Stack(settings, bot, api, client, redis, proxy)
    finally:
        proxy.stop()
        redis.stop()
        drop_schema(schema)


def wait_for_workers(api: Server, workers: int, timeout: float = 60) -> None:
    """Every uvicorn worker has run its lifespan (the first /healthz may come from one alone)."""
    started = f"Started parent process [{api.process.pid}]"
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        log = api.log_path.read_text(errors="replace")  # the log may hold earlier servers' lines
        if log[log.rfind(started) :].count("Application startup complete") >= workers:
            return
        time.sleep(0.2)
    raise AssertionError(f"{workers} API workers did not start:\n{api.log_tail()}")


# --- clients that retry, and what they saw ---------------------------------------------------


@dataclass
class Attempt:
    user: str
    key: str
    started: float
    ended: float
    status: int | None  # None: no HTTP answer at all
    body: dict[str, Any] | None
    retry_after: str | None
    raw: str
    wall: tuple[float, float] = (0.0, 0.0)  # time.time() at start and end, to compare with stored rows


@dataclass
class Drill:
    name: str
    stack: Stack
    token: TokenFactory
    started: float = field(default_factory=time.monotonic)
    attempts: list[Attempt] = field(default_factory=list)
    conversations: dict[str, str] = field(default_factory=dict)
    sent: list[tuple[str, str]] = field(default_factory=list)  # (user, client_message_id), in order
    notes: dict[str, object] = field(default_factory=dict)
    in_flight: int = 0  # posts sent and not answered yet
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def post(self, user: str, key: str, text: str) -> Attempt:
        started, wall_started = time.monotonic(), time.time()
        body: dict[str, Any] | None = None
        with self._lock:
            self.in_flight += 1
        try:
            response = self.stack.client.post(
                "/api/v1/messages",
                headers=auth(self.token(user)),
                json={
                    "conversation_id": self.conversations.get(user, ""),
                    "user_id": user,
                    "message": text,
                    "client_message_id": key,
                },
            )
            status, raw, retry_after = response.status_code, response.text, response.headers.get("Retry-After")
            if response.headers.get("content-type", "").startswith("application/json"):
                body = response.json()
        except httpx.HTTPError as exc:
            status, raw, retry_after = None, f"{type(exc).__name__}: {exc}", None
        attempt = Attempt(
            user, key, started, time.monotonic(), status, body, retry_after, raw, (wall_started, time.time())
        )
        with self._lock:
            self.in_flight -= 1
            self.attempts.append(attempt)
            if status == 200 and body and user not in self.conversations:
                self.conversations[user] = body["conversation_id"]
        return attempt

    def wait_for_turns_in_flight(self, count: int, timeout: float = 5) -> None:
        """Until `count` posts are being answered: a fault then lands inside turns, not between them."""
        deadline = time.monotonic() + timeout
        while self.in_flight < count and time.monotonic() < deadline:
            time.sleep(0.005)

    def send_until_answered(self, user: str, key: str, text: str, deadline: float) -> Attempt:
        """Post; after a 503 wait what Retry-After says and post the same message id again."""
        with self._lock:
            self.sent.append((user, key))
        while True:
            attempt = self.post(user, key, text)
            if attempt.status == 200 or time.monotonic() >= deadline:
                return attempt
            if attempt.status is not None and attempt.status != 503:
                return attempt  # not a retryable answer; the checks report it
            # No answer at all: safe to send again at once, the client message id makes the POST idempotent.
            wait = 0.1 if attempt.status is None else float(attempt.retry_after or 1.0)
            time.sleep(max(0.0, min(wait, deadline - time.monotonic())))

    def open_conversations(self, users: list[str]) -> None:
        for user in users:
            answer = self.send_until_answered(user, f"{self.name}-{user}-open", "hi", time.monotonic() + 30)
            assert answer.status == 200, answer.raw

    def chat(self, users: list[str], *, messages: int, interval: float, timeout: float) -> None:
        """Each user sends `messages` messages, one every `interval` seconds (a retry holds up that user's
        next message, as a client sending in order would), all within `timeout` seconds."""
        deadline = time.monotonic() + timeout

        def one(user: str) -> None:
            start = time.monotonic()
            for i in range(messages):
                time.sleep(max(0.0, start + i * interval - time.monotonic()))
                self.send_until_answered(user, f"{self.name}-{user}-{i}", TEXTS[i % len(TEXTS)], deadline)

        with ThreadPoolExecutor(max_workers=len(users)) as pool:
            futures = [pool.submit(one, user) for user in users]
            for future in futures:
                future.result(timeout=timeout + 60)

    # figures

    def codes(self) -> Counter[str]:
        counted: Counter[str] = Counter()
        for a in self.attempts:
            if a.status == 200:
                counted["200"] += 1
            elif a.status is None:
                counted["keep-alive race" if keep_alive_race(a) else "no answer"] += 1
            else:
                code = (a.body or {}).get("code", "not json")
                counted[f"{a.status} {code}"] += 1
        return counted

    def retries(self) -> int:
        return len(self.attempts) - len(self.sent)

    def first_200_after(self, moment: float) -> float | None:
        """Seconds from `moment` to the first 200 of a post that started after it."""
        ends = [a.ended for a in self.attempts if a.status == 200 and a.started >= moment]
        return round(min(ends) - moment, 2) if ends else None

    def summary(self, stored: int | None = None) -> str:
        figures = {
            "sent": len(self.sent),
            "stored": stored,
            "posts": len(self.attempts),
            "retries": self.retries(),
            "answers": dict(sorted(self.codes().items())),
            **self.notes,
            "took_s": round(time.monotonic() - self.started, 1),
        }
        return f"[drill {self.name}] " + " ".join(f"{k}={v}" for k, v in figures.items())


def final_answers(drill: Drill) -> dict[tuple[str, str], Attempt]:
    answers: dict[tuple[str, str], Attempt] = {}
    for attempt in drill.attempts:
        answers[(attempt.user, attempt.key)] = attempt  # attempts are appended in order
    return answers


def check_every_answer_is_clear(drill: Drill, codes: set[str]) -> None:
    """Each answer a 200 or a JSON 503 with one of `codes` and Retry-After, never a plain-text 500.
    (The message ids the 503s carry are checked against the stored rows afterwards.)"""
    summary = drill.summary()
    for a in drill.attempts:
        assert "Internal Server Error" not in a.raw, (summary, a)
        if a.status is None and keep_alive_race(a):
            continue
        assert a.status in (200, 503), (summary, a)
        assert a.body is not None, (summary, a)
        if a.status == 503:
            assert a.body.get("code") in codes, (summary, a)
            assert a.retry_after is not None and int(a.retry_after) > 0, (summary, a)


def keep_alive_race(a: Attempt) -> bool:
    """A request sent on a pooled connection just as the server closed it for being idle: uvicorn closes
    keep-alive connections after 5 s (--timeout-keep-alive), exactly the Retry-After a 503 asks clients to
    wait, so a client that obeys it may reuse a connection as the API drops it. The request never reached
    the app; the stored rows show no trace of it."""
    return a.raw.startswith("RemoteProtocolError: Server disconnected without sending a response") and (
        a.ended - a.started < 0.5
    )


def check_stored_once_and_answered_once(drill: Drill) -> int:
    """Every message sent is one row, answered by one bot turn, the one its 200 (and any 503) named.

    Returns the number of stored user messages."""
    users = sorted({user for user, _ in drill.sent})
    stored = rows(
        drill.stack.settings,
        "SELECT m.id, c.user_id, m.external_id, m.turn_state FROM message m JOIN conversation c"
        " ON c.id = m.conversation_id WHERE c.user_id = ANY(%s) AND m.sender = 'user'",
        users,
    )
    replies = dict(
        rows(
            drill.stack.settings,
            "SELECT m.reply_to, count(*) FROM message m JOIN conversation c ON c.id = m.conversation_id"
            " WHERE c.user_id = ANY(%s) AND m.sender = 'bot' GROUP BY m.reply_to",
            users,
        )
    )
    summary = drill.summary(stored=len(stored))
    by_key = Counter(external_id for _, _, external_id, _ in stored)
    assert len(stored) == len(drill.sent), summary
    answers = final_answers(drill)
    for user, key in drill.sent:
        assert by_key[f"{user}/{key}"] == 1, (summary, user, key)
        [(message_id, state)] = [(i, s) for i, _, e, s in stored if e == f"{user}/{key}"]
        final = answers[(user, key)]
        assert final.status == 200 and final.body is not None, (summary, final)
        assert final.body["message_id"] == message_id, (summary, final)
        assert state == "answered", (summary, user, key, state)
        # One bot turn: as many reply rows as the answer had messages, not twice as many.
        assert replies.get(message_id, 0) == len(final.body["messages"]) >= 1, (summary, final, replies.get(message_id))
        for a in drill.attempts:
            if (a.user, a.key) == (user, key) and a.body and "message_id" in a.body:
                assert a.body["message_id"] == message_id, (summary, a)
    return len(stored)


def check_recovered(drill: Drill, user: str) -> float:
    """A new message after the fault gets a 200 reply, with nothing restarted by hand; how long it took."""
    started = time.monotonic()
    answer = drill.post(user, f"{drill.name}-{user}-after", "where are you located")
    assert answer.status == 200 and answer.body and answer.body["messages"], (drill.summary(), answer)
    drill.sent.append((user, answer.key))
    return round(time.monotonic() - started, 2)


class ReadinessProbe:
    """Polls /readyz in the background, as a load balancer would, and keeps what it saw."""

    def __init__(self, client: httpx.Client, every: float = 0.25) -> None:
        self.client, self.every = client, every
        # (started, ended, status, body), one probe at a time
        self.seen: list[tuple[float, float, int | None, dict[str, Any]]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> ReadinessProbe:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join(timeout=10)

    def _run(self) -> None:
        while not self._stop.is_set():
            started = time.monotonic()
            try:
                response = self.client.get("/readyz", timeout=5)
                self.seen.append((started, time.monotonic(), response.status_code, response.json()))
            except (httpx.HTTPError, ValueError) as exc:
                self.seen.append((started, time.monotonic(), None, {"error": type(exc).__name__}))
            self._stop.wait(self.every)

    def states(self, pick: Callable[[int | None, dict[str, Any]], str]) -> list[str]:
        """What `pick` makes of each probe, with repeats collapsed: e.g. ["ok", "error", "ok"]."""
        collapsed: list[str] = []
        for _, _, status, body in self.seen:
            state = pick(status, body)
            if not collapsed or collapsed[-1] != state:
                collapsed.append(state)
        return collapsed

    def first(self, after: float, pick: Callable[[int | None, dict[str, Any]], bool]) -> float | None:
        """Seconds from `after` to the answer of the first probe sent after it for which `pick` holds."""
        for started, ended, status, body in self.seen:
            if started >= after and pick(status, body):
                return round(ended - after, 2)
        return None


def stored_during_a_503_without_its_id(drill: Drill) -> list[Attempt]:
    """503s that did not name the message although the same request had stored it."""
    users = sorted({user for user, _ in drill.sent})
    created = {
        external_id: created_at.timestamp()
        for external_id, created_at in rows(
            drill.stack.settings,
            "SELECT m.external_id, m.created_at FROM message m JOIN conversation c ON c.id = m.conversation_id"
            " WHERE c.user_id = ANY(%s) AND m.sender = 'user'",
            users,
        )
    }
    return [
        a
        for a in drill.attempts
        if a.status == 503
        and a.body is not None
        and "message_id" not in a.body
        and a.wall[0] <= created.get(f"{a.user}/{a.key}", 0.0) <= a.wall[1]
    ]


def report(drill: Drill, stored: int) -> None:
    print("\n" + drill.summary(stored=stored))


# --- the drills ------------------------------------------------------------------------------


def test_two_api_workers_keep_one_conversation_in_order(stack: Stack, token: TokenFactory) -> None:
    drill = Drill("workers", stack, token)
    user = "drill-workers"
    workers = worker_processes(stack.api.process.pid)
    assert len(workers) == 2, workers
    drill.open_conversations([user])
    cid = drill.conversations[user]
    texts = [TEXTS[i % len(TEXTS)] for i in range(20)]
    # 20 posts at once, spread over the two worker processes by the kernel.
    with ThreadPoolExecutor(max_workers=20) as pool:
        answers = list(
            pool.map(
                lambda i: drill.send_until_answered(user, f"workers-{i}", texts[i], time.monotonic() + 120),
                range(20),
            )
        )
    check_every_answer_is_clear(drill, codes=set())  # no 503 at all: the lock queues them
    history = rows(
        stack.settings,
        "SELECT id, sender, text, reply_to FROM message WHERE conversation_id = %s ORDER BY id",
        cid,
    )
    # Strictly alternating: each user message, then its own replies, then the next user message.
    current, answered = None, True
    for message_id, sender, _, reply_to in history:
        if sender == "user":
            assert answered, (drill.summary(), current, history)
            current, answered = message_id, False
        else:
            assert reply_to == current, (drill.summary(), message_id, history)
            answered = True
    assert answered, history
    # Each response answers its own message: the text it posted, the replies stored for it.
    by_id = {message_id: (text, reply_to) for message_id, _, text, reply_to in history}
    for i, answer in enumerate(answers):
        assert answer.body is not None
        message_id = answer.body["message_id"]
        assert by_id[message_id][0] == texts[i], (i, answer)
        stored_replies = [text for text, reply_to in by_id.values() if reply_to == message_id]
        assert stored_replies == [m["text"] for m in answer.body["messages"]], (i, answer, stored_replies)
    # Both workers served: each holds some of the client's keep-alive connections.
    served = client_connections(workers, urlsplit(stack.api.url).port or 0)
    drill.notes["connections_per_worker"] = sorted(served.values())
    assert len(served) == 2 and all(served.values()), (drill.summary(), served)
    drill.notes["recover_s"] = check_recovered(drill, user)
    report(drill, check_stored_once_and_answered_once(drill))


def client_connections(pids: list[int], port: int) -> dict[int, int]:
    """How many established TCP connections on local `port` each process holds (from /proc)."""
    inodes: set[str] = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with open(table) as lines:
            for line in list(lines)[1:]:
                fields = line.split()
                if int(fields[1].rsplit(":", 1)[1], 16) == port and fields[3] == "01":  # 01: ESTABLISHED
                    inodes.add(fields[9])
    held: dict[int, int] = {}
    for pid in pids:
        fds = os.listdir(f"/proc/{pid}/fd")
        links = [os.readlink(f"/proc/{pid}/fd/{fd}") for fd in fds if os.path.exists(f"/proc/{pid}/fd/{fd}")]
        held[pid] = sum(link.startswith("socket:[") and link[8:-1] in inodes for link in links)
    return held


def worker_processes(pid: int) -> list[int]:
    """The uvicorn workers under the master `pid` (not multiprocessing's resource tracker beside them)."""
    with open(f"/proc/{pid}/task/{pid}/children") as children:
        pids = [int(child) for child in children.read().split()]
    workers = []
    for child in pids:
        with open(f"/proc/{child}/cmdline", "rb") as cmdline:
            if b"resource_tracker" not in cmdline.read():
                workers.append(child)
    return workers


def test_a_booking_confirmed_five_times_at_once_books_once(stack: Stack, token: TokenFactory) -> None:
    drill = Drill("idempotency", stack, token)
    user = "drill-booking"
    customer = Customer(stack.client, token, user)
    customer.say("hi")
    assert "Which day" in customer.say("I'd like to book a haircut")
    day = open_weekday()
    assert "What time" in customer.say(f"{day.day}/{day.month}")
    assert "name" in customer.say("11am").lower()
    assert "phone" in customer.say("Anna Smith").lower()
    assert "Shall I book a haircut" in customer.say("07700 900123")
    # "yes" is the message whose turn runs the booking action: the client sends it five times at once.
    drill.conversations[user] = customer.conversation_id
    with ThreadPoolExecutor(max_workers=5) as pool:
        answers = list(pool.map(lambda _: drill.post(user, "confirm-1", "yes"), range(5)))
    drill.sent.append((user, "confirm-1"))
    check_every_answer_is_clear(drill, codes=set())
    assert all(a.status == 200 and a.body for a in answers), answers
    bodies = [a.body for a in answers if a.body]
    [message_id] = {b["message_id"] for b in bodies}
    [text] = {b["message"] for b in bodies}
    assert "You're booked" in text, text
    assert sorted(b["replayed"] for b in bodies) == [False, True, True, True, True], bodies

    [(stored,)] = rows(
        stack.settings,
        "SELECT count(*) FROM message WHERE conversation_id = %s AND sender = 'user' AND text = 'yes'",
        customer.conversation_id,
    )
    [(bot_rows,)] = rows(stack.settings, "SELECT count(*) FROM message WHERE reply_to = %s", message_id)
    appointments = rows(stack.settings, "SELECT id, status FROM biz_appointments WHERE customer_id = %s", user)
    # Rasa saw the message once: one user event carrying its message id in the tracker store.
    events = [
        json.loads(data)
        for (data,) in rows(
            stack.settings,
            "SELECT data FROM rasa_tracker_events WHERE sender_id = %s AND type_name = 'user'",
            customer.conversation_id,
        )
    ]
    turns = [e for e in events if (e.get("metadata") or {}).get("message_id") == message_id]
    drill.notes.update(bot_turns=len(turns), appointments=len(appointments), replayed=4)
    summary = drill.summary(stored=stored)
    assert stored == 1, summary
    assert bot_rows == len(bodies[0]["messages"]), summary
    assert len(turns) == 1, summary
    assert len(appointments) == 1 and appointments[0][1] == "booked" and appointments[0][0] in text, summary
    report(drill, stored)
    print(f"[drill {drill.name}] recover_s={check_recovered(drill, user)}")


def test_rasa_killed_under_load_and_restarted_loses_and_doubles_nothing(stack: Stack, token: TokenFactory) -> None:
    drill = Drill("rasa-kill", stack, token)
    users = [f"drill-rasa-{i}" for i in range(4)]
    drill.open_conversations(users)
    timings: dict[str, float] = {}

    def kill_and_restart() -> None:
        time.sleep(1.5)  # under load: every user has a message or two answered by then
        timings["killed"] = time.monotonic()
        stack.bot.rasa.kill()
        stack.bot.restart_rasa(0)  # as the supervisor would; the API is not touched
        timings["restarted"] = time.monotonic()

    with ThreadPoolExecutor(max_workers=1) as pool:
        fault = pool.submit(kill_and_restart)
        drill.chat(users, messages=8, interval=0.5, timeout=120)
        fault.result(timeout=180)
    drill.notes["rasa_restart_s"] = round(timings["restarted"] - timings["killed"], 1)
    drill.notes["first_200_after_kill_s"] = drill.first_200_after(timings["killed"])
    drill.notes["first_200_after_restart_s"] = drill.first_200_after(timings["restarted"])
    check_every_answer_is_clear(drill, codes={"bot_unavailable"})
    assert drill.codes()["503 bot_unavailable"] >= 1, drill.summary()  # the kill did land under load
    drill.notes["recover_s"] = check_recovered(drill, users[0])
    stored = check_stored_once_and_answered_once(drill)
    report(drill, stored)


def test_postgresql_unreachable_for_seconds_under_load(stack: Stack, token: TokenFactory) -> None:
    drill = Drill("postgres-cut", stack, token)
    users = [f"drill-pg-{i}" for i in range(4)]
    drill.open_conversations(users)
    timings: dict[str, float] = {}

    def outage() -> None:
        time.sleep(1.5)
        drill.wait_for_turns_in_flight(3)
        time.sleep(0.05)  # their messages stored, the bot working on them
        with stack.db_proxy.outage():
            timings["cut"] = time.monotonic()
            time.sleep(3)
        timings["back"] = time.monotonic()

    with ReadinessProbe(stack.client) as probe, ThreadPoolExecutor(max_workers=1) as pool:
        fault = pool.submit(outage)
        # Closer than the other drills: the cut must land on turns in flight, not only between them.
        drill.chat(users, messages=12, interval=0.25, timeout=90)
        fault.result(timeout=30)
        time.sleep(1)  # a last probe or two after the load
    drill.notes["connections_cut"] = stack.db_proxy.connections_cut
    drill.notes["first_200_after_back_s"] = drill.first_200_after(timings["back"])
    drill.notes["ready_503_after_cut_s"] = probe.first(timings["cut"], lambda status, _: status == 503)
    drill.notes["ready_200_after_back_s"] = probe.first(timings["back"], lambda status, _: status == 200)
    with_id = [a for a in drill.attempts if a.status == 503 and a.body and "message_id" in a.body]
    drill.notes["503_with_message_id"] = len(with_id)
    silent = stored_during_a_503_without_its_id(drill)
    drill.notes["503_stored_without_id"] = len(silent)
    check_every_answer_is_clear(drill, codes={"database_unavailable"})
    assert not silent, (drill.summary(), silent)
    assert drill.codes()["503 database_unavailable"] >= 1, drill.summary()
    readiness = probe.states(lambda status, _: str(status))
    assert readiness == ["200", "503", "200"], (drill.summary(), readiness)
    drill.notes["recover_s"] = check_recovered(drill, users[0])
    stored = check_stored_once_and_answered_once(drill)
    report(drill, stored)


def test_redis_killed_under_load(stack: Stack, token: TokenFactory) -> None:
    drill = Drill("redis-kill", stack, token)
    users = [f"drill-redis-{i}" for i in range(4)]
    drill.open_conversations(users)
    timings: dict[str, float] = {}

    def outage() -> None:
        time.sleep(1.5)
        stack.redis.kill()
        timings["killed"] = time.monotonic()  # dead, its port closed
        time.sleep(3)
        timings["restarting"] = time.monotonic()  # from here a probe may find it up again
        stack.redis.start()  # same port, empty: as after a crash without persistence
        timings["back"] = time.monotonic()

    with ReadinessProbe(stack.client) as probe, ThreadPoolExecutor(max_workers=1) as pool:
        fault = pool.submit(outage)
        drill.chat(users, messages=8, interval=0.5, timeout=90)
        fault.result(timeout=30)
        time.sleep(1)
    drill.notes["first_200_after_back_s"] = drill.first_200_after(timings["back"])
    drill.notes["redis_error_after_kill_s"] = probe.first(
        timings["killed"], lambda _, body: str(body.get("checks", {}).get("redis", "")).startswith("error")
    )
    drill.notes["redis_ok_after_back_s"] = probe.first(
        timings["back"], lambda _, body: body.get("checks", {}).get("redis") == "ok"
    )
    check_every_answer_is_clear(drill, codes={"bot_unavailable"})
    # A probe sent before the kill may come back after it (the bot's check is the slow part), so by send time.
    down = [body for sent, ended, _, body in probe.seen if sent >= timings["killed"] and ended <= timings["restarting"]]
    after = [body for sent, _, _, body in probe.seen if sent >= timings["back"]]
    redis_states = probe.states(lambda _, body: str(body.get("checks", {}).get("redis", "missing"))[:5])
    # Stale connections a worker kept from before the kill fail once each after Redis is back: see
    # test_readiness_reports_redis_ok_once_it_is_back. Counted here; that test holds the defect.
    drill.notes["redis_errors_after_back"] = sum(not _redis_ok(body) for body in after)
    summary = drill.summary()
    assert down and not any(_redis_ok(body) for body in down), (summary, redis_states)
    assert after and _redis_ok(after[-1]) and redis_states[0] == "ok", (summary, redis_states)
    # Readiness is gated by the database only: Redis away never took the API out of the balancer.
    assert {status for _, _, status, _ in probe.seen} == {200}, (summary, probe.seen)
    drill.notes["recover_s"] = check_recovered(drill, users[0])
    stored = check_stored_once_and_answered_once(drill)
    report(drill, stored)


def _redis_ok(body: dict[str, Any]) -> bool:
    return bool(body.get("checks", {}).get("redis") == "ok")


def test_readiness_reports_redis_ok_once_it_is_back(stack: Stack) -> None:
    def probe() -> dict[str, Any]:
        # A new connection each time, so the kernel spreads the probes over both workers.
        with httpx.Client(base_url=stack.api.url, timeout=10) as fresh:
            body: dict[str, Any] = fresh.get("/readyz").json()
            return body

    for _ in range(10):  # every worker has pinged Redis: each holds a pooled connection
        assert _redis_ok(probe())
    stack.redis.kill()
    stack.redis.start()
    states = [probe()["checks"]["redis"] for _ in range(10)]
    assert states == ["ok"] * 10, states
