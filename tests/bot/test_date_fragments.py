"""The date-fragment filter (connectors/rasa/nlu/date_fragments.py), on messages as DIET leaves them."""

from __future__ import annotations

import os

os.environ.setdefault("RASA_TELEMETRY_ENABLED", "false")

from rasa.engine.graph import ExecutionContext, GraphSchema  # noqa: E402
from rasa.engine.storage.local_model_storage import LocalModelStorage  # noqa: E402
from rasa.engine.storage.resource import Resource  # noqa: E402
from rasa.shared.nlu.training_data.message import Message  # noqa: E402

from connectors.rasa.nlu.date_fragments import DateFragmentFilter  # noqa: E402


def tag(text: str, entity: str, words: str) -> dict:
    start = text.index(words)
    return {"entity": entity, "start": start, "end": start + len(words), "value": words,
            "extractor": "DIETClassifier"}


def filtered(text: str, *entities: tuple[str, str]) -> list[str]:
    message = Message.build(text)
    message.set("entities", [tag(text, entity, words) for entity, words in entities], add_to_output=True)
    component = DateFragmentFilter.create(
        DateFragmentFilter.get_default_config(), LocalModelStorage.__new__(LocalModelStorage),
        Resource("date_fragments"), ExecutionContext(GraphSchema({}), "test"))
    [message] = component.process([message])
    return [f"{e['entity']}:{e['value']}" for e in message.get("entities")]


def test_a_lone_article_or_last_is_no_date() -> None:
    assert filtered("move the appointment to tomorrow morning", ("date", "the"), ("date", "tomorrow morning")) == [
        "date:tomorrow morning"]
    assert filtered("i ordered last week, order number 71822", ("date", "last")) == []
    assert filtered("see you at 3pm", ("time", "at"), ("time", "3pm")) == ["time:3pm"]


def test_an_opening_word_tagged_apart_is_joined_to_its_date() -> None:
    text = "can i switch it to next saturday or the 21st"
    assert filtered(text, ("date", "next"), ("date", "saturday"), ("date", "the"), ("date", "21st")) == [
        "date:next saturday", "date:the 21st"]
    # Only spaces between them, and only words that open a date: "on" stays out of "monday".
    assert filtered("next, saturday", ("date", "next"), ("date", "saturday")) == ["date:saturday"]
    assert filtered("on monday", ("date", "on"), ("date", "monday")) == ["date:monday"]


def test_real_dates_and_other_entities_pass() -> None:
    text = "book the haircut for the 14th, next friday or monday"
    tags = [("service", "haircut"), ("date", "the 14th"), ("date", "next friday"), ("date", "monday")]
    assert filtered(text, *tags) == ["service:haircut", "date:the 14th", "date:next friday", "date:monday"]
    # "the" as a product would be a product's business, not this filter's.
    assert filtered("do you sell the", ("product", "the")) == ["product:the"]
