"""The TensorFlow adapter: a ``keras.Sequential`` compiled and trained with ``model.fit``."""

from __future__ import annotations

import os

import numpy as np

from harness.adapter import Evaluation, FrameworkAdapter, RuntimeInfo, UnsupportedSpec


class TensorFlowAdapter(FrameworkAdapter):
    name = "tensorflow"
    import_name = "tensorflow"
    distribution = "tensorflow"
    install_hint = "pip install 'harness[tensorflow]'"

    def devices(self) -> list[str]:
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
        import tensorflow as tf

        return ["cpu", "gpu"] if tf.config.list_physical_devices("GPU") else ["cpu"]

    def setup(self, *, device: str, threads: int) -> RuntimeInfo:
        # Keras 3 picks its backend from this variable when first imported.
        os.environ["KERAS_BACKEND"] = "tensorflow"
        import tensorflow as tf

        tf.config.threading.set_intra_op_parallelism_threads(threads)
        tf.config.threading.set_inter_op_parallelism_threads(threads)
        gpus = tf.config.list_physical_devices("GPU")
        settings: dict = {"mode": "keras-default", "precision": "float32"}
        if device == "gpu":
            for gpu in gpus:
                tf.config.experimental.set_memory_growth(gpu, True)
            settings["gpu_memory_growth"] = True
            details = tf.config.experimental.get_device_details(gpus[0])
            name = details.get("device_name", "gpu")
        else:
            tf.config.set_visible_devices([], "GPU")
            name = "cpu"
        settings["intra_op_threads"] = tf.config.threading.get_intra_op_parallelism_threads()
        settings["inter_op_threads"] = tf.config.threading.get_inter_op_parallelism_threads()
        self._device = device
        return RuntimeInfo(device=device, device_name=name, settings=settings)

    def build(self, task, weights, x, y) -> KerasTrainer:
        import keras

        layers: list = [keras.Input(shape=tuple(task.model.input_shape))]
        for spec in task.model.layers:
            if spec.kind == "flatten":
                layers.append(keras.layers.Flatten())
            elif spec.kind == "dense":
                layers.append(keras.layers.Dense(spec.units, activation=spec.activation))
            else:
                raise UnsupportedSpec(f"layer kind {spec.kind!r}")
        model = keras.Sequential(layers)
        for layer, params in zip(model.layers, weights, strict=True):
            if params:
                layer.set_weights([params["kernel"], params["bias"]])
        adam = task.training.optimizer
        model.compile(
            optimizer=keras.optimizers.Adam(
                learning_rate=adam.learning_rate,
                beta_1=adam.beta_1,
                beta_2=adam.beta_2,
                epsilon=adam.epsilon,
            ),
            loss=keras.losses.SparseCategoricalCrossentropy(),
        )
        return KerasTrainer(model, x, y, task.training)

    def peak_device_memory_bytes(self) -> int | None:
        if self._device != "gpu":
            return None
        import tensorflow as tf

        return int(tf.config.experimental.get_memory_info("GPU:0")["peak"])


class KerasTrainer:
    def __init__(self, model, x: np.ndarray, y: np.ndarray, training) -> None:
        self.model = model
        self.x = x
        self.y = y
        self.training = training

    def train_epoch(self, batch_order: np.ndarray) -> float:
        # The harness fixes the batch order, so Keras gets the samples already in that order.
        history = self.model.fit(
            self.x[batch_order],
            self.y[batch_order],
            batch_size=self.training.batch_size,
            epochs=1,
            shuffle=False,
            verbose=0,
        )
        return float(history.history["loss"][-1])

    def evaluate(self, x: np.ndarray, y: np.ndarray) -> Evaluation:
        probabilities = self.model.predict(x, batch_size=self.training.eval_batch_size, verbose=0)
        # the same clipping as Keras's cross-entropy on probabilities
        picked = np.clip(probabilities[np.arange(len(y)), y], 1e-7, 1.0)
        return Evaluation(
            loss=float(-np.log(picked).mean()),
            accuracy=float((probabilities.argmax(axis=1) == y).mean()),
        )
