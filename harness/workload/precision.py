"""Numeric precision as a cell dimension: what ``float32``, ``bfloat16`` and ``mixed`` mean, and
the switches the harness sets the same way for every framework before any framework loads.

* ``float32``: parameters, activations and every matrix product in IEEE float32. Accelerators
  round float32 products to TF32 (a 10-bit mantissa) where a framework allows it, and the
  frameworks' defaults differ (TensorFlow and JAX allow it on NVIDIA GPUs, PyTorch allows it
  for convolutions only): a float32 cell switches it off everywhere.
* ``bfloat16``: parameters, optimizer state and compute in bfloat16 (the loss in float32).
* ``mixed``: float32 parameters and optimizer state, products and activations in bfloat16
  (PyTorch's autocast, Keras's ``mixed_bfloat16`` policy, JAX with bfloat16 compute dtypes).

Each cell's row records the precision and a manifest of what its framework was set to
(:func:`harness.api.precision` helpers fill it in; docs/measuring.md, "Precision").
"""

from __future__ import annotations

from typing import Literal

Precision = Literal["float32", "bfloat16", "mixed"]
PRECISIONS: tuple[Precision, ...] = ("float32", "bfloat16", "mixed")

#: environment variables a cell's process gets before any framework is imported. They hold for
#: every precision: a bfloat16 product is unaffected, and what a mixed cell keeps in float32
#: stays float32.
PRECISION_ENVIRONMENT = {
    # cuBLAS and cuDNN: never round float32 inputs to TF32, whatever a framework asks
    "NVIDIA_TF32_OVERRIDE": "0",
    # oneDNN (TensorFlow and PyTorch on CPUs): no implicit bfloat16 or TF32 for float32 maths
    "ONEDNN_DEFAULT_FPMATH_MODE": "STRICT",
    # JAX: float32 products at full precision on every backend
    "JAX_DEFAULT_MATMUL_PRECISION": "highest",
}


def compute_dtype(precision: str) -> str:
    """The dtype products and activations are computed in."""
    return "float32" if precision == "float32" else "bfloat16"


def parameter_dtype(precision: str) -> str:
    """The dtype parameters and optimizer state are kept in."""
    return "bfloat16" if precision == "bfloat16" else "float32"
