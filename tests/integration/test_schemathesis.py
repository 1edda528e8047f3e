"""The API's OpenAPI spec against the real app (PostgreSQL, fake bot), fuzzed by schemathesis.

Every operation gets valid and invalid inputs, with a client token and with an admin
token. Checked on every response: no 5xx, the status code is documented for the
operation, the body and content type are what the spec says.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from typing import Any

import pytest
import schemathesis
from fastapi import FastAPI
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis.checks import not_a_server_error
from schemathesis.generation import GenerationMode
from schemathesis.schemas import APIOperation
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from conversation_api.main import create_app
from conversation_api.settings import Settings
from tests.conftest import TokenFactory, auth
from tests.support.fakes import FakeBot
from tests.support.processes import free_port

CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]
# Per operation, role and mode (valid, invalid); operations without parameters have a single case.
EXAMPLES = 40


@pytest.fixture(scope="module")
def app(pg_settings: Settings) -> Iterator[FastAPI]:
    settings = pg_settings.model_copy(
        update={
            # The rate limit has its own tests; here it would turn most later posts into (documented) 429s.
            "rate_limit_messages": None,
            # The webhook configured (unconfigured it is a deliberate 503); no fuzzed body carries a valid
            # signature, so nothing is stored and the Graph API (nowhere) is never called.
            "whatsapp_verify_token": "fuzz-verify-token",
            "whatsapp_app_secret": "fuzz-app-secret",
            "whatsapp_access_token": "fuzz-access-token",
            "whatsapp_phone_number_id": "100000000000001",
            "whatsapp_graph_url": f"http://127.0.0.1:{free_port()}",
        }
    )
    yield create_app(settings, bot=FakeBot())


def fuzz(
    operation: APIOperation[Any, Any, Any, Any], mode: GenerationMode, *, role: str, token: TokenFactory
) -> Counter[int]:
    """Run one operation's cases in one mode; the status codes it got."""
    subject = f"fuzz-{role}"
    headers = auth(token(subject, role))
    statuses: Counter[int] = Counter()

    @settings(
        max_examples=EXAMPLES,
        deadline=None,
        derandomize=True,
        database=None,
        phases=[Phase.explicit, Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    @given(case=operation.as_strategy(generation_mode=mode))
    def exercise(case: schemathesis.Case) -> None:
        if role == "client" and mode is GenerationMode.POSITIVE:
            # A client may only act as itself: without this nearly every call would be a 403.
            if case.path_parameters and "user_id" in case.path_parameters:
                case.path_parameters["user_id"] = subject
            if isinstance(case.body, dict) and "user_id" in case.body:
                case.body["user_id"] = subject
        statuses[case.call_and_validate(headers=headers, checks=CHECKS).status_code] += 1

    try:
        exercise()
    except Unsatisfiable:
        # No invalid input exists for an operation without parameters or body (/healthz).
        assert mode is GenerationMode.NEGATIVE and not operation.body and not operation.query
    return statuses


@pytest.mark.parametrize("role", ["client", "admin"])
def test_every_operation_keeps_to_the_spec(app: FastAPI, token: TokenFactory, role: str) -> None:
    schema = schemathesis.openapi.from_asgi("/openapi.json", app)
    ran: dict[str, int] = {}
    statuses: Counter[int] = Counter()
    for result in schema.get_all_operations():
        operation = result.ok()
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
            got = fuzz(operation, mode, role=role, token=token)
            ran[operation.label] = ran.get(operation.label, 0) + got.total()
            statuses += got
    print(f"{role}: {sum(ran.values())} cases over {len(ran)} operations, statuses {dict(sorted(statuses.items()))}")
    assert len(ran) == 25 and all(ran.values()), ran
    assert sum(ran.values()) >= 10 * 2 * EXAMPLES, ran
    # Some calls got through to real work, not only refusals.
    assert statuses[200] + statuses[201] >= 20, statuses
