"""The HTTP API in-process on PostgreSQL and on SQLite, with a fake bot behind the port."""

from collections.abc import AsyncIterator

import httpx
import pytest

from conversation_api.settings import Settings
from tests.conftest import TokenFactory, auth, running_app
from tests.support.fakes import FakeBot


@pytest.fixture
async def client(db_settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    async for _, http in running_app(db_settings, bot=FakeBot()):
        yield http


async def send(
    client: httpx.AsyncClient, token: str, user: str, text: str, conversation_id: str = ""
) -> httpx.Response:
    return await client.post(
        "/api/v1/messages",
        headers=auth(token),
        json={"conversation_id": conversation_id, "user_id": user, "message": text},
    )


async def test_seed_api_round_trip(client: httpx.AsyncClient, token: TokenFactory) -> None:
    alice = token("alice")
    first = await send(client, alice, "alice", "hello")
    assert first.status_code == 200, first.text
    body = first.json()
    assert body["user_id"] == "alice"
    assert body["message"] == "echo: hello\npick one"
    assert body["messages"][1]["buttons"] == [{"title": "Yes", "payload": "/affirm"}]
    assert body["handoff_state"] == "bot"
    cid = body["conversation_id"]

    second = await send(client, alice, "alice", "and again", cid)
    assert second.json()["conversation_id"] == cid

    history = await client.get(f"/api/v1/user/alice/messages/{cid}", headers=auth(alice))
    assert history.status_code == 200
    messages = history.json()["messages"]
    assert [(m["sender"], m["text"]) for m in messages] == [
        ("user", "hello"),
        ("bot", "echo: hello"),
        ("bot", "pick one"),
        ("user", "and again"),
        ("bot", "echo: and again"),
        ("bot", "pick one"),
    ]
    assert messages[0]["intent"] == "echo" and messages[0]["confidence"] == 0.9
    assert messages[0]["timestamp"].endswith("Z")
    assert history.json()["next_before"] is None


async def test_history_pages_backwards(client: httpx.AsyncClient, token: TokenFactory) -> None:
    alice = token("alice-pages")
    cid = (await send(client, alice, "alice-pages", "m1")).json()["conversation_id"]
    for i in range(2, 5):
        await send(client, alice, "alice-pages", f"m{i}", cid)
    url = f"/api/v1/user/alice-pages/messages/{cid}"
    page = (await client.get(url, params={"limit": 5}, headers=auth(alice))).json()
    assert len(page["messages"]) == 5 and page["messages"][-1]["text"] == "pick one"
    seen = page["messages"]
    while page["next_before"]:
        page = (await client.get(url, params={"limit": 5, "before": page["next_before"]}, headers=auth(alice))).json()
        seen = page["messages"] + seen
    assert [m["text"] for m in seen if m["sender"] == "user"] == ["m1", "m2", "m3", "m4"]
    assert len(seen) == 12
    assert [m["id"] for m in seen] == sorted(m["id"] for m in seen)


async def test_conversations_are_listed_newest_first(client: httpx.AsyncClient, token: TokenFactory) -> None:
    bob = token("bob-list")
    older = (await send(client, bob, "bob-list", "first")).json()["conversation_id"]
    newer = (await send(client, bob, "bob-list", "second")).json()["conversation_id"]
    listed = await client.get("/api/v1/user/bob-list/conversations", headers=auth(bob))
    assert [c["conversation_id"] for c in listed.json()["conversations"]] == [newer, older]
    await send(client, bob, "bob-list", "back to the first", older)
    listed = await client.get("/api/v1/user/bob-list/conversations", headers=auth(bob))
    assert [c["conversation_id"] for c in listed.json()["conversations"]] == [older, newer]


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"user_id": "carol", "message": ""}, "message"),
        ({"user_id": "carol", "message": "   "}, "message"),
        ({"user_id": "carol", "message": "x" * 4097}, "message"),
        ({"user_id": "carol"}, "message"),
        ({"user_id": "carol", "message": 42}, "message"),
        ({"user_id": 7, "message": "hi"}, "user_id"),
        ({"user_id": "", "message": "hi"}, "user_id"),
        ({"user_id": "carol", "message": "hi", "admin": True}, "admin"),
        ({"user_id": "carol", "message": "hi", "conversation_id": 12}, "conversation_id"),
    ],
)
async def test_bad_bodies_get_422_naming_the_field(
    client: httpx.AsyncClient, token: TokenFactory, body: dict, field: str
) -> None:
    response = await client.post("/api/v1/messages", headers=auth(token("carol")), json=body)
    assert response.status_code == 422
    assert any(field in error["loc"] for error in response.json()["detail"])


async def test_malformed_json_is_422(client: httpx.AsyncClient, token: TokenFactory) -> None:
    response = await client.post(
        "/api/v1/messages",
        headers={**auth(token("carol")), "Content-Type": "application/json"},
        content=b'{"user_id": "carol", "message": ',
    )
    assert response.status_code == 422


async def test_longest_allowed_message_is_accepted(client: httpx.AsyncClient, token: TokenFactory) -> None:
    response = await send(client, token("carol"), "carol", "y" * 4096)
    assert response.status_code == 200


@pytest.mark.parametrize(
    ("header", "reason"),
    [
        (None, "missing bearer token"),
        ("Bearer not.a.jwt", "malformed"),
        ("Basic YWxpY2U6cHc=", "missing bearer token"),
    ],
)
async def test_requests_without_a_valid_token_get_401(
    client: httpx.AsyncClient, header: str | None, reason: str
) -> None:
    headers = {"Authorization": header} if header else {}
    response = await client.post("/api/v1/messages", headers=headers, json={"user_id": "a", "message": "hi"})
    assert response.status_code == 401
    assert reason in response.json()["detail"]
    assert response.headers["www-authenticate"] == "Bearer"


async def test_expired_and_forged_tokens_get_401(client: httpx.AsyncClient, token: TokenFactory) -> None:
    expired = await send(client, token("dave", ttl=-5), "dave", "hi")
    assert (expired.status_code, expired.json()["detail"]) == (401, "token expired")
    forged = await send(client, token("dave", secret="forged-secret-0123456789-0123456789-xx"), "dave", "hi")
    assert (forged.status_code, forged.json()["detail"]) == (401, "token signature is invalid")


async def test_a_client_cannot_act_as_or_read_another_user(client: httpx.AsyncClient, token: TokenFactory) -> None:
    alice, mallory = token("alice-x"), token("mallory")
    cid = (await send(client, alice, "alice-x", "my secret")).json()["conversation_id"]

    assert (await send(client, mallory, "alice-x", "hi", cid)).status_code == 403
    stolen = await send(client, mallory, "mallory", "hi", cid)
    assert stolen.status_code == 404 and "my secret" not in stolen.text
    for url in (f"/api/v1/user/alice-x/messages/{cid}", "/api/v1/user/alice-x/conversations"):
        response = await client.get(url, headers=auth(mallory))
        assert response.status_code == 403 and "my secret" not in response.text
    # Asking under her own name for someone else's conversation reveals nothing either.
    response = await client.get(f"/api/v1/user/mallory/messages/{cid}", headers=auth(mallory))
    assert response.status_code == 404 and "my secret" not in response.text


async def test_staff_may_read_any_customer(client: httpx.AsyncClient, token: TokenFactory) -> None:
    cid = (await send(client, token("erin"), "erin", "hello")).json()["conversation_id"]
    for role in ("csr", "admin"):
        response = await client.get(f"/api/v1/user/erin/messages/{cid}", headers=auth(token("staff", role)))
        assert response.status_code == 200 and response.json()["messages"][0]["text"] == "hello"
    assert (await send(client, token("staff", "csr"), "erin", "as erin", cid)).status_code == 403
    assert (await send(client, token("root", "admin"), "erin", "as erin", cid)).status_code == 200


async def test_unknown_conversation_is_404(client: httpx.AsyncClient, token: TokenFactory) -> None:
    response = await send(client, token("frank"), "frank", "hi", "00000000-0000-0000-0000-000000000000")
    assert response.status_code == 404
    assert response.json()["code"] == "conversation_not_found"
    response = await client.get("/api/v1/user/frank/messages/nope", headers=auth(token("frank")))
    assert response.status_code == 404


@pytest.mark.parametrize(
    "params", [{"limit": 0}, {"limit": 501}, {"before": 0}, {"limit": "many"}, {"before": 2**63}, {"before": "1.5"}]
)
async def test_bad_pagination_is_422(client: httpx.AsyncClient, token: TokenFactory, params: dict) -> None:
    response = await client.get("/api/v1/user/frank/messages/x", params=params, headers=auth(token("frank")))
    assert response.status_code == 422


@pytest.mark.parametrize("before", ["0.5", "1700000000", " 12 ", "-3e2", "yesterday"])
async def test_date_time_parameters_take_iso_8601_not_numbers(
    client: httpx.AsyncClient, token: TokenFactory, before: str
) -> None:
    response = await client.get(
        "/api/v1/user/frank/conversations", params={"before": before}, headers=auth(token("frank"))
    )
    assert response.status_code == 422
    ok = await client.get(
        "/api/v1/user/frank/conversations", params={"before": "2026-11-25T14:00:00Z"}, headers=auth(token("frank"))
    )
    assert ok.status_code == 200


async def test_nul_characters_are_refused_in_validation(client: httpx.AsyncClient, token: TokenFactory) -> None:
    # PostgreSQL text cannot hold NUL: refused as a 422 before the database sees it.
    for body in ({"user_id": "nul", "message": "a\x00b"}, {"user_id": "n\x00l", "message": "hi"}):
        response = await client.post("/api/v1/messages", headers=auth(token("nul")), json=body)
        assert response.status_code == 422, response.text
    response = await client.get("/api/v1/user/nul/messages/a%00b", headers=auth(token("nul")))
    assert response.status_code == 422


async def test_health_and_openapi(client: httpx.AsyncClient) -> None:
    assert (await client.get("/healthz")).json() == {"status": "ok"}
    ready = await client.get("/readyz")
    assert ready.status_code == 200 and ready.json()["checks"] == {"database": "ok", "bot": "ok"}
    spec = (await client.get("/openapi.json")).json()
    post = spec["paths"]["/api/v1/messages"]["post"]
    assert {"200", "401", "403", "404", "422", "503"} <= set(post["responses"])
    assert spec["components"]["schemas"]["SendMessageRequest"]["examples"]
    assert (await client.get("/docs")).status_code == 200
