"""Human handoff through the HTTP API in-process, on PostgreSQL and SQLite, with a scripted bot behind the port.

The real-Rasa versions of the key paths (tracker paused, nothing reaches Rasa while a
human has the conversation) are in tests/e2e/test_handoff_e2e.py.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import timedelta

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import select

from conversation_api.channels import PollingChannel
from conversation_api.conversations.models import Conversation, Message
from conversation_api.db import utcnow
from conversation_api.handoff.service import IDLE_TEXT, UNCLAIMED_TEXT
from conversation_api.settings import Settings
from tests.conftest import TokenFactory, auth, running_app
from tests.support.fakes import ScriptedBot


@dataclass
class Desk:
    """The app, an HTTP client bound to it, and the scripted bot behind it."""

    app: FastAPI
    http: httpx.AsyncClient
    bot: ScriptedBot
    token: TokenFactory

    async def say(self, user: str, text: str, conversation_id: str = "") -> dict:
        response = await self.http.post(
            "/api/v1/messages",
            headers=auth(self.token(user)),
            json={"conversation_id": conversation_id, "user_id": user, "message": text},
        )
        assert response.status_code == 200, response.text
        return response.json()

    async def csr(self, method: str, path: str, who: str = "csr-sam", role: str = "csr", **kwargs) -> httpx.Response:
        return await self.http.request(method, f"/api/v1/csr{path}", headers=auth(self.token(who, role)), **kwargs)

    async def transcript(self, cid: str) -> dict:
        response = await self.csr("GET", f"/conversations/{cid}", who="admin-ann", role="admin")
        assert response.status_code == 200, response.text
        return response.json()

    async def history(self, user: str, cid: str) -> list[dict]:
        response = await self.http.get(f"/api/v1/user/{user}/messages/{cid}", headers=auth(self.token(user)))
        assert response.status_code == 200, response.text
        return response.json()["messages"]

    def bot_saw(self, cid: str) -> list[str]:
        return [c["text"] for c in self.bot.calls if c["sender_id"] == cid]

    @property
    def sweeper(self):
        return self.app.state.container.handoff_sweeper


def quiet(settings: Settings, **overrides: object) -> Settings:
    # The lifespan's sweeper loop stays out of the way unless a test asks for it.
    values = {"handoff_sweep_interval": 3600, **overrides}
    return settings.model_copy(update=values)


@pytest.fixture
async def desk(db_settings: Settings, token: TokenFactory) -> AsyncIterator[Desk]:
    # The only API replica on its schema while the test runs (see pg_schema): every pause and
    # resume goes to `bot`. A sweep still covers the whole schema, with what earlier tests left
    # in it: the tests judge their own conversation, not how many the sweep timed out.
    bot = ScriptedBot()
    async for app, http in running_app(quiet(db_settings), bot=bot):
        yield Desk(app, http, bot, token)


async def handed_off(desk: Desk, user: str) -> str:
    reply = await desk.say(user, "human please")
    assert reply["handoff_state"] == "pending_human"
    return reply["conversation_id"]


# --- triggers and routing ------------------------------------------------------------


async def test_asking_for_a_human_hands_over_from_the_next_message(desk: Desk) -> None:
    hello = await desk.say("hana", "hello")
    cid = hello["conversation_id"]
    trigger = await desk.say("hana", "human please", cid)
    # The triggering reply is still the bot's; the state says what happens next.
    assert trigger["message"] == "A member of our team will reply here shortly."
    assert trigger["handoff_state"] == "pending_human"
    assert desk.bot.control == [("pause", cid)]

    waiting = await desk.say("hana", "are you there?", cid)
    assert waiting == {
        "conversation_id": cid,
        "user_id": "hana",
        "message": "",
        "messages": [],
        "handoff_state": "pending_human",
        "message_id": waiting["message_id"],
        "replayed": False,
    }
    assert isinstance(waiting["message_id"], int)
    assert desk.bot_saw(cid) == ["hello", "human please"]
    history = await desk.history("hana", cid)
    assert [(m["sender"], m["text"]) for m in history][-1] == ("user", "are you there?")

    transcript = await desk.transcript(cid)
    assert transcript["handoff_state"] == "pending_human"
    assert transcript["reason"] == "customer_request"
    assert transcript["bot_in_step"] is True
    assert [(t["from_state"], t["to_state"], t["actor"], t["reason"]) for t in transcript["transitions"]] == [
        ("bot", "pending_human", "bot", "customer_request")
    ]


async def test_two_fallbacks_in_a_row_hand_over_but_interrupted_ones_do_not(desk: Desk) -> None:
    cid = (await desk.say("fred", "gibberish one"))["conversation_id"]
    assert (await desk.say("fred", "hello", cid))["handoff_state"] == "bot"
    assert (await desk.say("fred", "gibberish two", cid))["handoff_state"] == "bot"
    second = await desk.say("fred", "gibberish three", cid)
    assert second["handoff_state"] == "pending_human"
    assert second["message"].startswith("Sorry, I didn't quite understand")
    transitions = (await desk.transcript(cid))["transitions"]
    assert [(t["actor"], t["reason"]) for t in transitions] == [("gateway", "repeated_fallback")]


async def test_a_rating_of_one_hands_over_and_other_ratings_do_not(desk: Desk) -> None:
    cid = (await desk.say("rita", "rate 2"))["conversation_id"]
    assert (await desk.say("rita", "rate 5", cid))["handoff_state"] == "bot"
    low = await desk.say("rita", "rate 1", cid)
    assert low["handoff_state"] == "pending_human" and low["message"] == "Thanks for your feedback!"
    assert (await desk.transcript(cid))["reason"] == "low_rating"


async def test_a_workflow_can_ask_for_a_human(desk: Desk) -> None:
    cid = (await desk.say("walt", "escalate"))["conversation_id"]
    transcript = await desk.transcript(cid)
    assert (transcript["handoff_state"], transcript["reason"]) == ("pending_human", "workflow")


# --- the CSR cycle -------------------------------------------------------------------


async def test_claim_reply_resolve_and_the_bot_answers_again(desk: Desk) -> None:
    cid = await handed_off(desk, "carl")
    await desk.say("carl", "my order never came", cid)

    claimed = await desk.csr("POST", f"/conversations/{cid}/claim")
    assert claimed.status_code == 200, claimed.text
    assert (claimed.json()["handoff_state"], claimed.json()["claimed_by"]) == ("with_human", "csr-sam")
    assert (await desk.csr("POST", f"/conversations/{cid}/claim")).status_code == 200  # same CSR: no-op

    sent = await desk.csr("POST", f"/conversations/{cid}/messages", json={"message": "Hi Carl, Sam here. Checking."})
    assert sent.status_code == 201, sent.text
    assert sent.json()["message"]["sender"] == "csr" and sent.json()["delivered_via"] == "api"

    during = await desk.say("carl", "thanks Sam", cid)
    assert (during["message"], during["handoff_state"]) == ("", "with_human")

    history = await desk.history("carl", cid)
    assert [(m["sender"], m["text"]) for m in history][-2:] == [
        ("csr", "Hi Carl, Sam here. Checking."),
        ("user", "thanks Sam"),
    ]

    resolved = await desk.csr("POST", f"/conversations/{cid}/resolve", json={"note": "refund issued"})
    assert resolved.status_code == 200, resolved.text
    assert (resolved.json()["handoff_state"], resolved.json()["bot_in_step"]) == ("bot", True)
    assert desk.bot.control == [("pause", cid), ("resume", cid)]

    after = await desk.say("carl", "hello again", cid)
    assert (after["message"], after["handoff_state"]) == ("bot: hello again", "bot")
    assert desk.bot_saw(cid) == ["human please", "hello again"]

    transcript = await desk.transcript(cid)
    assert [
        (t["from_state"], t["to_state"], t["actor"], t["reason"], t["note"]) for t in transcript["transitions"]
    ] == [
        ("bot", "pending_human", "bot", "customer_request", None),
        ("pending_human", "with_human", "csr-sam", "claimed", None),
        ("with_human", "bot", "csr-sam", "resolved", "refund issued"),
    ]
    assert [m["sender"] for m in transcript["messages"]] == ["user", "bot", "user", "csr", "user", "user", "bot"]
    assert transcript["messages"][0]["intent"] == "request_human"


async def test_concurrent_claims_have_exactly_one_winner(desk: Desk) -> None:
    cid = await handed_off(desk, "cora")
    responses = await asyncio.gather(
        *(desk.csr("POST", f"/conversations/{cid}/claim", who=f"csr-{i}") for i in range(8))
    )
    statuses = sorted(r.status_code for r in responses)
    assert statuses == [200] + [409] * 7, [r.text for r in responses]
    winner = next(r.json()["claimed_by"] for r in responses if r.status_code == 200)
    transcript = await desk.transcript(cid)
    assert transcript["claimed_by"] == winner
    assert [t["actor"] for t in transcript["transitions"] if t["reason"] == "claimed"] == [winner]


async def test_state_rules_give_409_with_a_reason(desk: Desk) -> None:
    bot_cid = (await desk.say("olga", "hello"))["conversation_id"]
    for verb in ("claim", "resolve"):
        refused = await desk.csr("POST", f"/conversations/{bot_cid}/{verb}")
        assert refused.status_code == 409 and "bot" in refused.json()["detail"]

    cid = await handed_off(desk, "olga")
    early = await desk.csr("POST", f"/conversations/{cid}/messages", json={"message": "hi"})
    assert early.status_code == 409 and "claim it first" in early.json()["detail"]
    assert (await desk.csr("POST", f"/conversations/{cid}/claim", who="csr-kim")).status_code == 200

    taken = await desk.csr("POST", f"/conversations/{cid}/claim")
    assert taken.status_code == 409 and taken.json()["claimed_by"] == "csr-kim"
    other_reply = await desk.csr("POST", f"/conversations/{cid}/messages", json={"message": "me too"})
    assert other_reply.status_code == 409 and other_reply.json()["claimed_by"] == "csr-kim"
    assert (await desk.csr("POST", f"/conversations/{cid}/resolve")).status_code == 409

    # An admin may step into any conversation.
    admin = {"who": "admin-ann", "role": "admin"}
    assert (
        await desk.csr("POST", f"/conversations/{cid}/messages", json={"message": "Ann here"}, **admin)
    ).status_code == 201
    assert (await desk.csr("POST", f"/conversations/{cid}/resolve", **admin)).status_code == 200
    assert (await desk.transcript(cid))["handoff_state"] == "bot"


async def test_bad_input_gets_a_clear_4xx(desk: Desk) -> None:
    cid = await handed_off(desk, "bea")
    await desk.csr("POST", f"/conversations/{cid}/claim")
    blank = await desk.csr("POST", f"/conversations/{cid}/messages", json={"message": "   "})
    assert blank.status_code == 422
    extra = await desk.csr("POST", f"/conversations/{cid}/messages", json={"message": "x", "sender": "bot"})
    assert extra.status_code == 422
    missing = await desk.csr("POST", "/conversations/no-such-id/claim")
    assert missing.status_code == 404 and missing.json()["code"] == "conversation_not_found"
    # `bot` is no queue state: the schema does not offer it, so it is a 422 like any other value.
    assert (await desk.csr("GET", "/queue", params={"state": "bot"})).status_code == 422
    assert (await desk.csr("GET", "/queue", params={"state": "nonsense"})).status_code == 422
    assert len([m for m in await desk.history("bea", cid) if m["sender"] == "csr"]) == 0


async def test_the_queue_is_oldest_first_with_what_the_csr_needs(desk: Desk) -> None:
    first = (await desk.say("qa-1", "rate 1"))["conversation_id"]
    second = await handed_off(desk, "qa-2")
    await desk.say("qa-2", "still waiting", second)
    third = await handed_off(desk, "qa-3")

    queue = (await desk.csr("GET", "/queue")).json()["items"]
    ours = [i for i in queue if i["conversation_id"] in {first, second, third}]
    assert [i["conversation_id"] for i in ours] == [first, second, third]
    one, two = ours[0], ours[1]
    assert (one["user_id"], one["reason"], one["intents"]) == ("qa-1", "low_rating", ["give_feedback"])
    assert one["entities"] == [{"entity": "rating", "value": 1}]
    assert one["last_message"]["sender"] == "bot" and one["waiting_since"].endswith("Z")
    assert (two["last_message"]["sender"], two["last_message"]["text"]) == ("user", "still waiting")
    assert two["message_count"] == 3 and two["intents"] == ["request_human"]
    waits = [i["waiting_since"] for i in queue]
    assert waits == sorted(waits)

    await desk.csr("POST", f"/conversations/{second}/claim", who="csr-quinn")
    waiting = {i["conversation_id"] for i in (await desk.csr("GET", "/queue")).json()["items"]}
    assert second not in waiting and {first, third} <= waiting
    mine = await desk.csr("GET", "/queue", params={"state": "with_human", "mine": True}, who="csr-quinn")
    mine = mine.json()["items"]
    assert [i["conversation_id"] for i in mine] == [second]
    others = await desk.csr("GET", "/queue", params={"state": "with_human", "mine": True}, who="csr-zed")
    assert others.json()["items"] == []


# --- timeouts ------------------------------------------------------------------------


async def test_unclaimed_handoff_goes_back_to_the_bot_with_a_message(desk: Desk) -> None:
    cid = await handed_off(desk, "tina")
    await desk.sweeper.sweep_once()
    assert (await desk.transcript(cid))["handoff_state"] == "pending_human"

    swept = await desk.sweeper.sweep_once(now=utcnow() + timedelta(seconds=601))  # HANDOFF_TIMEOUT default 600
    assert swept.unclaimed >= 1
    transcript = await desk.transcript(cid)
    assert transcript["handoff_state"] == "bot"
    assert (transcript["transitions"][-1]["actor"], transcript["transitions"][-1]["reason"]) == (
        "system",
        "unclaimed_timeout",
    )
    notice = (await desk.history("tina", cid))[-1]
    assert (notice["sender"], notice["text"]) == ("bot", UNCLAIMED_TEXT)
    assert desk.bot.control[-1] == ("resume", cid)
    assert (await desk.say("tina", "hello?", cid))["message"] == "bot: hello?"


async def test_idle_claimed_conversation_is_resolved(desk: Desk) -> None:
    cid = await handed_off(desk, "ivan")
    await desk.csr("POST", f"/conversations/{cid}/claim")
    await desk.sweeper.sweep_once(now=utcnow() + timedelta(seconds=601))  # idle default 1800s
    assert (await desk.transcript(cid))["handoff_state"] == "with_human"

    swept = await desk.sweeper.sweep_once(now=utcnow() + timedelta(seconds=1801))
    assert swept.idle >= 1
    transcript = await desk.transcript(cid)
    assert transcript["handoff_state"] == "bot"
    assert transcript["transitions"][-1]["reason"] == "idle_timeout"
    assert (await desk.history("ivan", cid))[-1]["text"] == IDLE_TEXT


async def test_the_lifespan_sweeper_applies_short_configured_timeouts(
    db_settings: Settings, token: TokenFactory
) -> None:
    settings = quiet(db_settings, handoff_timeout=0.5, handoff_idle_timeout=0.8, handoff_sweep_interval=0.1)
    bot = ScriptedBot()
    async for app, http in running_app(settings, bot=bot):
        desk = Desk(app, http, bot, token)
        unclaimed = await handed_off(desk, "sara")
        idle = await handed_off(desk, "sven")
        await desk.csr("POST", f"/conversations/{idle}/claim")
        # Activity keeps a claimed conversation open past the idle timeout.
        for _ in range(3):
            await asyncio.sleep(0.4)
            await desk.csr("POST", f"/conversations/{idle}/messages", json={"message": "still on it"})
        assert (await desk.transcript(unclaimed))["handoff_state"] == "bot"
        assert (await desk.transcript(idle))["handoff_state"] == "with_human"
        for _ in range(50):
            if (await desk.transcript(idle))["handoff_state"] == "bot":
                break
            await asyncio.sleep(0.1)
        transcript = await desk.transcript(idle)
        assert transcript["handoff_state"] == "bot" and transcript["transitions"][-1]["reason"] == "idle_timeout"


async def test_a_claim_racing_the_timeout_keeps_one_outcome(desk: Desk) -> None:
    cid = await handed_off(desk, "rory")
    later = utcnow() + timedelta(seconds=601)
    claim, _ = await asyncio.gather(desk.csr("POST", f"/conversations/{cid}/claim"), desk.sweeper.sweep_once(later))
    transcript = await desk.transcript(cid)
    reasons = [t["reason"] for t in transcript["transitions"]]
    if claim.status_code == 200:
        assert transcript["handoff_state"] == "with_human" and reasons == ["customer_request", "claimed"]
    else:
        assert claim.status_code == 409 and transcript["handoff_state"] == "bot"
        assert reasons == ["customer_request", "unclaimed_timeout"]


# --- the bot being down during pause/resume ------------------------------------------


async def test_rasa_down_during_pause_and_resume_loses_no_state_change(desk: Desk) -> None:
    desk.bot.fail_control = True
    cid = await handed_off(desk, "dora")
    transcript = await desk.transcript(cid)
    assert transcript["handoff_state"] == "pending_human" and transcript["bot_in_step"] is False
    assert (await desk.say("dora", "hello?", cid))["message"] == ""  # still routed to a human

    desk.bot.fail_control = False
    assert (await desk.sweeper.sweep_once()).bot_behind == 0
    assert desk.bot.paused(cid) and (await desk.transcript(cid))["bot_in_step"] is True

    desk.bot.fail_control = True
    resolved = await desk.csr("POST", f"/conversations/{cid}/resolve")
    assert resolved.status_code == 200
    assert (resolved.json()["handoff_state"], resolved.json()["bot_in_step"]) == ("bot", False)
    # Rasa is still paused: asking it would give silence, so the customer gets a clear 503 and the message is kept.
    refused = await desk.http.post(
        "/api/v1/messages",
        headers=auth(desk.token("dora")),
        json={"conversation_id": cid, "user_id": "dora", "message": "anyone?"},
    )
    assert refused.status_code == 503 and refused.json()["code"] == "bot_unavailable"
    assert "anyone?" not in desk.bot_saw(cid)
    assert (await desk.history("dora", cid))[-1]["text"] == "anyone?"

    desk.bot.fail_control = False
    back = await desk.say("dora", "hi again", cid)
    assert back["message"] == "bot: hi again" and not desk.bot.paused(cid)
    assert (await desk.transcript(cid))["bot_in_step"] is True


# --- delivery through the customer's channel -----------------------------------------


class RecordingChannel(PollingChannel):
    """Free text always goes through (no service window), as PollingChannel says."""

    def __init__(self, fail: bool = False) -> None:
        self.fail = fail
        self.sent: list[tuple[str, str]] = []

    async def deliver(self, *, conversation: Conversation, message: Message) -> None:
        if self.fail:
            raise ConnectionError("channel down")
        self.sent.append((conversation.id, message.text))


async def test_csr_replies_go_out_on_the_customers_channel(desk: Desk) -> None:
    container = desk.app.state.container
    channel = RecordingChannel()
    container.channels.register("whatsapp", channel)
    reply = await container.gateway.handle(
        user_id="wendy", conversation_id=None, text="human please", channel="whatsapp"
    )
    cid = reply.conversation_id
    await desk.csr("POST", f"/conversations/{cid}/claim")
    sent = await desk.csr("POST", f"/conversations/{cid}/messages", json={"message": "Hello from the team"})
    assert sent.status_code == 201 and sent.json()["delivered_via"] == "whatsapp"
    assert channel.sent == [(cid, "Hello from the team")]

    channel.fail = True
    failed = await desk.csr("POST", f"/conversations/{cid}/messages", json={"message": "are you there?"})
    assert failed.status_code == 503 and failed.json()["code"] == "delivery_failed"
    async with container.sessions() as session:
        stored = await session.get(Message, failed.json()["message_id"])
    assert stored is not None and stored.text == "are you there?"


# --- authorisation -------------------------------------------------------------------


async def test_authorisation_matrix_on_every_csr_endpoint(desk: Desk) -> None:
    def endpoints(cid: str) -> list[tuple[str, str, dict]]:
        return [
            ("GET", "/queue", {}),
            ("GET", f"/conversations/{cid}", {}),
            ("POST", f"/conversations/{cid}/claim", {}),
            ("POST", f"/conversations/{cid}/messages", {"json": {"message": "hello"}}),
            ("POST", f"/conversations/{cid}/resolve", {}),
        ]

    for role, who in (("client", "mallory"), ("csr", "csr-matt"), ("admin", "admin-ada")):
        cid = await handed_off(desk, f"auth-{role}")
        seen = []
        for method, path, kwargs in endpoints(cid):
            response = await desk.csr(method, path, who=who, role=role, **kwargs)
            seen.append(response.status_code)
            if role == "client":
                assert response.json()["code"] == "forbidden"
        assert seen == ([403] * 5 if role == "client" else [200, 200, 200, 201, 200]), (role, seen)
        if role == "client":
            assert (await desk.transcript(cid))["handoff_state"] == "pending_human"

    for method, path, kwargs in endpoints(cid):
        assert (await desk.http.request(method, f"/api/v1/csr{path}", **kwargs)).status_code == 401


async def test_a_client_never_reads_another_customers_conversation(desk: Desk) -> None:
    cid = await handed_off(desk, "victim")
    await desk.csr("POST", f"/conversations/{cid}/claim")
    await desk.csr("POST", f"/conversations/{cid}/messages", json={"message": "your card ends 4242"})
    thief = auth(desk.token("thief"))
    attempts = [
        await desk.http.get(f"/api/v1/user/victim/messages/{cid}", headers=thief),
        await desk.http.get(f"/api/v1/user/thief/messages/{cid}", headers=thief),
        await desk.http.get("/api/v1/user/victim/conversations", headers=thief),
        await desk.http.post(
            "/api/v1/messages", headers=thief, json={"conversation_id": cid, "user_id": "thief", "message": "hi"}
        ),
        await desk.http.post(
            "/api/v1/messages", headers=thief, json={"conversation_id": cid, "user_id": "victim", "message": "hi"}
        ),
        await desk.http.get("/api/v1/csr/queue", headers=thief),
        await desk.http.get(f"/api/v1/csr/conversations/{cid}", headers=thief),
    ]
    assert [r.status_code for r in attempts] == [403, 404, 403, 404, 403, 403, 403]
    assert all("4242" not in r.text for r in attempts)
    async with desk.app.state.container.sessions() as session:
        texts = (await session.scalars(select(Message.text).where(Message.conversation_id == cid))).all()
    assert "hi" not in texts


async def test_the_console_page_is_served(desk: Desk) -> None:
    page = await desk.http.get("/console")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert "/api/v1/csr" in page.text and 'data-testid="claim"' in page.text
