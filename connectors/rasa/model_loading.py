"""Faster model loading for the Rasa server: build the TensorFlow weights without tracing a training graph.

Rasa 3.6 (`rasa.utils.tensorflow.models.RasaModel.load`) builds each TensorFlow model it
loads (DIETClassifier, ResponseSelector) by fitting one example through Keras, so that every
weight and optimizer slot exists before the checkpoint is read. Keras traces the whole
training step into a graph to do that: on a 2-core machine that is about 50 of the 70 s a
start takes, and a server never trains. Here the same one-example step runs eagerly (the same
code, so the same weights and slots get built), then the model is switched back to the
graph mode of its configuration before the checkpoint is loaded and the prediction function
is traced, exactly as Rasa does. Predictions are unchanged; only the start is shorter.

Installed by the ReviewBot input channel when the Rasa server creates it (before the model
loads); `rasa train`, `rasa test` and fine-tuning keep Rasa's own path.
"""

from __future__ import annotations

import logging
from typing import Any

log = logging.getLogger(__name__)
_installed = False


def install() -> None:
    """Replace RasaModel.load for this process (idempotent)."""
    global _installed
    if _installed:
        return
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
    _installed = True
    log.info("model loading: one-example weight build runs eagerly")
