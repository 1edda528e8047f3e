"""The product-mention extractor (connectors/rasa/nlu/product_mentions.py), on Rasa's Python.

Messages are handed over as the pipeline would (DIET's intent and entities already set); the
phrasings are customers' ones, the products mostly ones the catalogue does not carry.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("RASA_TELEMETRY_ENABLED", "false")

from rasa.engine.graph import ExecutionContext, GraphSchema  # noqa: E402
from rasa.engine.storage.local_model_storage import LocalModelStorage  # noqa: E402
from rasa.engine.storage.resource import Resource  # noqa: E402
from rasa.shared.nlu.training_data.formats.rasa_yaml import RasaYAMLReader  # noqa: E402
from rasa.shared.nlu.training_data.message import Message  # noqa: E402

from connectors.rasa.nlu.product_mentions import ProductMentionExtractor, mentions  # noqa: E402


def said(text: str) -> list[str]:
    return [text[start:end] for start, end in mentions(text)]


@pytest.mark.parametrize(
    "text, product",
    [
        ("do you sell perfume?", "perfume"),
        ("have you got dry shampoo", "dry shampoo"),
        ("any eyelash glue in stock?", "eyelash glue"),
        ("do u have sunscreen", "sunscreen"),
        ("looking for lip balm", "lip balm"),
        ("have you got any curling tongs", "curling tongs"),
        ("is there tea tree shampoo in your shop", "tea tree shampoo"),
        ("do you carry fake tan?", "fake tan"),
        ("do you stock rollers for my hair", "rollers"),
        ("Hi, my hair is really dry. Do you stock a keratin mask?", "keratin mask"),
        ("how much is a bottle of argan oil", "argan oil"),
        ("price of heat protectant?", "heat protectant"),
        ("hi there, do you have the argan conditioner in at the moment?", "argan conditioner"),
        ("can i buy a £50 gift card for my friend", "£50 gift card"),
    ],
)
def test_the_phrasing_shows_the_product(text: str, product: str) -> None:
    assert said(text) == [product]


@pytest.mark.parametrize(
    "text",
    [
        "do you sell anything for beards",
        "what have you got for thin hair",
        "is there a product you sell for frizz",
        "do you have any appointments tomorrow",
        "what shampoo would you recommend",
    ],
)
def test_no_product_where_the_phrasing_names_none(text: str) -> None:
    assert said(text) == []


def extractor() -> ProductMentionExtractor:
    """Untrained: every mention the phrasing shows is tagged."""
    return ProductMentionExtractor.create(
        ProductMentionExtractor.get_default_config(),
        LocalModelStorage.__new__(LocalModelStorage),
        Resource("product_mentions"),
        ExecutionContext(GraphSchema({}), "test"),
    )


def test_what_the_designers_leave_untagged_stays_untagged_after_loading(tmp_path: Path) -> None:
    """The annotation rule: products are tagged, categories ("shampoo", "gift cards") are not."""
    storage, resource = LocalModelStorage(tmp_path), Resource("product_mentions")
    data = RasaYAMLReader().reads(
        'version: "3.1"\nnlu:\n- intent: search_product\n  examples: |\n'
        "    - do you sell shampoo\n    - any gift cards available?\n"
        "    - do you sell [argan shampoo](product)\n    - have you got [beard oil](product)\n"
        "- intent: greet\n  examples: |\n    - do you have a minute\n"
    )
    config = ProductMentionExtractor.get_default_config()
    ProductMentionExtractor.create(config, storage, resource, ExecutionContext(GraphSchema({}), "test")).train(data)
    loaded = ProductMentionExtractor.load(config, storage, resource, ExecutionContext(GraphSchema({}), "test"))
    found = loaded.process([parsed(text, "search_product") for text in (
        "do you sell shampoos?", "have you got a gift card", "do you sell perfume", "do you sell a minute")])
    assert [[e["value"] for e in m.get("entities")] for m in found] == [[], [], ["perfume"], ["minute"]]


def parsed(text: str, intent: str, entities: list[dict] | None = None) -> Message:
    message = Message.build(text)
    message.set("intent", {"name": intent, "confidence": 0.95}, add_to_output=True)
    message.set("entities", entities or [], add_to_output=True)
    return message


def diet(entity: str, text: str, word: str, value: str | None = None) -> dict:
    start = text.index(word)
    return {"entity": entity, "start": start, "end": start + len(word), "value": value or word,
            "confidence_entity": 0.9, "extractor": "DIETClassifier"}


def test_a_product_the_catalogue_lacks_is_tagged_for_the_search() -> None:
    [message] = extractor().process([parsed("do you sell perfume?", "search_product")])
    assert message.get("entities") == [
        {"entity": "product", "start": 12, "end": 19, "value": "perfume", "extractor": "ProductMentionExtractor"}
    ]


def test_diet_s_tag_and_its_synonym_stay_when_the_phrasing_agrees() -> None:
    text = "do you stock hair gel"
    tag = diet("product", text, "hair gel", "styling gel")
    [message] = extractor().process([parsed(text, "search_product", [tag])])
    [product] = message.get("entities")
    assert (product["value"], product["confidence_entity"], product["extractor"]) == (
        "styling gel", 0.9, "ProductMentionExtractor")


def test_a_mention_replaces_a_shorter_tag_inside_it() -> None:
    text = "is there tea tree shampoo in your shop"
    [message] = extractor().process([parsed(text, "search_product", [diet("product", text, "shampoo")])])
    assert [e["value"] for e in message.get("entities")] == ["tea tree shampoo"]


def test_other_intents_keep_diet_s_products_and_get_no_mentions() -> None:
    text = "do you do nails"
    [message] = extractor().process([parsed(text, "list_services")])
    assert message.get("entities") == []
    cart = "add 2 beard oil to my basket"
    quantity, product = diet("quantity", cart, "2"), diet("product", cart, "beard oil")
    [message] = extractor().process([parsed(cart, "add_to_cart", [product, quantity])])
    assert [(e["entity"], e["extractor"]) for e in message.get("entities")] == [
        ("quantity", "DIETClassifier"), ("product", "ProductMentionExtractor")]


def test_button_payloads_are_left_alone() -> None:
    [message] = extractor().process([parsed('/search_product{"product": "hair"}', "search_product")])
    assert message.get("entities") == []
