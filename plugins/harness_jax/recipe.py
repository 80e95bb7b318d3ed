"""What a cell trains with besides its model: the precision policy and the optimizer, whose
learning rate follows the task's schedule.

The policy is jmp's (``jmp.Policy(param_dtype, compute_dtype, output_dtype)``), written out so
the plugin needs no more dependencies: parameters and Adam's moments are kept in the parameter
dtype; each forward casts the parameters and the inputs to the compute dtype, and the model's
output to float32 for the loss and the predictions. Gradients flow back through the casts, so
they arrive in the parameters' dtype. The batch norms' moving statistics stay float32 whatever
the precision (Flax computes batch statistics in float32 and keeps them so).

* float32: float32 throughout;
* bfloat16: parameters, Adam's moments and compute in bfloat16, the loss in float32;
* mixed: float32 parameters and Adam moments, bfloat16 compute, the loss in float32.

Imported by the session, after ``setup`` has imported JAX.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import jax
import jax.numpy as jnp
import optax


@dataclass(frozen=True)
class Policy:
    """The dtypes a cell keeps and computes in: ``param_dtype`` for the parameters and the
    optimizer state, ``compute_dtype`` for products and activations, ``output_dtype`` for the
    model's output as the loss and the predictions see it."""

    param_dtype: str = "float32"
    compute_dtype: str = "float32"
    output_dtype: str = "float32"

    @classmethod
    def of(cls, manifest: dict[str, Any]) -> Policy:
        """The policy a precision manifest (``harness.api.precision``) describes."""
        return cls(param_dtype=manifest["parameters"], compute_dtype=manifest["compute"])

    def cast_to_param(self, tree):
        return _cast(tree, self.param_dtype)

    def cast_to_compute(self, tree):
        return _cast(tree, self.compute_dtype)

    def cast_to_output(self, tree):
        return _cast(tree, self.output_dtype)

    def manifest(self) -> dict[str, str]:
        """What the plugin adds to the cell's precision manifest."""
        return {
            "parameter_dtype": self.param_dtype,
            "optimizer_state_dtype": self.param_dtype,  # optax keeps Adam's moments so
            "compute_dtype": self.compute_dtype,
            "loss_dtype": self.output_dtype,
            "batch_norm_statistics_dtype": "float32",
            "policy": "jmp-style: parameters cast to the compute dtype in each forward",
        }


def _cast(tree, dtype: str):
    """Every floating-point array of ``tree`` in ``dtype``; others (integer ids) as they are.
    A cast to the dtype an array already has is no operation, so float32 cells compute as
    they did before precisions existed."""

    def cast(array):
        array = jnp.asarray(array)
        return array.astype(dtype) if jnp.issubdtype(array.dtype, jnp.floating) else array

    return jax.tree_util.tree_map(cast, tree)


def learning_rate(training, num_samples: int):
    """The optimizer's learning rate: the task's plain float without a schedule, else an optax
    schedule (a function of the update count, traced into the step and the scanned epoch)."""
    base = training.optimizer.learning_rate
    schedule = training.schedule
    if schedule is None:
        return base
    return warmup_cosine(
        base,
        warmup_steps=schedule.warmup_steps,
        final_fraction=schedule.final_fraction,
        total_steps=training.total_steps(num_samples),
    )


def warmup_cosine(base: float, *, warmup_steps: int, final_fraction: float, total_steps: int):
    """``harness.api.WarmupCosine.learning_rate`` in float32 jnp ops: update ``count`` (0-based,
    as optax counts) uses ``base * (count + 1) / warmup_steps`` while warming up, then half a
    cosine down to ``final_fraction * base`` at the last update. (optax's own
    ``warmup_cosine_decay_schedule`` starts at ``init_value``, 0, not at ``base / warmup_steps``.)
    """
    decay_steps = max(1, total_steps - warmup_steps)

    def schedule(count):
        step = jnp.asarray(count, jnp.float32)
        rising = base * (step + 1) / max(1, warmup_steps)
        progress = jnp.minimum(1.0, (step - warmup_steps) / decay_steps)
        cosine = (1 + jnp.cos(math.pi * progress)) / 2
        falling = base * (final_fraction + (1 - final_fraction) * cosine)
        return jnp.where(step < warmup_steps, rising, falling)

    return schedule


def adam(training, num_samples: int) -> optax.GradientTransformation:
    """The task's Adam; its moments take the parameters' dtype (optax's default)."""
    spec = training.optimizer
    return optax.adam(
        learning_rate=learning_rate(training, num_samples),
        b1=spec.beta_1,
        b2=spec.beta_2,
        eps=spec.epsilon,
    )
