"""SQL statements and transactions per API request, counted in-process on a throwaway PostgreSQL schema.

Runs the app with its lifespan and a fake bot (one reply), posts to an existing
conversation and reads its history, and prints what each request sent to the
database. Background tasks (outbox relay, sweepers) are not counted.

Usage: .venv/bin/python benchmarks/count_statements.py [--echo]
"""

from __future__ import annotations

import argparse
import asyncio
import contextvars
import sys
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import event
from sqlalchemy.engine import Engine

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from conversation_api.auth import mint_token  # noqa: E402
from conversation_api.main import create_app  # noqa: E402
from conversation_api.settings import Settings  # noqa: E402
from tests.support.database import drop_schema, migrate, new_schema_name, postgres_settings  # noqa: E402
from tests.support.fakes import FakeBot  # noqa: E402

counting: contextvars.ContextVar[list[str] | None] = contextvars.ContextVar("counting", default=None)


def _statement(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
    seen = counting.get()
    if seen is not None:
        seen.append(" ".join(statement.split()))


def _commit(_conn: Any) -> None:
    seen = counting.get()
    if seen is not None:
        seen.append("COMMIT")


async def measure(settings: Settings, echo: bool) -> None:
    event.listen(Engine, "before_cursor_execute", _statement)
    event.listen(Engine, "commit", _commit)
    app = create_app(settings, bot=FakeBot())
    token = mint_token(secret=settings.jwt_secret, user_id="count-user", role="client", ttl_seconds=600)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(
            transport=transport, base_url="http://api", headers={"Authorization": f"Bearer {token}"}
        ) as client:

            async def request(name: str, method: str, url: str, **kwargs: Any) -> httpx.Response:
                seen: list[str] = []
                reset = counting.set(seen)
                try:
                    response = await client.request(method, url, **kwargs)
                finally:
                    counting.reset(reset)
                response.raise_for_status()
                statements = [s for s in seen if s != "COMMIT"]
                print(f"{name}: {len(statements)} statements, {len(seen) - len(statements)} commits")
                if echo:
                    for line in seen:
                        print(f"    {line[:160]}")
                return response

            body = {"conversation_id": "", "user_id": "count-user", "message": "hello"}
            first = await request("POST, new conversation", "POST", "/api/v1/messages", json=body)
            body["conversation_id"] = first.json()["conversation_id"]
            for _ in range(2):  # the second one runs on warm caches
                await request("POST, existing conversation", "POST", "/api/v1/messages", json=body)
            await request(
                "GET history",
                "GET",
                f"/api/v1/user/count-user/messages/{body['conversation_id']}?limit=20",
            )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--echo", action="store_true", help="print each statement")
    echo = parser.parse_args().echo
    schema = new_schema_name()
    settings = postgres_settings(schema)
    migrate(settings)
    try:
        asyncio.run(measure(settings, echo))
    finally:
        drop_schema(schema)


if __name__ == "__main__":
    main()
