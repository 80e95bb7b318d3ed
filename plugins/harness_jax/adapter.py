"""The JAX adapter: a Flax Linen module and an Optax optimizer.

Modes: ``eager`` dispatches one ``jax.jit``-compiled step per batch from Python (as Flax's MNIST
example does); ``compiled`` compiles a whole epoch's steps into one program with ``lax.scan``.

Precisions (plugin API 4): ``float32`` (products at ``highest`` precision: no TF32 or bfloat16
passes on any device), ``bfloat16`` and ``mixed``, as dtype policies
(:class:`harness_jax.recipe.Policy`).

The adapter's module imports nothing heavy: ``harness list`` imports it to show the framework.
What trains (the session and its trainer) lives in :mod:`harness_jax.session`, imported by
``setup``.
"""

from __future__ import annotations

import os
from importlib.metadata import version
from typing import TYPE_CHECKING

from harness.api import FrameworkAdapter, RuntimeInfo

if TYPE_CHECKING:
    from harness_jax.session import JaxSession


class JaxAdapter(FrameworkAdapter):
    name = "jax"
    import_name = "flax"  # the adapter needs jax, flax and optax; flax brings the other two
    distribution = "jax"
    install_hint = "pip install 'harness[jax]'"
    modes = ("eager", "compiled")
    precisions = ("float32", "bfloat16", "mixed")
    # API 2: the ResNet layers (batch_norm, global_avg_pool2d, residual_block); API 3: a
    # language model (embedding, causal transformer blocks, a label at every step); API 4:
    # setup takes the precision and reports its manifest
    api_version = 4

    def devices(self) -> list[str]:
        import jax

        try:
            return ["cpu", "gpu"] if jax.devices("gpu") else ["cpu"]
        except RuntimeError:
            return ["cpu"]

    def setup(
        self, *, device: str, threads: int, mode: str = "eager", precision: str = "float32"
    ) -> JaxSession:
        import jax

        from harness.api import precision as framework_precision

        # float32 products at "highest" on every device (the default rounds them to TF32 on
        # NVIDIA GPUs), whatever the precision: a mixed cell's float32 parts stay float32
        manifest = framework_precision.jax_settings(jax, precision)
        jax_device = jax.devices("gpu" if device == "gpu" else "cpu")[0]
        jax.config.update("jax_default_device", jax_device)
        settings = {
            "mode": mode,
            "compiled_unit": "epoch (lax.scan)" if mode == "compiled" else "step (jax.jit)",
            "precision": precision,
            # XLA's CPU thread pool is sized by the cores the process may use, which the
            # runner has pinned to `threads`; JAX has no thread-count setting of its own.
            "threads_via": "cpu_affinity",
            "flax_version": version("flax"),
            "optax_version": version("optax"),
        }
        if device == "gpu":
            settings["xla_python_client_preallocate"] = os.environ.get(
                "XLA_PYTHON_CLIENT_PREALLOCATE", "true (default)"
            )
        from harness_jax.recipe import Policy
        from harness_jax.session import JaxSession

        policy = Policy.of(manifest)
        runtime = RuntimeInfo(
            device=device,
            device_name=jax_device.device_kind,
            settings=settings,
            precision={**manifest, **policy.manifest()},
        )
        return JaxSession(runtime, jax_device, mode, policy)
