"""The pipeline's own NLU components (connectors/rasa/nlu), on Rasa's Python.

The out-of-domain detector trained on a small in-domain set and a corpus file, then run on
messages as the pipeline would hand them over (DIET's intent and ranking already set); the
per-workflow fallback on predictions with the confidences and scores that decide it.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("RASA_TELEMETRY_ENABLED", "false")

from rasa.engine.graph import ExecutionContext, GraphSchema  # noqa: E402
from rasa.engine.storage.local_model_storage import LocalModelStorage  # noqa: E402
from rasa.engine.storage.resource import Resource  # noqa: E402
from rasa.shared.nlu.training_data.message import Message  # noqa: E402
from rasa.shared.nlu.training_data.training_data import TrainingData  # noqa: E402

from connectors.rasa.nlu.out_of_domain import SCORE_KEY, OutOfDomainClassifier  # noqa: E402
from connectors.rasa.nlu.workflow_fallback import WorkflowFallbackClassifier  # noqa: E402

IN_DOMAIN = {
    "book_appointment": [
        "book me a haircut tomorrow", "can i get a manicure on friday", "i'd like an appointment for a massage",
        "book a facial for saturday morning", "i want to book a colour", "get me in for a trim next week",
    ],
    "order_status": [
        "where is my order", "has my order shipped", "track my parcel from you", "when will my order arrive"
    ],
    "search_product": [
        "do you sell shampoo", "have you got argan oil", "what conditioners do you stock", "any hair masks"
    ],
}
OUT_OF_SCOPE = ["what's the weather like", "tell me about football"]
CORPUS = [
    "what is my bank balance", "transfer money to my savings", "book a flight to paris", "find me a hotel in rome",
    "what is the capital of peru", "how many miles to the moon", "set an alarm for 7am", "check my credit score",
    "report my card stolen", "how do i change my car oil", "book a table for two at an italian", "what's 15 times 7",
    "play some jazz music", "translate hello into german", "when is my next payday", "how much vacation do i have",
]


@pytest.fixture
def storage(tmp_path: Path) -> LocalModelStorage:
    (tmp_path / "storage").mkdir()
    return LocalModelStorage(tmp_path / "storage")


def context() -> ExecutionContext:
    return ExecutionContext(GraphSchema({}), "test")


def trained(storage: LocalModelStorage, tmp_path: Path, **config) -> OutOfDomainClassifier:
    corpus = tmp_path / "corpus.txt"
    corpus.write_text("# a comment line\n" + "\n".join(CORPUS) + "\n")
    examples = [Message.build(text, intent) for intent, texts in IN_DOMAIN.items() for text in texts]
    examples += [Message.build(text, "out_of_scope") for text in OUT_OF_SCOPE]
    full = {**OutOfDomainClassifier.get_default_config(), "corpus": [str(corpus)], "threshold": 0.5, **config}
    resource = Resource("ood")
    detector = OutOfDomainClassifier.create(full, storage, resource, context())
    detector.train(TrainingData(examples))
    return OutOfDomainClassifier.load(full, storage, resource, context())


def parsed(text: str, intent: str, confidence: float = 0.99, entities=None) -> Message:
    message = Message.build(text)
    message.set("intent", {"name": intent, "confidence": confidence}, add_to_output=True)
    message.set("intent_ranking", [{"name": intent, "confidence": confidence}, {"name": "greet", "confidence": 0.01}])
    message.set("entities", entities or [], add_to_output=True)
    return message


def test_a_request_to_another_business_becomes_out_of_scope(storage, tmp_path) -> None:
    detector = trained(storage, tmp_path)
    (message,) = detector.process([parsed("transfer money from my bank account to paris", "book_appointment")])
    assert message.get("intent")["name"] == "out_of_scope"
    score = message.get(SCORE_KEY)["score"]
    assert message.get("intent")["confidence"] == pytest.approx(score, abs=1e-4) and score >= 0.5
    ranking = message.get("intent_ranking")
    # DIET's guess stays in the ranking, below, scaled by what the detector left of it.
    assert [item["name"] for item in ranking] == ["out_of_scope", "book_appointment", "greet"]
    assert ranking[1]["confidence"] == pytest.approx(0.99 * (1 - score), abs=1e-3)


def test_the_business_s_own_requests_pass_with_their_score(storage, tmp_path) -> None:
    detector = trained(storage, tmp_path)
    (message,) = detector.process([parsed("book me a manicure tomorrow", "book_appointment")])
    assert message.get("intent")["name"] == "book_appointment"
    assert message.get(SCORE_KEY)["score"] < 0.5 and message.get(SCORE_KEY)["threshold"] == 0.5


def test_an_entity_only_our_customers_type_keeps_the_message_in_domain(storage, tmp_path) -> None:
    detector = trained(storage, tmp_path, threshold=0.0)  # everything would be rejected...
    email = [{"entity": "email", "value": "tom_b@mail.net", "start": 9, "end": 23}]
    (kept,) = detector.process([parsed("it's now tom_b@mail.net", "update_contact", entities=email)])
    assert kept.get("intent")["name"] == "update_contact"  # ...but an e-mail address answers our question
    (dropped,) = detector.process([parsed("it's now tom_b@mail.net", "update_contact")])
    assert dropped.get("intent")["name"] == "out_of_scope"


def test_button_payloads_are_not_second_guessed(storage, tmp_path) -> None:
    detector = trained(storage, tmp_path, threshold=0.0)
    (message,) = detector.process([parsed('/book_appointment{"service": "haircut"}', "book_appointment", 1.0)])
    assert message.get("intent")["name"] == "book_appointment" and message.get(SCORE_KEY) is None


def test_a_corpus_edit_changes_the_fingerprint_and_a_missing_corpus_is_named(storage, tmp_path) -> None:
    corpus = tmp_path / "c.txt"
    corpus.write_text("book a flight\n")
    before = OutOfDomainClassifier.fingerprint_addon({"corpus": [str(corpus)]})
    corpus.write_text("book a flight\nbook a hotel\n")
    assert OutOfDomainClassifier.fingerprint_addon({"corpus": [str(corpus)]}) != before
    config = {**OutOfDomainClassifier.get_default_config(), "corpus": [str(tmp_path / "missing.txt")]}
    detector = OutOfDomainClassifier.create(config, storage, Resource("x"), context())
    with pytest.raises(FileNotFoundError, match="missing.txt"):
        detector.train(TrainingData([Message.build("book me in", "book_appointment")]))


def gate(**config) -> WorkflowFallbackClassifier:
    full = {
        **WorkflowFallbackClassifier.get_default_config(),
        "threshold": 0.5,
        "ambiguity_threshold": 0.1,
        "workflow_thresholds": {"book_appointment": 0.7, "cancel_order": 0.8},
        "workflow_max_out_of_domain": 0.4,
        **config,
    }
    return WorkflowFallbackClassifier(full)


def top(message: Message) -> str:
    return message.get("intent")["name"]


@pytest.mark.parametrize(
    ("intent", "confidence", "expected"),
    [
        ("book_appointment", 0.69, "nlu_fallback"),  # under its workflow's bar
        ("book_appointment", 0.71, "book_appointment"),
        ("cancel_order", 0.79, "nlu_fallback"),  # a stricter bar for a cancellation
        ("order_status", 0.55, "order_status"),  # not a write workflow: Rasa's 0.5 only
        ("order_status", 0.45, "nlu_fallback"),
    ],
)
def test_each_write_workflow_has_its_own_bar(intent, confidence, expected) -> None:
    (message,) = gate().process([parsed("something", intent, confidence)])
    assert top(message) == expected
    if expected == "nlu_fallback":
        # The workflow stays second in the ranking: action_fallback asks about it.
        assert [item["name"] for item in message.get("intent_ranking")][:2] == ["nlu_fallback", intent]


def test_a_workflow_the_detector_doubts_is_asked_about() -> None:
    doubted = parsed("book a yoga class", "book_appointment", 0.95)
    doubted.set(SCORE_KEY, {"score": 0.45, "threshold": 0.7, "in_domain_entity": False})
    clear = parsed("book a haircut", "book_appointment", 0.95)
    clear.set(SCORE_KEY, {"score": 0.05, "threshold": 0.7, "in_domain_entity": False})
    assert [top(m) for m in gate().process([doubted, clear])] == ["nlu_fallback", "book_appointment"]


def test_a_message_with_entities_is_left_to_rasa_s_own_threshold() -> None:
    # "wednesday morning ideally" answering the booking form: middling confidence, a date entity.
    answer = parsed("wednesday morning ideally", "book_appointment", 0.55, [{"entity": "date", "value": "wednesday"}])
    assert top(gate().process([answer])[0]) == "book_appointment"
    unsure = parsed("wednesday", "book_appointment", 0.3, [{"entity": "date", "value": "wednesday"}])
    assert top(gate().process([unsure])[0]) == "nlu_fallback"


def test_a_near_certain_score_overrules_an_entity_diet_tagged(storage, tmp_path) -> None:
    detector = trained(storage, tmp_path, threshold=0.0, certain_threshold=0.0)
    bread = [{"entity": "service", "value": "bread", "start": 8, "end": 13}]
    (message,) = detector.process([parsed("add milk and bread to my tesco shopping", "add_to_cart", entities=bread)])
    assert message.get("intent")["name"] == "out_of_scope" and message.get(SCORE_KEY)["in_domain_entity"] is True


def test_a_dated_request_the_detector_doubts_is_still_asked_about() -> None:
    yoga = parsed("book a yoga class for thursday evening", "book_appointment", 0.94, [{"entity": "date"}])
    yoga.set(SCORE_KEY, {"score": 0.6, "threshold": 0.7, "in_domain_entity": False})
    named = parsed("Chen Li", "update_contact", 0.97, [{"entity": "person_name"}])
    named.set(SCORE_KEY, {"score": 0.49, "threshold": 0.7, "in_domain_entity": True})
    full = {"update_contact": 0.6, "book_appointment": 0.6}
    assert [top(m) for m in gate(workflow_thresholds=full).process([yoga, named])] == ["nlu_fallback", "update_contact"]
