"""The Keras 3 adapter: one class, instantiated once per backend (``jax``, ``torch``).

Keras fixes its backend when first imported, from ``KERAS_BACKEND``; every harness cell is a
fresh process, so ``setup`` sets the variable and imports Keras afterwards. Nothing here imports
Keras or a backend at module level: ``harness list`` stays fast.

The model, Adam as the harness defines it and the step timer are
:mod:`harness.keras_support`'s, shared with harness's own ``tensorflow`` plugin.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import os
import sys

import numpy as np

from harness.adapter import (
    Availability,
    Evaluation,
    FrameworkAdapter,
    RuntimeInfo,
    Session,
    UnsupportedSpec,
)
from harness.keras_support import (
    ADAM_EPSILON,
    build_model,
    compile_model,
    layer_weights,
    step_timer,
)

#: what each backend needs installed, and the distribution whose version it reports
BACKENDS = {"jax": ("jax", "jax"), "torch": ("torch", "torch")}


class KerasAdapter(FrameworkAdapter):
    import_name = "keras"
    distribution = "keras"
    api_version = 1
    modes = ("eager",)  # Keras's default execution: jax.jit per step on JAX, eager on PyTorch

    def __init__(self, backend: str) -> None:
        self.backend = backend
        self.name = f"keras_{backend}"
        self.install_hint = f"pip install 'harness-keras[{backend}]'"

    def version(self) -> str | None:
        """Keras's version and the backend's: a verdict or calibration holds for both."""
        try:
            keras_version = importlib.metadata.version("keras")
            backend_version = importlib.metadata.version(BACKENDS[self.backend][1])
        except importlib.metadata.PackageNotFoundError:
            return None
        return f"{keras_version} ({self.backend} {backend_version})"

    def availability(self) -> Availability:
        for module in ("keras", BACKENDS[self.backend][0]):
            if importlib.util.find_spec(module) is None:
                return Availability(False, f"{module} is not installed: {self.install_hint}")
        return Availability(True)

    def devices(self) -> list[str]:
        if self.backend == "torch":
            import torch

            return ["cpu", "gpu"] if torch.cuda.is_available() else ["cpu"]
        import jax

        try:
            return ["cpu", "gpu"] if jax.devices("gpu") else ["cpu"]
        except RuntimeError:
            return ["cpu"]

    def setup(self, *, device: str, threads: int, mode: str = "eager") -> KerasSession:
        if "keras" in sys.modules and sys.modules["keras"].backend.backend() != self.backend:
            raise RuntimeError(
                f"Keras was already imported with another backend than {self.backend}"
            )
        os.environ["KERAS_BACKEND"] = self.backend
        settings = {
            "mode": mode,
            "keras_backend": self.backend,
            "backend_version": importlib.metadata.version(BACKENDS[self.backend][1]),
            "precision": "float32",
            "adam_epsilon": ADAM_EPSILON,
        }
        if self.backend == "torch":
            import torch

            os.environ["KERAS_TORCH_DEVICE"] = "cuda" if device == "gpu" else "cpu"
            torch.backends.cuda.matmul.allow_tf32 = False  # float32 means float32 (no TF32)
            torch.backends.cudnn.allow_tf32 = False
            torch.set_num_threads(threads)
            settings["intra_op_threads"] = torch.get_num_threads()
            name = torch.cuda.get_device_name() if device == "gpu" else "cpu"
        else:
            import jax

            chosen = jax.devices("gpu" if device == "gpu" else "cpu")[0]
            jax.config.update("jax_default_device", chosen)
            jax.config.update("jax_default_matmul_precision", "highest")  # no TF32
            settings["threads_via"] = "cpu_affinity"  # XLA sizes its pool by the pinned cores
            name = chosen.device_kind
        import keras

        keras.config.set_floatx("float32")
        return KerasSession(
            RuntimeInfo(device=device, device_name=name, settings=settings), self.backend
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
        compile_model(model, training)
        self.runtime.settings["jit_compile"] = model.jit_compile
        targets = y if classifier else y.reshape(-1, 1)  # (n, 1) like the output: no broadcast
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
        outputs = self.predict(x).astype(np.float64)
        if self.task.training.loss == "mean_squared_error":
            return Evaluation(loss=float(np.mean((outputs[:, 0] - y) ** 2)), accuracy=None)
        picked = np.maximum(outputs[np.arange(len(y)), y], np.finfo(np.float32).tiny)
        return Evaluation(
            loss=float(-np.log(picked).mean()), accuracy=float((outputs.argmax(axis=1) == y).mean())
        )

    def weights(self) -> list[dict[str, np.ndarray]]:
        return layer_weights(self.task.model, self.model)

    def parameter_count(self) -> int:
        return sum(int(np.prod(variable.shape)) for variable in self.model.trainable_weights)
