"""Out-of-domain detection: "not something this business does" told apart from its workflows.

DIET learns the business's intents from a few thousand examples and is confident about almost
anything, including "can you add a bag to my reservation" (add_to_cart, 0.99). This component is a
second opinion trained for one question only: is this message in the business's domain at all?

It is a binary classifier (scikit-learn: TF-IDF of words and character n-grams, logistic
regression) trained on
- in-domain: every training example of the designers' data except `out_of_scope`;
- out-of-domain: the designers' `out_of_scope` examples plus the corpus files in its config
  (rasa_project/ood/: public benchmark train splits and messages to other businesses). Those files
  are not DIET's training data, so they cost DIET nothing in accuracy or training time.

At run time, when the out-of-domain score reaches `threshold`, the message's intent becomes
`out_of_scope` (the dialogue's polite refusal with the offer of a person); the score is always put
on the parse result as `out_of_domain`, where the workflow gate (workflow_fallback.py) reads it.
Messages with an entity only this business's customers type (a service or product, an order
reference, an e-mail, a phone number, a name) are left to DIET unless the score is near certain
(`certain_threshold`): they answer a form's question more often than they ask something else.
"""

from __future__ import annotations

import hashlib
import logging
import re
import string
from pathlib import Path
from typing import Any

import joblib
from rasa.engine.graph import ExecutionContext, GraphComponent
from rasa.engine.recipes.default_recipe import DefaultV1Recipe
from rasa.engine.storage.resource import Resource
from rasa.engine.storage.storage import ModelStorage
from rasa.nlu.classifiers.classifier import IntentClassifier
from rasa.shared.nlu.constants import (
    ENTITIES,
    ENTITY_ATTRIBUTE_TYPE,
    INTENT,
    INTENT_NAME_KEY,
    INTENT_RANKING_KEY,
    PREDICTED_CONFIDENCE_KEY,
    TEXT,
)
from rasa.shared.nlu.training_data.message import Message
from rasa.shared.nlu.training_data.training_data import TrainingData
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline, make_pipeline, make_union

logger = logging.getLogger(__name__)

OUT_OF_SCOPE = "out_of_scope"
# Parse-result key with the detector's score (and the threshold it was compared with).
SCORE_KEY = "out_of_domain"
MODEL_FILE = "out_of_domain.joblib"
ANNOTATION = re.compile(r"\[([^\]]*)\](?:\([^)]*\)|\{[^}]*\})")
PUNCTUATION = str.maketrans("", "", string.punctuation)


def normalise(text: str) -> str:
    """Lower case, no punctuation, single spaces: the benchmark corpora are written so."""
    return " ".join(ANNOTATION.sub(lambda match: match.group(1), text).lower().translate(PUNCTUATION).split())


def read_corpus(path: Path) -> list[str]:
    """One message a line; blank lines and lines starting with # are skipped."""
    lines = (line.strip() for line in path.read_text(encoding="utf-8").splitlines())
    return [line for line in lines if line and not line.startswith("#")]


def build_classifier(c: float) -> Pipeline:
    features = make_union(
        TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True),
        TfidfVectorizer(analyzer="char_wb", ngram_range=(2, 5), sublinear_tf=True, min_df=2),
    )
    return make_pipeline(features, LogisticRegression(C=c, class_weight="balanced", max_iter=3000))


@DefaultV1Recipe.register([DefaultV1Recipe.ComponentType.INTENT_CLASSIFIER], is_trainable=True)
class OutOfDomainClassifier(GraphComponent, IntentClassifier):
    """Turns messages this business does not serve into `out_of_scope`."""

    @staticmethod
    def get_default_config() -> dict[str, Any]:
        return {
            # Files of out-of-domain messages, one a line, relative to the working directory.
            "corpus": [],
            # Score from which a message is out_of_scope.
            "threshold": 0.7,
            # Inverse regularisation strength of the logistic regression.
            "C": 4.0,
            # Entities that mark a message as this business's (see the module docstring)...
            "in_domain_entities": ["service", "product", "order_id", "email", "phone_number", "person_name"],
            # ...unless the score is this high: DIET tags "bread" in "add bread to my tesco shopping"
            # as a service too.
            "certain_threshold": 0.95,
        }

    def __init__(
        self,
        config: dict[str, Any],
        model_storage: ModelStorage,
        resource: Resource,
        classifier: Pipeline | None = None,
    ) -> None:
        self.component_config = config
        self._model_storage = model_storage
        self._resource = resource
        self._classifier = classifier

    @classmethod
    def create(
        cls,
        config: dict[str, Any],
        model_storage: ModelStorage,
        resource: Resource,
        execution_context: ExecutionContext,
    ) -> OutOfDomainClassifier:
        return cls(config, model_storage, resource)

    @classmethod
    def fingerprint_addon(cls, config: dict[str, Any]) -> str | None:
        """The corpus files are not graph inputs: their contents must retrain the component."""
        digest = hashlib.sha256()
        for name in config.get("corpus") or []:
            digest.update(Path(name).read_bytes())
        return digest.hexdigest()

    def train(self, training_data: TrainingData) -> Resource:
        in_domain, out_of_domain = [], []
        for example in training_data.intent_examples:
            text = normalise(example.get(TEXT) or "")
            if text:
                (out_of_domain if example.get(INTENT) == OUT_OF_SCOPE else in_domain).append(text)
        for name in self.component_config["corpus"]:
            path = Path(name)
            if not path.is_file():
                raise FileNotFoundError(
                    f"OutOfDomainClassifier: corpus file {name} not found (run from the repository root)"
                )
            out_of_domain += [normalise(line) for line in read_corpus(path)]
        if not in_domain or not out_of_domain:
            raise ValueError("OutOfDomainClassifier needs in-domain examples and out_of_scope examples or a corpus")
        classifier = build_classifier(float(self.component_config["C"]))
        classifier.fit(in_domain + out_of_domain, [0] * len(in_domain) + [1] * len(out_of_domain))
        logger.info(
            "out-of-domain classifier: %d in-domain, %d out-of-domain messages", len(in_domain), len(out_of_domain)
        )
        with self._model_storage.write_to(self._resource) as directory:
            joblib.dump(classifier, directory / MODEL_FILE)
        self._classifier = classifier
        return self._resource

    @classmethod
    def load(
        cls,
        config: dict[str, Any],
        model_storage: ModelStorage,
        resource: Resource,
        execution_context: ExecutionContext,
        **kwargs: Any,
    ) -> OutOfDomainClassifier:
        with model_storage.read_from(resource) as directory:
            classifier = joblib.load(directory / MODEL_FILE)
        return cls(config, model_storage, resource, classifier)

    def process(self, messages: list[Message]) -> list[Message]:
        if self._classifier is None:
            return messages
        threshold = float(self.component_config["threshold"])
        certain = float(self.component_config["certain_threshold"])
        owned = set(self.component_config["in_domain_entities"])
        for message in messages:
            text = normalise(message.get(TEXT) or "")
            intent = message.get(INTENT) or {}
            # "/intent" payloads (buttons) are already decided.
            if not text or (message.get(TEXT) or "").startswith("/"):
                continue
            score = float(self._classifier.predict_proba([text])[0][1])
            ours = any(entity.get(ENTITY_ATTRIBUTE_TYPE) in owned for entity in message.get(ENTITIES) or [])
            message.set(
                SCORE_KEY,
                {"score": round(score, 4), "threshold": threshold, "in_domain_entity": ours},
                add_to_output=True,
            )
            if score < (certain if ours else threshold) or intent.get(INTENT_NAME_KEY) == OUT_OF_SCOPE:
                continue
            self._reject(message, score)
        return messages

    @staticmethod
    def _reject(message: Message, score: float) -> None:
        """out_of_scope on top with the detector's score; DIET's ranking kept below, scaled."""
        ranking = [
            {**item, PREDICTED_CONFIDENCE_KEY: float(item.get(PREDICTED_CONFIDENCE_KEY) or 0.0) * (1.0 - score)}
            for item in message.get(INTENT_RANKING_KEY) or []
            if item.get(INTENT_NAME_KEY) != OUT_OF_SCOPE
        ]
        top = {INTENT_NAME_KEY: OUT_OF_SCOPE, PREDICTED_CONFIDENCE_KEY: score}
        message.set(INTENT, top, add_to_output=True)
        message.set(INTENT_RANKING_KEY, [top, *ranking], add_to_output=True)
