"""Rasa's FallbackClassifier with a bar per write workflow: below it, the bot asks instead of acting.

A workflow that changes something for the customer (a booking, an order, their contact details)
must not start from a guess. For each such intent this classifier has its own confidence
threshold, and a ceiling on the out-of-domain score (out_of_domain.py): a prediction under its
threshold, or one the out-of-domain detector doubts, becomes `nlu_fallback` with the workflow kept
second in the ranking, where `action_fallback` finds it and asks "Did you want to …?" with Yes/No
buttons. The confidence bar is not applied to messages with entities: mid-form answers ("wednesday
morning ideally", "Chen Li") are often classified as the form's workflow with middling confidence,
and asking "Did you want to book?" in the middle of a booking would be wrong. The out-of-domain
ceiling is, unless the entity is one only this business's customers type (a name, a service…). Every other intent falls
back as Rasa's FallbackClassifier decides (one threshold, the ambiguity margin).
"""

from __future__ import annotations

from typing import Any

from rasa.engine.recipes.default_recipe import DefaultV1Recipe
from rasa.nlu.classifiers.fallback_classifier import FallbackClassifier
from rasa.shared.nlu.constants import ENTITIES, INTENT, INTENT_NAME_KEY, PREDICTED_CONFIDENCE_KEY
from rasa.shared.nlu.training_data.message import Message

from connectors.rasa.nlu.out_of_domain import SCORE_KEY


@DefaultV1Recipe.register([DefaultV1Recipe.ComponentType.INTENT_CLASSIFIER], is_trainable=False)
class WorkflowFallbackClassifier(FallbackClassifier):
    """nlu_fallback for low-confidence or doubtful write workflows, and as Rasa's otherwise."""

    @staticmethod
    def get_default_config() -> dict[str, Any]:
        return {
            **FallbackClassifier.get_default_config(),
            # intent -> the confidence it needs to start its workflow without asking.
            "workflow_thresholds": {},
            # A write workflow whose message scores this much or more as out-of-domain is asked about.
            "workflow_max_out_of_domain": 0.4,
        }

    def _should_fallback(self, message: Message) -> bool:
        if super()._should_fallback(message):
            return True
        intent = message.get(INTENT) or {}
        thresholds: dict[str, float] = self.component_config["workflow_thresholds"]
        name = intent.get(INTENT_NAME_KEY)
        if name not in thresholds:
            return False
        detector = message.get(SCORE_KEY) or {}
        score = detector.get("score")
        ceiling = float(self.component_config["workflow_max_out_of_domain"])
        if score is not None and not detector.get("in_domain_entity") and float(score) >= ceiling:
            return True
        # A message that carries a date, a time, a service, a name… answers a form's question or
        # states the request in full: the confidence bar is for the bare "I want to …".
        if message.get(ENTITIES):
            return False
        return float(intent.get(PREDICTED_CONFIDENCE_KEY) or 0.0) < float(thresholds[name])
