"""Three costs of the Rasa 3.6 server that buy nothing here, removed, each found by profiling (py-spy).

1. Model loading: build the TensorFlow weights without tracing a training graph.

Rasa 3.6 (`rasa.utils.tensorflow.models.RasaModel.load`) builds each TensorFlow model it
loads (DIETClassifier, ResponseSelector) by fitting one example through Keras, so that every
weight and optimizer slot exists before the checkpoint is read. Keras traces the whole
training step into a graph to do that: on a 2-core machine that is about 50 of the 70 s a
start takes, and a server never trains. Here the same one-example step runs eagerly (the same
code, so the same weights and slots get built), then the model is switched back to the
graph mode of its configuration before the checkpoint is loaded and the prediction function
is traced, exactly as Rasa does. Predictions are unchanged; only the start is shorter.

2. Custom action results: validate them with a validator built once.

For every custom action call, `RemoteAction._validate_action_result` runs
`jsonschema.validate(result, schema)`, which first checks the (constant) schema against
the JSON Schema meta-schema and builds a new validator: over half of the Rasa server's
CPU in a realistic turn. Here the validator is built once and each result is validated
against the same schema, raising the same (best-match) error with Rasa's hint.

3. Event deserialisation: look event types up in a table.

`Event.resolve_by_type` walks the whole Event class hierarchy (`all_subclasses`, with an
`inspect.isabstract` per class) for every event it deserialises, and a tracker load
deserialises every event of the session: about 6 % of a turn. The table is built from the
same walk, once, keeping its first match for each name as the walk does.

Installed by the ReviewBot input channel when the Rasa server creates it (before the model
loads); `rasa train`, `rasa test` and fine-tuning keep Rasa's own paths.
"""

from __future__ import annotations

import logging
from typing import Any

log = logging.getLogger(__name__)
_installed = False


def install() -> None:
    """Apply both to this process (idempotent)."""
    global _installed
    if _installed:
        return
    _load_models_without_tracing_training()
    _validate_action_results_with_one_validator()
    _resolve_event_types_from_a_table()
    _installed = True


def _load_models_without_tracing_training() -> None:
    import tensorflow as tf
    from rasa.utils.tensorflow.constants import LEARNING_RATE, RUN_EAGERLY
    from rasa.utils.tensorflow.data_generator import RasaBatchDataGenerator
    from rasa.utils.tensorflow.models import RasaModel

    stock_load = RasaModel.load.__func__  # type: ignore[attr-defined]

    def load(
        cls: type[RasaModel],
        model_file_name: str,
        model_data_example: Any,
        predict_data_example: Any = None,
        finetune_mode: bool = False,
        *args: Any,
        **kwargs: Any,
    ) -> RasaModel:
        if finetune_mode:  # training goes on from here: keep Rasa's path exactly
            return stock_load(
                cls, model_file_name, model_data_example, predict_data_example, finetune_mode, *args, **kwargs
            )
        model = cls(*args, **kwargs)
        config = kwargs.get("config", {})
        model.compile(optimizer=tf.keras.optimizers.Adam(config.get(LEARNING_RATE, 0.001)), run_eagerly=True)
        model.fit(RasaBatchDataGenerator(model_data_example, batch_size=1), verbose=False)
        model.run_eagerly = config.get(RUN_EAGERLY)  # back to the configured (graph) mode for serving
        model.load_weights(model_file_name)
        if predict_data_example:
            model.run_inference(predict_data_example)
        return model

    RasaModel.load = classmethod(load)  # type: ignore[assignment,method-assign]
    log.info("server tuning: the one-example weight build at model load runs eagerly")


def _validate_action_results_with_one_validator() -> None:
    from jsonschema.exceptions import best_match
    from jsonschema.validators import validator_for
    from rasa.core.actions.action import RemoteAction
    from rasa.shared.constants import DOCS_BASE_URL

    schema = RemoteAction.action_response_format_spec()
    validator_class = validator_for(schema)
    validator_class.check_schema(schema)  # once, as jsonschema.validate does on every call
    validator = validator_class(schema)

    def validate_action_result(self: RemoteAction, result: dict[str, Any]) -> bool:
        error = best_match(validator.iter_errors(result))
        if error is None:
            return True
        error.message += (
            ". Failed to validate Action server response from API, "
            "make sure your response from the Action endpoint is valid. "
            f"For more information about the format visit {DOCS_BASE_URL}/custom-actions"
        )
        raise error

    RemoteAction._validate_action_result = validate_action_result  # type: ignore[method-assign]
    log.info("server tuning: custom action results are validated with one prebuilt validator")


def _resolve_event_types_from_a_table() -> None:
    from rasa.shared.core.events import Event
    from rasa.shared.utils.common import all_subclasses

    by_name: dict[str, type[Event]] = {}
    for cls in all_subclasses(Event):
        by_name.setdefault(cls.type_name, cls)
    stock_resolve = Event.resolve_by_type

    def resolve_by_type(type_name: str, default: type[Event] | None = None) -> type[Event] | None:
        found = by_name.get(type_name)
        return found if found is not None else stock_resolve(type_name, default)

    Event.resolve_by_type = staticmethod(resolve_by_type)  # type: ignore[method-assign,assignment]
    log.info("server tuning: event types resolve from a table of %d", len(by_name))
