"""Setting a framework to a cell's precision and reading back what it computes in: one helper
per framework, for ``FrameworkAdapter.setup`` (plugin API 4).

Each helper switches off every reduced-precision shortcut the framework offers for float32
products (TF32 on NVIDIA GPUs, bfloat16 or TF32 "fast math" in oneDNN), then returns the
manifest of what the framework now reports, which ``setup`` puts in ``RuntimeInfo.precision``::

    manifest = precision.torch_settings(torch, "mixed")
    return MySession(RuntimeInfo("cpu", "cpu", settings, precision=manifest))

The harness has already set :data:`harness.workload.precision.PRECISION_ENVIRONMENT` in the
cell's process; the helpers set the framework's own switches too, since a framework reads its
own first. Frameworks are passed in, so this module imports none.
"""

from __future__ import annotations

import os
from typing import Any

from harness.workload.precision import PRECISION_ENVIRONMENT, compute_dtype, parameter_dtype

#: Keras's dtype policy for each precision
KERAS_POLICIES = {"float32": "float32", "bfloat16": "bfloat16", "mixed": "mixed_bfloat16"}


def manifest(precision: str, **framework: Any) -> dict[str, Any]:
    """The manifest every helper returns: the dtypes the precision means, the framework's own
    switches as read back, and the environment the harness set."""
    return {
        "precision": precision,
        "parameters": parameter_dtype(precision),
        "compute": compute_dtype(precision),
        **framework,
        "environment": {name: os.environ.get(name, "unset") for name in PRECISION_ENVIRONMENT},
    }


def torch_settings(torch: Any, precision: str) -> dict[str, Any]:
    """PyTorch: float32 products in IEEE float32 on cuBLAS, cuDNN and oneDNN (PyTorch lets
    cuDNN convolutions use TF32 by default)."""
    backends = torch.backends
    if hasattr(backends, "fp32_precision"):  # PyTorch >= 2.9
        backends.fp32_precision = "ieee"
        for switch in (
            backends.cuda.matmul,
            backends.cudnn.conv,
            backends.cudnn.rnn,
            backends.mkldnn.matmul,
            backends.mkldnn.conv,
            backends.mkldnn.rnn,
        ):
            switch.fp32_precision = "ieee"
        switches = {
            "cuda_matmul_fp32": backends.cuda.matmul.fp32_precision,
            "cudnn_conv_fp32": backends.cudnn.conv.fp32_precision,
            "cudnn_rnn_fp32": backends.cudnn.rnn.fp32_precision,
            "mkldnn_matmul_fp32": backends.mkldnn.matmul.fp32_precision,
        }
    else:
        backends.cuda.matmul.allow_tf32 = False
        backends.cudnn.allow_tf32 = False
        torch.set_float32_matmul_precision("highest")
        switches = {
            "cuda_matmul_allow_tf32": backends.cuda.matmul.allow_tf32,
            "cudnn_allow_tf32": backends.cudnn.allow_tf32,
            "float32_matmul_precision": torch.get_float32_matmul_precision(),
        }
    tf32 = any(value in ("tf32", True) for value in switches.values())
    return manifest(precision, tf32=tf32, **switches)


def jax_settings(jax: Any, precision: str) -> dict[str, Any]:
    """JAX: float32 products at ``highest`` precision (XLA rounds them to TF32 or bfloat16 at
    its default on GPUs and TPUs)."""
    jax.config.update("jax_default_matmul_precision", "highest")
    setting = jax.config.jax_default_matmul_precision
    return manifest(precision, tf32=setting != "highest", jax_default_matmul_precision=setting)


def tensorflow_settings(tf: Any, precision: str) -> dict[str, Any]:
    """TensorFlow: TF32 off (TensorFlow enables it by default on Ampere and later GPUs)."""
    tf.config.experimental.enable_tensor_float_32_execution(False)
    enabled = bool(tf.config.experimental.tensor_float_32_execution_enabled())
    return manifest(precision, tf32=enabled, tensor_float_32_execution=enabled)


def keras_settings(keras: Any, precision: str) -> dict[str, Any]:
    """Keras 3: the global dtype policy for the precision (``mixed``: ``mixed_bfloat16``, whose
    layers keep float32 variables and compute in bfloat16). Set the backend's switches too."""
    keras.config.set_dtype_policy(KERAS_POLICIES[precision])
    return {"keras_dtype_policy": keras.config.dtype_policy().name}
