"""What the harness, not the plugin, decides: initial weights and batch order.

Both are pure functions of the task's seed, so every framework starts from the same weights
and sees the same batches in the same order.

The harness's weight layout (Keras's; plugins convert to their own):

============  ==============================================================================
layer         arrays
============  ==============================================================================
dense         ``kernel (in, units)``, ``bias (units,)``
conv2d        ``kernel (kh, kw, in_channels, filters)``, ``bias (filters,)``
simple_rnn    ``kernel (features, units)``, ``recurrent_kernel (units, units)``,
              ``bias (units,)``
lstm          ``kernel (features, 4 units)``, ``recurrent_kernel (units, 4 units)``,
              ``bias (4 units,)``; gate blocks in the order input, forget, cell, output
gru           ``kernel (features, 3 units)``, ``recurrent_kernel (units, 3 units)``,
              ``bias (2, 3 units)`` (row 0 the input bias, row 1 the recurrent bias);
              gate blocks in the order update (z), reset (r), candidate (h)
============  ==============================================================================

Other layers have no parameters (an empty dict).
"""

from __future__ import annotations

import math

import numpy as np

from harness.tasks import GRU, LSTM, Conv2D, Dense, SimpleRNN, Task

#: how many gate blocks each recurrent kind stacks in its kernels
GATES = {"simple_rnn": 1, "lstm": 4, "gru": 3}


def glorot_uniform(rng: np.random.Generator, shape: tuple[int, ...]) -> np.ndarray:
    """Glorot (Xavier) uniform; for a conv kernel the fans include the receptive field."""
    receptive = math.prod(shape[:-2])
    fan_in, fan_out = shape[-2] * receptive, shape[-1] * receptive
    limit = np.sqrt(6.0 / (fan_in + fan_out))
    return rng.uniform(-limit, limit, shape).astype(np.float32)


def orthogonal(rng: np.random.Generator, shape: tuple[int, int]) -> np.ndarray:
    """A matrix with orthonormal rows or columns (Saxe et al., 2014), as Keras draws it."""
    rows, cols = shape
    q, r = np.linalg.qr(rng.standard_normal((max(rows, cols), min(rows, cols))))
    q *= np.sign(np.diag(r))
    return (q.T if rows < cols else q).astype(np.float32)


def initial_weights(task: Task) -> list[dict[str, np.ndarray]]:
    """One dict of float32 arrays per layer, in the harness's layout (see the module doc)."""
    rng = np.random.default_rng([task.seed, 0])
    weights: list[dict[str, np.ndarray]] = []
    for layer, in_shape in zip(task.model.layers, task.model.input_shapes(), strict=True):
        if isinstance(layer, Dense):
            weights.append(
                {
                    "kernel": glorot_uniform(rng, (in_shape[0], layer.units)),
                    "bias": np.zeros(layer.units, np.float32),
                }
            )
        elif isinstance(layer, Conv2D):
            shape = (*layer.kernel_size, in_shape[-1], layer.filters)
            weights.append(
                {"kernel": glorot_uniform(rng, shape), "bias": np.zeros(layer.filters, np.float32)}
            )
        elif isinstance(layer, SimpleRNN | LSTM | GRU):
            width = GATES[layer.kind] * layer.units
            bias = np.zeros((2, width) if isinstance(layer, GRU) else width, np.float32)
            if isinstance(layer, LSTM) and layer.unit_forget_bias:
                bias[layer.units : 2 * layer.units] = 1.0
            weights.append(
                {
                    "kernel": glorot_uniform(rng, (in_shape[-1], width)),
                    "recurrent_kernel": orthogonal(rng, (layer.units, width)),
                    "bias": bias,
                }
            )
        else:
            weights.append({})
    return weights


def count_parameters(weights: list[dict[str, np.ndarray]]) -> int:
    """The number of values in a model's weights (harness layout)."""
    return sum(array.size for layer in weights for array in layer.values())


def parameter_count(task: Task) -> int:
    """The number of trainable parameters of the task's model: what every plugin must report."""
    return count_parameters(initial_weights(task))


def batch_order(seed: int, epoch: int, num_samples: int) -> np.ndarray:
    """The order in which training samples are visited in ``epoch`` (0-based)."""
    return np.random.default_rng([seed, 1, epoch]).permutation(num_samples)
