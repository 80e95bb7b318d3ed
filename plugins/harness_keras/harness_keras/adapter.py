"""The Keras 3 adapter: one class, instantiated once per backend (``jax``, ``torch``).

Keras fixes its backend when first imported, from ``KERAS_BACKEND``; every harness cell is a
fresh process, so ``setup`` sets the variable and imports Keras afterwards. Nothing here imports
Keras or a backend at module level: ``harness list`` stays fast.

Precisions: ``float32`` (no TF32), ``bfloat16`` and ``mixed``, as Keras's dtype policies
``bfloat16`` and ``mixed_bfloat16`` (:func:`harness.api.precision.keras_settings`), set in
``setup``, before any model is built.

Modes: ``eager`` is Keras's default execution (on JAX, ``jax.jit`` of each step; on PyTorch,
eager operations); ``compiled`` is, on JAX, a whole epoch's full batches in one ``lax.scan`` of
Keras's ``train_step`` (as the ``jax`` plugin's compiled mode), and on PyTorch
``jit_compile=True``, which Keras turns into ``torch.compile`` of its training step.

The model, Adam as the harness defines it and the step timer are
:mod:`harness.api.keras_models`'s, shared with harness's own ``tensorflow`` plugin.

The adapter's module imports nothing heavy: ``harness list`` imports it to show the framework.
What trains (the session and its trainer) lives in :mod:`harness_keras.session`, imported by
``setup``.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import os
import sys
from typing import TYPE_CHECKING

from harness.api import Availability, FrameworkAdapter, RuntimeInfo

if TYPE_CHECKING:
    from harness_keras.session import KerasSession


#: what each backend needs installed, and the distribution whose version it reports
BACKENDS = {"jax": ("jax", "jax"), "torch": ("torch", "torch")}


class KerasAdapter(FrameworkAdapter):
    import_name = "keras"
    distribution = "keras"
    api_version = 4
    precisions = ("float32", "bfloat16", "mixed")
    #: eager is Keras's default execution (jax.jit per step on JAX, eager ops on PyTorch);
    #: compiled is a scanned epoch on JAX and torch.compile of the step on PyTorch
    modes = ("eager", "compiled")

    def __init__(self, backend: str) -> None:
        self.backend = backend
        self.name = f"keras_{backend}"
        self.install_hint = f"pip install 'harness-keras[{backend}]'"

    def version(self) -> str | None:
        """Keras's version and the backend's: a verdict or calibration holds for both."""
        from harness.api import installed_version

        keras_version = installed_version("keras")
        backend_version = installed_version(BACKENDS[self.backend][1])
        if keras_version is None or backend_version is None:
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

    def setup(
        self, *, device: str, threads: int, mode: str = "eager", precision: str = "float32"
    ) -> KerasSession:
        if "keras" in sys.modules and sys.modules["keras"].backend.backend() != self.backend:
            raise RuntimeError(
                f"Keras was already imported with another backend than {self.backend}"
            )
        from harness.api import precision as precision_settings
        from harness.api.keras_models import ADAM_EPSILON

        os.environ["KERAS_BACKEND"] = self.backend
        settings = {
            "mode": mode,
            "keras_backend": self.backend,
            "backend_version": importlib.metadata.version(BACKENDS[self.backend][1]),
            "precision": precision,
            "adam_epsilon": ADAM_EPSILON,
        }
        if self.backend == "torch":
            import torch

            os.environ["KERAS_TORCH_DEVICE"] = "cuda" if device == "gpu" else "cpu"
            # float32 means float32 (no TF32)
            manifest = precision_settings.torch_settings(torch, precision)
            torch.set_num_threads(threads)
            settings["intra_op_threads"] = torch.get_num_threads()
            name = torch.cuda.get_device_name() if device == "gpu" else "cpu"
        else:
            import jax

            chosen = jax.devices("gpu" if device == "gpu" else "cpu")[0]
            jax.config.update("jax_default_device", chosen)
            manifest = precision_settings.jax_settings(jax, precision)  # no TF32
            settings["threads_via"] = "cpu_affinity"  # XLA sizes its pool by the pinned cores
            name = chosen.device_kind
        import keras

        keras.config.set_floatx("float32")
        # the policy is global: set before build() makes a model
        manifest |= precision_settings.keras_settings(keras, precision)
        from harness_keras.session import KerasSession

        return KerasSession(
            RuntimeInfo(device=device, device_name=name, settings=settings, precision=manifest),
            self.backend,
        )
