"""No date or time that is a lone function word: "the" of "the 14th", "last" of "last week".

DIET tags dates token by token, and now and then a single word at the edge of a date phrase comes
out as an entity of its own: "move the appointment to tomorrow morning" gave a date "the",
"i ordered last week, order number 71822" a date "last", "switch it to next saturday" a date
"next" beside a date "saturday". Such a tag names no day, and the day beside it loses its
meaning ("saturday" is not "next saturday"). This component, for `date` and `time` entities:
- joins a word that opens a date phrase ("the", "this", "next", "last", …) to the date right
  after it, separated by spaces only: "next" + "saturday" -> "next saturday";
- drops what is left whose whole text is one word of the kind that only stands beside a date
  (articles, prepositions, "last", "next", …).
Every other entity, and every longer date, passes untouched.
"""

from __future__ import annotations

from typing import Any

from rasa.engine.graph import ExecutionContext, GraphComponent
from rasa.engine.recipes.default_recipe import DefaultV1Recipe
from rasa.engine.storage.resource import Resource
from rasa.engine.storage.storage import ModelStorage
from rasa.shared.nlu.constants import (
    ENTITIES,
    ENTITY_ATTRIBUTE_END,
    ENTITY_ATTRIBUTE_START,
    ENTITY_ATTRIBUTE_TYPE,
    ENTITY_ATTRIBUTE_VALUE,
    TEXT,
)
from rasa.shared.nlu.training_data.message import Message

# Words that open a date phrase, joined to the date that follows them.
OPENERS = {"the", "this", "next", "last", "coming", "following", "that"}
FRAGMENTS = {
    "the", "a", "an", "this", "that", "these", "next", "last", "coming", "following", "on", "at", "in", "of",
    "for", "by", "to", "from", "until", "till", "before", "after", "around", "about", "between", "and", "or",
    "same", "every", "each", "some", "any",
}


def is_fragment(text: str) -> bool:
    """Whether `text` is a lone word that names no day or time."""
    return text.strip(" ,.!?").lower() in FRAGMENTS


@DefaultV1Recipe.register([DefaultV1Recipe.ComponentType.ENTITY_EXTRACTOR], is_trainable=False)
class DateFragmentFilter(GraphComponent):
    """Joins a date's opening word to it; drops `date` / `time` entities that are a lone function word."""

    @staticmethod
    def get_default_config() -> dict[str, Any]:
        return {"entities": ["date", "time"]}

    def __init__(self, config: dict[str, Any]) -> None:
        self.component_config = config

    @classmethod
    def create(
        cls,
        config: dict[str, Any],
        model_storage: ModelStorage,
        resource: Resource,
        execution_context: ExecutionContext,
    ) -> DateFragmentFilter:
        return cls(config)

    def process(self, messages: list[Message]) -> list[Message]:
        kinds = set(self.component_config["entities"])
        for message in messages:
            text = message.get(TEXT) or ""
            entities = message.get(ENTITIES) or []
            kept = self._joined(text, sorted(entities, key=lambda e: e.get(ENTITY_ATTRIBUTE_START) or 0), kinds)
            kept = [
                entity
                for entity in kept
                if entity.get(ENTITY_ATTRIBUTE_TYPE) not in kinds
                or not is_fragment(text[entity[ENTITY_ATTRIBUTE_START] : entity[ENTITY_ATTRIBUTE_END]])
            ]
            if kept != entities:
                message.set(ENTITIES, kept, add_to_output=True)
        return messages

    @staticmethod
    def _joined(text: str, entities: list[dict[str, Any]], kinds: set[str]) -> list[dict[str, Any]]:
        """An opener tagged on its own, joined to the same kind of entity right after it."""
        joined: list[dict[str, Any]] = []
        for entity in entities:
            before = joined[-1] if joined else None
            if (
                before is not None
                and entity.get(ENTITY_ATTRIBUTE_TYPE) in kinds
                and before.get(ENTITY_ATTRIBUTE_TYPE) == entity.get(ENTITY_ATTRIBUTE_TYPE)
                and text[before[ENTITY_ATTRIBUTE_START] : before[ENTITY_ATTRIBUTE_END]].lower() in OPENERS
                and not text[before[ENTITY_ATTRIBUTE_END] : entity[ENTITY_ATTRIBUTE_START]].strip(" ")
            ):
                start, end = before[ENTITY_ATTRIBUTE_START], entity[ENTITY_ATTRIBUTE_END]
                joined[-1] = {**entity, ENTITY_ATTRIBUTE_START: start, ENTITY_ATTRIBUTE_END: end,
                              ENTITY_ATTRIBUTE_VALUE: text[start:end]}
                continue
            joined.append(entity)
        return joined
