"""The export of the reviewed examples: masking, held-out and conflicting examples refused, and a round trip
through Rasa itself (`rasa data validate` with the project's data, and a small NLU model trained on the file)."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import yaml

from conversation_api.review.export import examples_of, render_example
from conversation_api.settings import Settings
from tests.conftest import TokenFactory
from tests.integration.test_review import Studio, UnsureBot
from tests.support.database import migrate, sqlite_settings
from tests.support.events import app_client
from tests.support.processes import ROOT

RASA = ROOT / ".venv-rasa" / "bin"


@pytest.fixture
async def studio(own_settings: Settings, token: TokenFactory) -> AsyncIterator[Studio]:
    async with app_client(own_settings, bot=UnsureBot()) as (app, http):
        yield Studio(app, http, token, own_settings)


@pytest.fixture(params=["postgresql", "sqlite"])
def own_settings(request: pytest.FixtureRequest, tmp_path: Path):  # type: ignore[no-untyped-def]
    from tests.support.events import fresh_database

    with fresh_database(request.param, tmp_path) as settings:
        yield settings.model_copy(update={"handoff_sweep_interval": 3600})


async def annotate(studio: Studio, user: str, text: str, body: dict, cid: str = "") -> str:
    cid = (await studio.say(user, text, cid))["conversation_id"]
    mid = await studio.message_id(user, cid, text)
    response = await studio.as_("designer", "POST", f"/messages/{mid}/annotation", json=body)
    assert response.status_code == 201, response.text
    return cid


def span(text: str, value: str, entity: str) -> dict:
    return {"start": text.index(value), "end": text.index(value) + len(value), "entity": entity}


def test_personal_data_is_masked_unless_it_is_the_annotated_entity() -> None:
    text = "my parcel is late, mail me at bob@example.com or call +44 20 7946 0958 about order 10234 from 2026-12-01"
    assert render_example(text, []) == (
        "my parcel is late, mail me at <email> or call <phone> about order 10234 from 2026-12-01"
    )
    assert render_example("(555) 123-4567 is my number", []) == "<phone> is my number"
    mine = "new email ann@example.com and phone 07700 900123 please"
    assert render_example(mine, [span(mine, "ann@example.com", "email")]) == (
        "new email [ann@example.com](email) and phone <phone> please"
    )
    # Brackets a customer typed are not read as annotations.
    assert render_example("where is [my] order", []) == "where is (my) order"


async def test_the_export_groups_by_intent_masks_and_refuses(studio: Studio) -> None:
    held_out_intent, held_out = examples_of(ROOT / "tests/nlu/heldout.yml")[0]
    trained_intent, trained = next(
        (i, e) for i, e in examples_of(ROOT / "rasa_project/data/nlu/base.yml") if "[" not in e
    )
    late = "unsure my parcel is late, mail me at bob@example.com or call +44 20 7946 0958"
    await annotate(studio, "ex-ann", late, {"intent": "order_status"})
    mail = "mail me at ann@example.com"
    await annotate(
        studio, "ex-ben", mail, {"intent": "update_contact", "entities": [span(mail, "ann@example.com", "email")]}
    )
    await annotate(studio, "ex-cat", held_out, {"intent": held_out_intent})
    other = "thank" if trained_intent != "thank" else "greet"
    await annotate(studio, "ex-dan", trained, {"intent": other})
    await annotate(studio, "ex-eve", "gibberish call me on 07700 900123", {"ignore": True})
    # The same words reviewed twice: the later decision wins.
    await annotate(studio, "ex-fay", "unsure wheres my stuff", {"intent": "order_status"})
    await annotate(studio, "ex-gus", "Unsure, where's my stuff?", {"intent": "order_status"})

    response = await studio.as_("admin", "GET", "/export")
    assert response.status_code == 200, response.text
    result = response.json()
    assert result["examples"] == 3 and result["intents"] == {"order_status": 2, "update_contact": 1}
    refused = {r["reason"]: r for r in result["refused"]}
    assert set(refused) == {"held_out", "conflicts_with_training_data", "superseded"}
    assert refused["held_out"]["file"] == "heldout.yml"
    assert (refused["conflicts_with_training_data"]["intent"], refused["conflicts_with_training_data"]["file"]) == (
        trained_intent,
        "base.yml",
    )
    data = yaml.safe_load(result["yaml"])
    assert data["version"] == "3.1"
    examples = {block["intent"]: block["examples"].splitlines() for block in data["nlu"]}
    assert examples == {
        "order_status": [
            "- Unsure, where's my stuff?",
            "- unsure my parcel is late, mail me at <email> or call <phone>",
        ],
        "update_contact": ["- mail me at [ann@example.com](email)"],
    }
    assert "bob@example.com" not in result["yaml"] and "07700" not in result["yaml"]

    # Without the held-out sets there is no export: it could not refuse their examples.
    container = studio.app.state.container
    container.settings = container.settings.model_copy(update={"review_heldout_dir": "/nonexistent/tests/nlu"})
    missing = await studio.as_("admin", "GET", "/export")
    assert missing.status_code == 409 and missing.json()["code"] == "heldout_sets_missing"


TINY_PIPELINE = """\
recipe: default.v1
language: en
assistant_id: review-roundtrip
pipeline:
  - name: WhitespaceTokenizer
  - name: CountVectorsFeaturizer
  - name: LogisticRegressionClassifier
policies: []
"""

CLASSIFY = """\
import asyncio, json, sys
from rasa.core.agent import Agent
async def main():
    agent = Agent.load(sys.argv[1])
    print(json.dumps([(await agent.parse_message(t))["intent"]["name"] for t in sys.argv[2:]]))
asyncio.run(main())
"""


def rasa_env() -> dict[str, str]:
    return {**os.environ, "RASA_TELEMETRY_ENABLED": "false", "TF_CPP_MIN_LOG_LEVEL": "3"}


CORRECTED = "unsure my parcel has gone walkabout"
MAIL = "mail me at ann@example.com"


async def review_a_few(settings: Settings, token: TokenFactory) -> None:
    async with app_client(settings, bot=UnsureBot()) as (app, http):
        studio = Studio(app, http, token, settings)
        await annotate(studio, "rt-ann", CORRECTED, {"intent": "check_availability"})
        await annotate(studio, "rt-ben", "unsure is the parcel lost", {"intent": "order_status"})
        await annotate(studio, "rt-cat", "unsure parcel still missing", {"intent": "order_status"})
        await annotate(
            studio, "rt-dan", MAIL, {"intent": "update_contact", "entities": [span(MAIL, "ann@example.com", "email")]}
        )
        await annotate(studio, "rt-eve", "unsure can i change my email", {"intent": "update_contact"})


def test_the_exported_file_validates_and_trains(tmp_path: Path, token: TokenFactory) -> None:
    settings = sqlite_settings(tmp_path / "review.db", handoff_sweep_interval=3600)
    migrate(settings)
    asyncio.run(review_a_few(settings, token))
    corrected, mail = CORRECTED, MAIL
    # `make export-reviewed`, into a directory of the test's own (the repository stays clean).
    out = tmp_path / "data" / "reviewed.yml"
    env = {**os.environ, "DATABASE_URL": settings.database_url, "ENVIRONMENT": "test"}
    exported = subprocess.run(
        [str(ROOT / ".venv/bin/python"), "-m", "conversation_api.review", "export", "--out", str(out)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert exported.returncode == 0, exported.stderr
    assert "5 examples in 3 intents" in exported.stderr
    assert f"- [{corrected}]" not in out.read_text() and f"- {corrected}" in out.read_text()

    validate = subprocess.run(
        [
            str(RASA / "rasa"),
            "data",
            "validate",
            "--config",
            "config.yml",
            "--domain",
            "domain.yml",
            "--data",
            "rasa_project/data",
            str(out),
            "--fail-on-warnings",
        ],
        cwd=ROOT,
        env=rasa_env(),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert validate.returncode == 0, validate.stdout[-3000:] + validate.stderr[-3000:]

    config = tmp_path / "config.yml"
    config.write_text(TINY_PIPELINE)
    train = subprocess.run(
        [
            str(RASA / "rasa"),
            "train",
            "nlu",
            "--config",
            str(config),
            "--nlu",
            str(out.parent),
            "--out",
            str(tmp_path / "models"),
            "--fixed-model-name",
            "reviewed",
        ],
        cwd=tmp_path,
        env=rasa_env(),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert train.returncode == 0, train.stdout[-3000:] + train.stderr[-3000:]
    classify = subprocess.run(
        [str(RASA / "python"), "-c", CLASSIFY, str(tmp_path / "models" / "reviewed.tar.gz"), corrected, mail],
        cwd=tmp_path,
        env=rasa_env(),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert classify.returncode == 0, classify.stderr[-3000:]
    assert json.loads(classify.stdout.strip().splitlines()[-1]) == ["check_availability", "update_contact"]
