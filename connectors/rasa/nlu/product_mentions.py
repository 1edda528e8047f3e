"""Product mentions: the thing a customer asks the shop for, whether the catalogue has it or not.

DIET tags the products it was trained on ("argan shampoo", "beard oil") and their spellings, but a
product the shop has never carried ("do you sell perfume?", "any eyelash glue in stock?") is a word
it has never seen in that place, so it tags nothing, and the search can't answer "we don't carry
perfume". Such questions come in a handful of phrasings, so this component reads the mention off
the phrasing: in a `search_product` message, the words after "do you sell / stock / carry / have",
"have you got (any)", "looking for", "is there", "how much is the", "price of", … up to where the
noun phrase ends (punctuation, "in stock", "for my hair", "please", …).

A phrase the designers leave untagged in that place in their examples is no product mention: the
annotation rule tags products, not categories ("do you sell shampoo" stays untagged), and training
keeps the list of such phrases.

It owns the `product` entity of the parse result: DIET's product tags are kept where the phrasing
says nothing else, a mention read off the phrasing is added where DIET found none, and a mention
that contains a shorter DIET tag ("tea tree shampoo" around DIET's "shampoo") replaces it. Every
product entity leaves this component with its name as `extractor` (DIET's tags keep their
confidence), so the figures of `rasa test nlu` for `product` are those of what the bot acts on.
"""

from __future__ import annotations

import json
import logging
import re
from typing import Any

from rasa.engine.graph import ExecutionContext, GraphComponent
from rasa.engine.recipes.default_recipe import DefaultV1Recipe
from rasa.engine.storage.resource import Resource
from rasa.engine.storage.storage import ModelStorage
from rasa.nlu.extractors.extractor import EntityExtractorMixin
from rasa.shared.nlu.constants import (
    ENTITIES,
    ENTITY_ATTRIBUTE_END,
    ENTITY_ATTRIBUTE_START,
    ENTITY_ATTRIBUTE_TYPE,
    ENTITY_ATTRIBUTE_VALUE,
    EXTRACTOR,
    INTENT,
    INTENT_NAME_KEY,
    TEXT,
)
from rasa.shared.nlu.training_data.message import Message
from rasa.shared.nlu.training_data.training_data import TrainingData

logger = logging.getLogger(__name__)

PRODUCT = "product"
UNTAGGED_FILE = "untagged_phrases.json"

# What comes before a product in a question about one; "u", "ya" and missing apostrophes as typed.
TRIGGERS = [
    r"do(?:es)? (?:you|u|ya|the shop|your shop) (?:guys )?(?:sell|stock|carry|have|do|supply|offer|keep)",
    r"(?:have|got|did) (?:you|u|ya) (?:got|get|still got)",
    r"(?:you|u|ya) got",
    r"(?:can|could|may) (?:i|we) (?:buy|get|order|purchase)",
    r"(?:i(?:'?m| am)?|im) (?:looking|lookng|searching) for",
    r"^(?:hi|hey|hello)?,? *(?:looking|lookng|searching) for",
    r"(?:i )?(?:want|need|would like|wanna) to buy",
    r"is there",
    r"are there",
    r"^any",
    r"^got any",
    r"how much (?:is|are|r|for|would|does|dose|do)",
    r"how much do (?:you|u) charge for",
    r"(?:what(?:'?s| is)|whats) the (?:price|cost) (?:of|on|for)",
    r"price (?:of|on|for)",
    r"cost of",
]
# A trigger counts where it starts a word and is followed by a space.
TRIGGER_PATTERNS = [re.compile(rf"(?:^|(?<=[\s,.!?]))(?:{trigger})(?=\s)") for trigger in TRIGGERS]
# Words a mention never starts with: an article or quantifier before it is left out of it...
LEADING = {
    "a", "an", "any", "some", "the", "your", "ur", "you", "u", "more", "of", "bottle", "bottles", "tube", "tubes",
    "pot", "pots", "pack", "packs", "jar", "box", "tub", "pair", "couple", "few", "kind", "type", "good",
}
# ...and the mention ends before any of these (or punctuation): what follows a product, not the product.
ENDINGS = {
    "in", "for", "at", "on", "to", "from", "with", "and", "or", "but", "please", "pls", "plz", "thanks",
    "thx", "ta", "today", "now", "anymore", "available", "availble", "avail", "cost", "costs", "priced",
    "there", "here", "left", "still", "by", "that", "which", "if", "cos", "because", "i", "you",
    "u", "is", "are", "would", "does", "do", "be", "this", "these",
}
# A mention that starts with one of these is no product: "do you sell anything for beards".
NOT_PRODUCTS = {
    "anything", "something", "stuff", "things", "products", "product", "items", "item", "it", "them",
    "that", "this", "one", "ones", "those", "these", "what", "much", "many", "stock", "sale", "shop",
    "store", "way", "chance", "time", "appointment", "appointments", "slot", "slots", "space", "charge",
    "chargin", "charging", "offer", "offers", "price", "prices", "cost", "discount", "discounts", "deal",
    "deals", "delivery", "postage", "shipping", "sales", "promo", "promotion", "code", "range",
    "selection", "brand", "brands", "colour", "colours", "color", "colors", "size", "sizes", "difference",
    "problem", "issue", "option", "options", "alternative", "wait", "queue", "parking",
}
MAX_WORDS = 4
WORD = re.compile(r"[\w£'&+-]+")
# The next word and the spaces before it; anything else between two words (punctuation) ends a phrase.
NEXT_WORD = re.compile(r"( *)([\w£'&+-]+)")


def mentions(text: str) -> list[tuple[int, int]]:
    """(start, end) of each product mention the phrasing shows in `text`."""
    lowered = text.lower()
    found: list[tuple[int, int]] = []
    for trigger in TRIGGER_PATTERNS:
        for match in trigger.finditer(lowered):
            span = _phrase_after(lowered, match.end())
            if span and not any(start < span[1] and span[0] < end for start, end in found):
                found.append(span)
    return sorted(found)


def _phrase_after(text: str, position: int) -> tuple[int, int] | None:
    """The noun phrase that starts at `position`: up to MAX_WORDS words, no article, no ending."""
    words: list[tuple[int, int]] = []
    cursor = position
    while (match := NEXT_WORD.match(text, cursor)) and (not words or match.group(1)):
        word, cursor = match.group(2), match.end()
        if not words and word in LEADING:
            continue
        if word in ENDINGS or len(words) == MAX_WORDS:
            break
        words.append(match.span(2))
    if not words:
        return None
    start, end = words[0][0], words[-1][1]
    if text[start : words[0][1]] in NOT_PRODUCTS or text[start:end].isdigit():
        return None
    return start, end


def key(phrase: str) -> str:
    """Lower case, each word without a plural s: "Gift Cards" and "gift card" are one phrase."""
    words = (word.lower() for word in WORD.findall(phrase))
    return " ".join(word[:-1] if len(word) > 3 and word.endswith("s") and not word.endswith("ss") else word
                    for word in words)


@DefaultV1Recipe.register([DefaultV1Recipe.ComponentType.ENTITY_EXTRACTOR], is_trainable=True)
class ProductMentionExtractor(GraphComponent, EntityExtractorMixin):
    """Tags the product a `search_product` message asks about, catalogue or not.

    Training reads the designers' annotation rule off their examples: a phrase in the place of a
    product that they left untagged ("do you sell shampoo", "any gift cards available?": a
    category, by the rule in docs/bot.md) is never tagged by this component either.
    """

    @staticmethod
    def get_default_config() -> dict[str, Any]:
        return {
            # Intents whose messages are read for mentions; DIET's product tags pass in every intent.
            "intents": ["search_product"],
        }

    def __init__(
        self,
        config: dict[str, Any],
        model_storage: ModelStorage,
        resource: Resource,
        untagged: set[str] | None = None,
    ) -> None:
        self.component_config = config
        self._model_storage = model_storage
        self._resource = resource
        self._untagged = untagged or set()

    @classmethod
    def create(
        cls,
        config: dict[str, Any],
        model_storage: ModelStorage,
        resource: Resource,
        execution_context: ExecutionContext,
    ) -> ProductMentionExtractor:
        return cls(config, model_storage, resource)

    def train(self, training_data: TrainingData) -> Resource:
        intents = set(self.component_config["intents"])
        untagged: set[str] = set()
        for example in training_data.intent_examples:
            if example.get(INTENT) not in intents:
                continue
            text = example.get(TEXT) or ""
            tagged = [e for e in example.get(ENTITIES) or [] if e.get(ENTITY_ATTRIBUTE_TYPE) == PRODUCT]
            for start, end in mentions(text):
                if not any(e[ENTITY_ATTRIBUTE_START] < end and start < e[ENTITY_ATTRIBUTE_END] for e in tagged):
                    untagged.add(key(text[start:end]))
        logger.info("product mentions: %d phrases the designers leave untagged", len(untagged))
        with self._model_storage.write_to(self._resource) as directory:
            (directory / UNTAGGED_FILE).write_text(json.dumps(sorted(untagged), indent=1))
        self._untagged = untagged
        return self._resource

    @classmethod
    def load(
        cls,
        config: dict[str, Any],
        model_storage: ModelStorage,
        resource: Resource,
        execution_context: ExecutionContext,
        **kwargs: Any,
    ) -> ProductMentionExtractor:
        with model_storage.read_from(resource) as directory:
            untagged = set(json.loads((directory / UNTAGGED_FILE).read_text()))
        return cls(config, model_storage, resource, untagged)

    def process(self, messages: list[Message]) -> list[Message]:
        intents = set(self.component_config["intents"])
        for message in messages:
            text = message.get(TEXT) or ""
            entities = list(message.get(ENTITIES) or [])
            tagged = [entity for entity in entities if entity.get(ENTITY_ATTRIBUTE_TYPE) == PRODUCT]
            others = [entity for entity in entities if entity.get(ENTITY_ATTRIBUTE_TYPE) != PRODUCT]
            intent = (message.get(INTENT) or {}).get(INTENT_NAME_KEY)
            if intent in intents and not text.startswith("/"):
                tagged = self._merge(text, tagged)
            if not tagged:  # none from DIET, none read off the phrasing: nothing to settle
                continue
            products = [{**entity, EXTRACTOR: self.name} for entity in tagged]
            merged = sorted(others + products, key=lambda entity: entity.get(ENTITY_ATTRIBUTE_START) or 0)
            message.set(ENTITIES, merged, add_to_output=True)
        return messages

    def _merge(self, text: str, tagged: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """DIET's tags plus the phrasing's mentions: a mention wins over a shorter tag inside it."""
        kept = list(tagged)
        for start, end in mentions(text):
            if key(text[start:end]) in self._untagged:
                continue
            inside = [e for e in kept if start <= e[ENTITY_ATTRIBUTE_START] and e[ENTITY_ATTRIBUTE_END] <= end]
            overlapping = [
                e
                for e in kept
                if e[ENTITY_ATTRIBUTE_START] < end and start < e[ENTITY_ATTRIBUTE_END] and e not in inside
            ]
            if overlapping or any(
                e[ENTITY_ATTRIBUTE_START] == start and e[ENTITY_ATTRIBUTE_END] == end for e in inside
            ):
                # DIET's boundary crosses the phrasing's, or agrees with it: DIET's tag (and its value) stays.
                continue
            kept = [e for e in kept if e not in inside]
            kept.append(
                {
                    ENTITY_ATTRIBUTE_TYPE: PRODUCT,
                    ENTITY_ATTRIBUTE_START: start,
                    ENTITY_ATTRIBUTE_END: end,
                    ENTITY_ATTRIBUTE_VALUE: text[start:end],
                }
            )
        return kept
