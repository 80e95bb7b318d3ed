"""The Keras session and trainer: what :meth:`harness_keras.adapter.KerasAdapter.setup` returns."""

from __future__ import annotations

import numpy as np

from harness.api import Evaluation, RuntimeInfo, Session, UnsupportedSpec
from harness.api.keras_models import (
    build_model,
    compile_model,
    evaluation,
    layer_weights,
    step_timer,
)


class KerasSession(Session):
    """Keras on one backend, set up for one cell: what it builds."""

    def __init__(self, runtime: RuntimeInfo, backend: str) -> None:
        super().__init__(runtime)
        self.backend = backend

    def build(self, task, weights, x, y) -> KerasTrainer:
        training = task.training
        last = task.model.layers[-1]
        classifier = training.loss == "sparse_categorical_crossentropy"
        if classifier and not (last.kind == "dense" and last.activation == "softmax"):
            raise UnsupportedSpec("sparse categorical cross-entropy needs a softmax dense output")
        model = build_model(task.model, weights)
        compile_model(model, training, num_samples=len(x))
        self.runtime.settings["jit_compile"] = model.jit_compile
        # (n, 1) like the output: no broadcast; a classifier's labels as given, (n,) or (n,
        # steps) for a language model, whose loss Keras averages over every step of the batch
        targets = y if classifier else y.reshape(-1, 1)
        return KerasTrainer(model, task, x, targets)

    def peak_device_memory_bytes(self) -> int | None:
        if self.runtime.device != "gpu":
            return None
        if self.backend == "torch":
            import torch

            return int(torch.cuda.max_memory_allocated())
        import jax

        return (jax.devices("gpu")[0].memory_stats() or {}).get("peak_bytes_in_use")

    def matmul_seconds(self, size: int, repeats: int) -> float:
        import time

        import keras

        a = keras.random.uniform((size, size), seed=0)
        b = keras.random.uniform((size, size), seed=1)
        keras.ops.convert_to_numpy(keras.ops.matmul(a, b))  # compiled and allocated before timing
        start = time.perf_counter()
        for _ in range(repeats):
            c = keras.ops.matmul(a, b)
        keras.ops.convert_to_numpy(keras.ops.sum(c))  # waits for the device
        return time.perf_counter() - start


class KerasTrainer:
    def __init__(self, model, task, x: np.ndarray, y: np.ndarray) -> None:
        self.model = model
        self.task = task
        self.x, self.y = x, y

    def train_epoch(self, batch_order: np.ndarray, clock=None) -> float:
        # the harness's batch order, handed over already ordered; Keras must not shuffle it
        history = self.model.fit(
            self.x[batch_order],
            self.y[batch_order],
            batch_size=self.task.training.batch_size,
            epochs=1,
            shuffle=False,
            verbose=0,
            callbacks=[step_timer(clock)] if clock is not None else None,
        )
        return float(history.history["loss"][-1])

    def predict(self, x: np.ndarray) -> np.ndarray:
        outputs = self.model.predict(x, batch_size=self.task.training.eval_batch_size, verbose=0)
        return np.asarray(outputs, dtype=np.float32)

    def evaluate(self, x: np.ndarray, y: np.ndarray) -> Evaluation:
        # labels per sample (n,) or per step (n, steps): the mean over all of them
        return evaluation(self.predict(x), y, self.task.training.loss)

    def weights(self) -> list[dict[str, np.ndarray]]:
        return layer_weights(self.task.model, self.model)

    def parameter_count(self) -> int:
        return sum(int(np.prod(variable.shape)) for variable in self.model.trainable_weights)
