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
        compiled = self.runtime.settings["mode"] == "compiled"
        model = build_model(task.model, weights)
        # compiled on PyTorch: torch.compile of Keras's training step (jit_compile=True); on
        # JAX, where the default already jits each step, the scanned epoch below
        compile_model(model, training, num_samples=len(x), jit_compile=compiled or "auto")
        self.runtime.settings["jit_compile"] = model.jit_compile
        # (n, 1) like the output: no broadcast; a classifier's labels as given, (n,) or (n,
        # steps) for a language model, whose loss Keras averages over every step of the batch
        targets = y if classifier else y.reshape(-1, 1)
        if compiled and self.backend == "jax":
            self.runtime.settings["compiled_unit"] = "epoch (lax.scan of train_step)"
            return ScannedKerasTrainer(model, task, x, targets)
        return KerasTrainer(model, task, x, targets)

    def profiler(self, directory):
        from harness.api import JaxProfiler, TorchProfiler

        return (TorchProfiler if self.backend == "torch" else JaxProfiler)(directory)

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


class ScannedKerasTrainer(KerasTrainer):
    """Keras on JAX, compiled: every full batch of an epoch in one XLA program, a ``lax.scan``
    of Keras's own stateless ``train_step`` (the step ``fit`` jits), as the JAX plugin's
    compiled mode scans its step. A last, smaller batch goes through ``train_step`` alone, as
    in ``fit``. Single steps of a scanned epoch can't be timed, so the clock gets none."""

    def __init__(self, model, task, x: np.ndarray, y: np.ndarray) -> None:
        import jax

        super().__init__(model, task, x, y)
        # the scan gathers its batches on the device, so the data lives there
        self.x_device, self.y_device = jax.device_put(x), jax.device_put(y)
        batch = (x[: task.training.batch_size], y[: task.training.batch_size])
        # what fit does before its first step: builds the optimizer's slots and the compiled
        # loss outside any trace (their variables can't be made inside jax.jit)
        model._symbolic_build(data_batch=batch)
        self.scan_epoch, self.one_step = _scanned_functions(model)

    def train_epoch(self, batch_order: np.ndarray, clock=None) -> float:
        model = self.model
        batch_size = self.task.training.batch_size
        model.reset_metrics()  # the epoch's mean batch loss starts afresh, as in fit
        state = _state(model)
        full = len(batch_order) // batch_size
        batches = batch_order[: full * batch_size].astype(np.int32).reshape(full, batch_size)
        if full:
            state = self.scan_epoch(state, self.x_device, self.y_device, batches)
        rest = batch_order[full * batch_size :]
        if len(rest):
            state = self.one_step(state, self.x[rest], self.y[rest])
        _assign(model, state)
        return float(model.batch_mean_loss.result())  # float() waits for the device


def _state(model) -> tuple:
    """Keras's training state as ``fit`` hands it to ``train_step``: the values of the
    trainable, non-trainable (moving statistics, seeds), optimizer and metric variables."""
    return (
        [v.value for v in model.trainable_variables],
        [v.value for v in model.non_trainable_variables],
        [v.value for v in model.optimizer.variables],
        [v.value for v in model.metrics_variables],
    )


def _assign(model, state: tuple) -> None:
    """Back into the model's variables, as Keras's ``jax_state_sync`` does after ``fit``."""
    owners = (
        model.trainable_variables,
        model.non_trainable_variables,
        model.optimizer.variables,
        model.metrics_variables,
    )
    for variables, values in zip(owners, state, strict=True):
        for variable, value in zip(variables, values, strict=True):
            variable.assign(value)


def _scanned_functions(model):
    """``(scan_epoch, one_step)``, jitted: full batches by index through a scan of
    ``model.train_step``, and one batch given as arrays."""
    import jax

    @jax.jit
    def scan_epoch(state, x_all, y_all, batches):
        def body(state, index):
            return model.train_step(state, (x_all[index], y_all[index]))[1], None

        return jax.lax.scan(body, state, batches)[0]

    @jax.jit
    def one_step(state, xb, yb):
        return model.train_step(state, (xb, yb))[1]

    return scan_epoch, one_step
