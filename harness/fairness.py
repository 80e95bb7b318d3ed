"""What the harness, not the plugin, decides: initial weights and batch order.

Both are pure functions of the task's seed, so every framework starts from the same weights
and sees the same batches in the same order.
"""

from __future__ import annotations

import numpy as np

from harness.tasks import Dense, Task


def initial_weights(task: Task) -> list[dict[str, np.ndarray]]:
    """One dict of float32 arrays per layer, in the harness's layout.

    Dense: ``kernel`` ``(in, out)`` drawn Glorot-uniform, ``bias`` ``(out,)`` zeros.
    """
    rng = np.random.default_rng([task.seed, 0])
    shapes = [tuple(task.model.input_shape), *task.model.output_shapes()]
    weights: list[dict[str, np.ndarray]] = []
    for layer, in_shape in zip(task.model.layers, shapes, strict=False):
        if isinstance(layer, Dense):
            fan_in, fan_out = in_shape[0], layer.units
            limit = np.sqrt(6.0 / (fan_in + fan_out))
            weights.append(
                {
                    "kernel": rng.uniform(-limit, limit, (fan_in, fan_out)).astype(np.float32),
                    "bias": np.zeros(fan_out, dtype=np.float32),
                }
            )
        else:
            weights.append({})
    return weights


def batch_order(seed: int, epoch: int, num_samples: int) -> np.ndarray:
    """The order in which training samples are visited in ``epoch`` (0-based)."""
    return np.random.default_rng([seed, 1, epoch]).permutation(num_samples)
