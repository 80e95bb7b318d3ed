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
position_     ``embedding (steps, features)``
embedding
embedding     ``embeddings (input_dim, output_dim)``: row ``i`` is token id ``i``'s vector
layer_norm    ``gamma (features,)``, ``beta (features,)``
batch_norm    ``gamma``, ``beta``, ``moving_mean``, ``moving_variance``, each ``(channels,)``
              (the moving statistics are not trained; every trainer returns them too)
residual_     ``conv1_kernel (3, 3, in, filters)``, ``bn1_`` + the four batch-norm arrays,
block         ``conv2_kernel (3, 3, filters, filters)``, ``bn2_`` + the four; with a
              projection, ``shortcut_kernel (1, 1, in, filters)`` and ``shortcut_bn_`` + the four
transformer_  ``norm1_gamma``, ``norm1_beta`` ``(width,)``; ``query_kernel``, ``key_kernel``,
encoder       ``value_kernel`` ``(width, heads, key_dim)`` with ``query_bias``, ``key_bias``,
              ``value_bias`` ``(heads, key_dim)``; ``output_kernel (heads, key_dim, width)``,
              ``output_bias (width,)``; ``norm2_gamma``, ``norm2_beta`` ``(width,)``;
              ``mlp_kernel (width, mlp_units)``, ``mlp_bias (mlp_units,)``,
              ``mlp_output_kernel (mlp_units, width)``, ``mlp_output_bias (width,)``
============  ==============================================================================

The attention arrays are Keras's ``MultiHeadAttention`` shapes (Flax's ``DenseGeneral`` kernels
have the same); each is drawn Glorot-uniform as the 2-D matrix of its projection (``(width,
heads * key_dim)``, and ``(heads * key_dim, width)`` for the output), then reshaped. The arrays
are drawn in the order listed.

Other layers have no parameters (an empty dict).
"""

from __future__ import annotations

import math

import numpy as np

from harness.workload.tasks import (
    GRU,
    LSTM,
    BatchNorm,
    Conv2D,
    Dense,
    Embedding,
    LayerNorm,
    PositionEmbedding,
    ResidualBlock,
    SimpleRNN,
    Task,
    TransformerEncoder,
)

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
                    "kernel": glorot_uniform(rng, (in_shape[-1], layer.units)),
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
        elif isinstance(layer, Embedding):
            table = rng.normal(0.0, layer.stddev, (layer.input_dim, layer.output_dim))
            weights.append({"embeddings": table.astype(np.float32)})
        elif isinstance(layer, PositionEmbedding):
            embedding = rng.normal(0.0, layer.stddev, in_shape)
            weights.append({"embedding": embedding.astype(np.float32)})
        elif isinstance(layer, LayerNorm):
            weights.append(_layer_norm(in_shape[-1]))
        elif isinstance(layer, BatchNorm):
            weights.append(batch_norm_weights(in_shape[-1]))
        elif isinstance(layer, ResidualBlock):
            weights.append(residual_weights(rng, layer, in_shape[-1]))
        elif isinstance(layer, TransformerEncoder):
            weights.append(encoder_weights(rng, layer, in_shape[-1]))
        else:
            weights.append({})
    return weights


def batch_norm_weights(channels: int, prefix: str = "") -> dict[str, np.ndarray]:
    ones, zeros = np.ones(channels, np.float32), np.zeros(channels, np.float32)
    return {
        f"{prefix}gamma": ones,
        f"{prefix}beta": zeros,
        f"{prefix}moving_mean": zeros.copy(),
        f"{prefix}moving_variance": ones.copy(),
    }


def residual_weights(
    rng: np.random.Generator, layer: ResidualBlock, in_channels: int
) -> dict[str, np.ndarray]:
    """A residual block's arrays, drawn in the order listed in the module doc."""
    width = layer.filters
    weights = {"conv1_kernel": glorot_uniform(rng, (3, 3, in_channels, width))}
    weights |= batch_norm_weights(width, "bn1_")
    weights["conv2_kernel"] = glorot_uniform(rng, (3, 3, width, width))
    weights |= batch_norm_weights(width, "bn2_")
    if layer.projects(in_channels):
        weights["shortcut_kernel"] = glorot_uniform(rng, (1, 1, in_channels, width))
        weights |= batch_norm_weights(width, "shortcut_bn_")
    return weights


def _layer_norm(width: int, prefix: str = "") -> dict[str, np.ndarray]:
    return {
        f"{prefix}gamma": np.ones(width, np.float32),
        f"{prefix}beta": np.zeros(width, np.float32),
    }


def encoder_weights(
    rng: np.random.Generator, layer: TransformerEncoder, width: int
) -> dict[str, np.ndarray]:
    """A Transformer encoder block's arrays (see the module doc), drawn in the order listed."""
    heads, key_dim = layer.heads, layer.key_dim
    inner = heads * key_dim
    weights = _layer_norm(width, "norm1_")
    for name in ("query", "key", "value"):
        weights[f"{name}_kernel"] = glorot_uniform(rng, (width, inner)).reshape(
            width, heads, key_dim
        )
        weights[f"{name}_bias"] = np.zeros((heads, key_dim), np.float32)
    weights["output_kernel"] = glorot_uniform(rng, (inner, width)).reshape(heads, key_dim, width)
    weights["output_bias"] = np.zeros(width, np.float32)
    weights |= _layer_norm(width, "norm2_")
    weights["mlp_kernel"] = glorot_uniform(rng, (width, layer.mlp_units))
    weights["mlp_bias"] = np.zeros(layer.mlp_units, np.float32)
    weights["mlp_output_kernel"] = glorot_uniform(rng, (layer.mlp_units, width))
    weights["mlp_output_bias"] = np.zeros(width, np.float32)
    return weights


#: arrays a model keeps but doesn't train: they are not parameters
NOT_TRAINED = ("moving_mean", "moving_variance")


def count_parameters(weights: list[dict[str, np.ndarray]]) -> int:
    """The number of trained values in a model's weights (harness layout): a batch norm's
    moving statistics are kept, returned and compared, but not counted."""
    return sum(
        array.size
        for layer in weights
        for name, array in layer.items()
        if not name.endswith(NOT_TRAINED)
    )


def parameter_count(task: Task) -> int:
    """The number of trainable parameters of the task's model: what every plugin must report."""
    return count_parameters(initial_weights(task))


def batch_order(seed: int, epoch: int, num_samples: int) -> np.ndarray:
    """The order in which training samples are visited in ``epoch`` (0-based)."""
    return np.random.default_rng([seed, 1, epoch]).permutation(num_samples)
