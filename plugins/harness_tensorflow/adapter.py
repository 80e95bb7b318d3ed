"""The TensorFlow adapter: a ``keras.Sequential`` compiled and trained with ``model.fit``.

Modes: ``eager`` is Keras's default (``jit_compile="auto"``: a ``tf.function`` graph, which
Keras hands to XLA on a GPU but not on a CPU); ``compiled`` forces XLA (``jit_compile=True``).
"""

from __future__ import annotations

import functools
import os
import time

import numpy as np

from harness.adapter import Evaluation, FrameworkAdapter, RuntimeInfo, UnsupportedSpec


class TensorFlowAdapter(FrameworkAdapter):
    name = "tensorflow"
    import_name = "tensorflow"
    distribution = "tensorflow"
    install_hint = "pip install 'harness[tensorflow]'"
    modes = ("eager", "compiled")

    def devices(self) -> list[str]:
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
        import tensorflow as tf

        return ["cpu", "gpu"] if tf.config.list_physical_devices("GPU") else ["cpu"]

    def setup(self, *, device: str, threads: int, mode: str = "eager") -> RuntimeInfo:
        # Keras 3 picks its backend from this variable when first imported.
        os.environ["KERAS_BACKEND"] = "tensorflow"
        import tensorflow as tf

        tf.config.threading.set_intra_op_parallelism_threads(threads)
        tf.config.threading.set_inter_op_parallelism_threads(threads)
        gpus = tf.config.list_physical_devices("GPU")
        self._mode = mode
        settings: dict = {"mode": mode, "precision": "float32"}
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
        self._settings = settings  # build() adds the jit_compile Keras resolved
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
            jit_compile=True if self._mode == "compiled" else "auto",
        )
        self._settings["jit_compile"] = model.jit_compile
        return KerasTrainer(model, x, y, task.training)

    def peak_device_memory_bytes(self) -> int | None:
        if self._device != "gpu":
            return None
        import tensorflow as tf

        return int(tf.config.experimental.get_memory_info("GPU:0")["peak"])

    def matmul_seconds(self, size: int, repeats: int) -> float:
        import tensorflow as tf

        a = tf.random.uniform((size, size))
        b = tf.random.uniform((size, size))
        start = time.perf_counter()
        for _ in range(repeats):
            c = tf.matmul(a, b)
        float(tf.reduce_sum(c))  # waits for the device
        return time.perf_counter() - start


class KerasTrainer:
    def __init__(self, model, x: np.ndarray, y: np.ndarray, training) -> None:
        self.model = model
        self.x = x
        self.y = y
        self.training = training

    def train_epoch(self, batch_order: np.ndarray, clock=None) -> float:
        # The harness fixes the batch order, so Keras gets the samples already in that order.
        history = self.model.fit(
            self.x[batch_order],
            self.y[batch_order],
            batch_size=self.training.batch_size,
            epochs=1,
            shuffle=False,
            verbose=0,
            callbacks=[_step_timer_class()(clock)] if clock is not None else None,
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


@functools.cache
def _step_timer_class():
    """The Keras callback class that times sampled steps (made on first use: keras is lazy)."""
    import keras

    class StepTimer(keras.callbacks.Callback):
        """Times the steps the harness's clock wants, from batch start to the next batch start.

        Only ``on_train_batch_begin`` is overridden: a batch-end hook would make Keras turn
        every step's logs into Python numbers, waiting for the device at every step. Reading
        the optimizer's step counter waits for the updates before it, so only the sampled steps
        (and the step after each) are synchronised.
        """

        def __init__(self, clock) -> None:
            super().__init__()
            self.clock = clock
            self.began: float | None = None

        def _sync(self) -> None:
            int(self.model.optimizer.iterations)

        def _finish(self) -> None:
            if self.began is not None:
                self._sync()
                self.clock.record(time.perf_counter() - self.began)
                self.began = None

        def on_train_batch_begin(self, batch, logs=None):
            self._finish()
            if self.clock.wants(batch):
                self._sync()
                self.began = time.perf_counter()

        def on_epoch_end(self, epoch, logs=None):
            self._finish()

    return StepTimer
