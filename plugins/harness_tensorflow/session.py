"""The TensorFlow session and trainer: what :meth:`harness_tensorflow.adapter.TensorFlowAdapter.setup` returns."""

from __future__ import annotations

import time

import numpy as np

from harness.api import Evaluation, RuntimeInfo, Session, UnsupportedSpec
from harness.api import keras_models as keras_support


class TensorFlowSession(Session):
    """TensorFlow set up for one cell: its device and mode, and what it builds."""

    def __init__(self, runtime: RuntimeInfo, mode: str) -> None:
        super().__init__(runtime)
        self.mode = mode

    def profiler(self, directory):
        from harness.api import TensorFlowProfiler

        return TensorFlowProfiler(directory)

    def build(self, task, weights, x, y) -> KerasTrainer:
        training = task.training
        last = task.model.layers[-1]
        softmax_output = last.kind == "dense" and last.activation == "softmax"
        if training.loss == "sparse_categorical_crossentropy" and not softmax_output:
            raise UnsupportedSpec("sparse categorical cross-entropy needs a softmax dense output")
        compiled = self.mode == "compiled"
        # cuDNN's RNN kernels are the same math, but a model using them can't be XLA-compiled
        settings = self.runtime.settings
        settings.pop("rnn_use_cudnn", None)
        if any(spec.kind in ("lstm", "gru") for spec in task.model.layers):
            settings["rnn_use_cudnn"] = False if compiled else "auto"
        model = keras_support.build_model(
            task.model, weights, use_cudnn=False if compiled else "auto"
        )
        keras_support.compile_model(
            model, training, num_samples=len(x), jit_compile=True if compiled else "auto"
        )
        settings["jit_compile"] = model.jit_compile
        if compiled and not model.jit_compile:
            raise UnsupportedSpec("Keras can't XLA-compile this model (jit_compile=True refused)")
        if training.loss == "mean_squared_error":
            y = y.reshape(-1, 1)  # the output's shape: no (b, 1) - (b,) broadcast to (b, b)
        # a classifier's labels stay as given: (n,), or (n, steps) for a language model, whose
        # loss Keras averages over every step of the batch (sum over batch size: b * steps)
        return KerasTrainer(model, task.model, x, y, training)

    def peak_device_memory_bytes(self) -> int | None:
        if self.runtime.device != "gpu":
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
    def __init__(self, model, model_spec, x: np.ndarray, y: np.ndarray, training) -> None:
        import tensorflow as tf

        self.model = model
        self.model_spec = model_spec
        # tensors made once, at build time as the other plugins do, outside the training clock;
        # tf.data runs on the host, and Keras moves each batch to the device
        with tf.device("CPU:0"):
            self._samples = (tf.constant(x), tf.constant(y))
        self.training = training

    def train_epoch(self, batch_order: np.ndarray, clock=None) -> float:
        # history["loss"] is the mean of the batch losses (see harness.api.keras_models.build_model)
        history = self.model.fit(
            self._batches(batch_order),
            epochs=1,
            verbose=0,
            callbacks=[keras_support.step_timer(clock)] if clock is not None else None,
        )
        return float(history.history["loss"][-1])

    def _batches(self, batch_order: np.ndarray):
        """The epoch's batches in the harness's order, as a ``tf.data`` pipeline.

        Each batch is gathered from the samples by its indices, as Keras's own
        ``fit(x, y, shuffle=True)`` does. Handing ``fit`` the arrays already in the epoch's order
        would copy the whole training set every epoch (about 10 % of an ``mnist_mlp`` epoch).
        """
        import tensorflow as tf

        x, y = self._samples
        order = tf.data.Dataset.from_tensor_slices(batch_order).batch(self.training.batch_size)
        batches = order.map(
            lambda index: (tf.gather(x, index), tf.gather(y, index)),
            num_parallel_calls=tf.data.AUTOTUNE,
        )
        return batches.prefetch(tf.data.AUTOTUNE)

    def predict(self, x: np.ndarray) -> np.ndarray:
        outputs = self.model.predict(x, batch_size=self.training.eval_batch_size, verbose=0)
        return np.asarray(outputs, dtype=np.float32)

    def evaluate(self, x: np.ndarray, y: np.ndarray) -> Evaluation:
        # labels per sample (n,) or per step (n, steps): the mean over all of them
        return keras_support.evaluation(self.predict(x), y, self.training.loss)

    def weights(self) -> list[dict[str, np.ndarray]]:
        return keras_support.layer_weights(self.model_spec, self.model)

    def parameter_count(self) -> int:
        # count_params() would count non-trainable weights too
        return sum(int(np.prod(weight.shape)) for weight in self.model.trainable_weights)
