"""The Rasa channel client against small real HTTP servers that misbehave on purpose."""

import asyncio
import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from connectors.rasa.client import RasaChannelBot
from conversation_api.bot import BotUnavailable
from tests.support.processes import free_port

TURN = {
    "messages": [
        {"recipient_id": "c1", "text": "Hello!"},
        {"recipient_id": "c1", "text": "Pick", "buttons": [{"title": "A", "payload": "/a"}]},
    ],
    "intent": "greet",
    "confidence": 0.97,
    "entities": [{"entity": "service", "value": "haircut", "start": 0, "end": 7}],
    "slots": {"handoff_requested": True},
    "events": [{"event": "slot", "name": "handoff_requested", "value": True}],
    "paused": False,
}


class Behaviour:
    status = 200
    body: bytes = json.dumps(TURN).encode()
    delay = 0.0
    seen: list[dict] = []


class Handler(BaseHTTPRequestHandler):
    def log_message(self, *args: object) -> None:
        pass

    def _answer(self) -> None:
        time.sleep(Behaviour.delay)
        self.send_response(Behaviour.status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(Behaviour.body)))
        self.end_headers()
        self.wfile.write(Behaviour.body)

    def do_GET(self) -> None:
        self._answer()

    def do_POST(self) -> None:
        length = int(self.headers["Content-Length"])
        Behaviour.seen.append(
            {"path": self.path, "auth": self.headers.get("Authorization"), "body": json.loads(self.rfile.read(length))}
        )
        self._answer()


@pytest.fixture
def server() -> Iterator[str]:
    Behaviour.status, Behaviour.body, Behaviour.delay, Behaviour.seen = 200, json.dumps(TURN).encode(), 0.0, []
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()


async def test_a_turn_is_sent_with_token_and_parsed(server: str) -> None:
    bot = RasaChannelBot(base_url=server, token="s3cret", timeout=2)
    turn = await bot.send(sender_id="c1", text="hi", metadata={"user_id": "alice"})
    await bot.aclose()
    assert Behaviour.seen == [
        {
            "path": "/webhooks/reviewbot/webhook",
            "auth": "Bearer s3cret",
            "body": {"sender": "c1", "message": "hi", "metadata": {"user_id": "alice"}},
        }
    ]
    assert turn.text == "Hello!\nPick"
    assert turn.messages[1].buttons == [{"title": "A", "payload": "/a"}]
    assert (turn.intent, turn.confidence) == ("greet", 0.97)
    assert turn.entities[0]["value"] == "haircut"
    # Rasa's events arrive translated: the bot asked for a human, giving no reason.
    assert (turn.handoff_reason, turn.workflows) == ("", [])


@pytest.mark.parametrize(("status", "reason"), [(500, "HTTP 500"), (401, "token"), (404, "HTTP 404")])
async def test_error_statuses_become_bot_unavailable(server: str, status: int, reason: str) -> None:
    Behaviour.status = status
    bot = RasaChannelBot(base_url=server, token=None, timeout=2)
    with pytest.raises(BotUnavailable, match=reason):
        await bot.send(sender_id="c1", text="hi", metadata={})
    await bot.aclose()


async def test_unreadable_body_is_bot_unavailable(server: str) -> None:
    Behaviour.body = b"<html>oops</html>"
    bot = RasaChannelBot(base_url=server, token=None, timeout=2)
    with pytest.raises(BotUnavailable, match="could not read"):
        await bot.send(sender_id="c1", text="hi", metadata={})
    await bot.aclose()


async def test_slow_bot_times_out(server: str) -> None:
    Behaviour.delay = 1.0
    bot = RasaChannelBot(base_url=server, token=None, timeout=0.2)
    with pytest.raises(BotUnavailable, match="in time"):
        await bot.send(sender_id="c1", text="hi", metadata={})
    await bot.aclose()


async def test_nothing_listening_is_bot_unavailable() -> None:
    bot = RasaChannelBot(base_url=f"http://127.0.0.1:{free_port()}", token=None, timeout=1)
    with pytest.raises(BotUnavailable, match="unreachable"):
        await bot.send(sender_id="c1", text="hi", metadata={})
    with pytest.raises(BotUnavailable, match="unreachable"):
        await bot.ping()
    await bot.aclose()


async def test_pause_and_resume_append_tracker_events_with_the_api_token(server: str) -> None:
    bot = RasaChannelBot(base_url=server, token="s3cret", timeout=2)
    await bot.pause("c/1")
    await bot.resume("c/1")
    await bot.aclose()
    assert [(s["path"], s["body"]) for s in Behaviour.seen] == [
        ("/conversations/c%2F1/tracker/events?token=s3cret&include_events=NONE", [{"event": "pause"}]),
        (
            "/conversations/c%2F1/tracker/events?token=s3cret&include_events=NONE",
            [
                {"event": "resume"},
                {"event": "slot", "name": "handoff_requested", "value": False},
                {"event": "slot", "name": "handoff_reason", "value": None},
            ],
        ),
    ]


@pytest.mark.parametrize(("status", "reason"), [(401, "token"), (500, "HTTP 500")])
async def test_a_refused_pause_is_bot_unavailable(server: str, status: int, reason: str) -> None:
    Behaviour.status = status
    bot = RasaChannelBot(base_url=server, token="s3cret", timeout=2)
    with pytest.raises(BotUnavailable, match=reason):
        await bot.pause("c1")
    await bot.aclose()


async def test_pause_with_nothing_listening_is_bot_unavailable() -> None:
    bot = RasaChannelBot(base_url=f"http://127.0.0.1:{free_port()}", token=None, timeout=1)
    with pytest.raises(BotUnavailable, match="unreachable"):
        await bot.resume("c1")
    await bot.aclose()


class Replica:
    """A small real server standing for one Rasa replica: counts the turns it served."""

    def __init__(self, name: str) -> None:
        self.name, self.turns, self.status = name, 0, 200
        replica = self

        class ReplicaHandler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                pass

            def _send(self, body: bytes) -> None:
                self.send_response(replica.status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def do_GET(self) -> None:
                self._send(b"{}")

            def do_POST(self) -> None:
                self.rfile.read(int(self.headers["Content-Length"]))
                replica.turns += 1
                self._send(json.dumps({**TURN, "messages": [{"text": replica.name}]}).encode())

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), ReplicaHandler)
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def replicas() -> Iterator[list[Replica]]:
    servers = [Replica("a"), Replica("b")]
    yield servers
    for server in servers:
        server.stop()


async def test_turns_alternate_between_replicas(replicas: list[Replica]) -> None:
    bot = RasaChannelBot(base_url=[r.url for r in replicas], token=None, timeout=2)
    served = [(await bot.send(sender_id="c1", text="hi", metadata={})).text for _ in range(6)]
    await bot.aclose()
    assert served == ["a", "b", "a", "b", "a", "b"]


async def test_a_replica_that_refuses_is_skipped_then_tried_again(replicas: list[Replica]) -> None:
    dead = f"http://127.0.0.1:{free_port()}"
    bot = RasaChannelBot(base_url=[dead, replicas[0].url], token=None, timeout=2, retry_after=0.3)
    served = [(await bot.send(sender_id="c1", text="hi", metadata={})).text for _ in range(6)]
    assert served == ["a"] * 6  # no turn lost to the dead replica
    assert bot.replicas[0].failures == 1  # backing off: tried once, not on every turn
    states = await bot.replica_states()
    assert states[dead].startswith("error") and states[replicas[0].url] == "ok"
    await bot.ping()  # one replica answering is enough
    await asyncio.sleep(0.35)
    await bot.send(sender_id="c1", text="hi", metadata={})
    await bot.send(sender_id="c1", text="hi", metadata={})
    assert bot.replicas[0].failures == 2  # tried again after the back-off, still down: waits longer
    await bot.aclose()


async def test_every_replica_down_is_bot_unavailable() -> None:
    bot = RasaChannelBot(
        base_url=[f"http://127.0.0.1:{free_port()}", f"http://127.0.0.1:{free_port()}"], token=None, timeout=1
    )
    with pytest.raises(BotUnavailable, match="unreachable"):
        await bot.send(sender_id="c1", text="hi", metadata={})
    with pytest.raises(BotUnavailable, match="unreachable"):
        await bot.ping()
    await bot.aclose()


async def test_a_replica_failing_after_taking_the_turn_is_not_retried_elsewhere(replicas: list[Replica]) -> None:
    # The turn may have run (an order placed): sending it to the other replica could do it twice.
    replicas[0].status = 500
    bot = RasaChannelBot(base_url=[r.url for r in replicas], token=None, timeout=2)
    with pytest.raises(BotUnavailable, match="HTTP 500"):
        await bot.send(sender_id="c1", text="hi", metadata={})
    await bot.aclose()
    assert (replicas[0].turns, replicas[1].turns) == (1, 0)
