"""A plain numpy forward pass of every layer kind: the reference plugins are tested against.

It computes in float64 from the harness's weight layout (:mod:`harness.workload.fairness`), written for
clarity rather than speed. A wrong gate order, a transposed kernel or a flatten in the wrong
memory order shows up as a mismatch against these functions.
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
    Dropout,
    Embedding,
    Flatten,
    GlobalAvgPool2D,
    Layer,
    LayerNorm,
    MaxPool2D,
    MeanPool,
    ModelSpec,
    Patches,
    PositionEmbedding,
    ResidualBlock,
    SimpleRNN,
    TransformerEncoder,
)

#: erf elementwise (math.erf is exact to float64; scipy stays out of a cell's process)
_erf = np.vectorize(math.erf, otypes=[np.float64])


def activate(name: str, x: np.ndarray) -> np.ndarray:
    if name == "relu":
        return np.maximum(x, 0)
    if name == "tanh":
        return np.tanh(x)
    if name == "sigmoid":
        return 1 / (1 + np.exp(-x))
    if name == "softmax":
        shifted = np.exp(x - x.max(axis=-1, keepdims=True))
        return shifted / shifted.sum(axis=-1, keepdims=True)
    return x


def _same_padding(size: int, kernel: int, stride: int) -> tuple[int, int]:
    """TensorFlow's "same": the odd pixel goes after (bottom, right)."""
    out = -(-size // stride)
    total = max((out - 1) * stride + kernel - size, 0)
    return total // 2, total - total // 2


def conv2d(layer: Conv2D, weights: dict[str, np.ndarray], x: np.ndarray) -> np.ndarray:
    kernel = weights["kernel"].astype(np.float64)
    kh, kw = layer.kernel_size
    sh, sw = layer.strides
    if layer.padding == "same":
        x = np.pad(
            x,
            ((0, 0), _same_padding(x.shape[1], kh, sh), _same_padding(x.shape[2], kw, sw), (0, 0)),
        )
    out_h, out_w = (x.shape[1] - kh) // sh + 1, (x.shape[2] - kw) // sw + 1
    out = np.zeros((x.shape[0], out_h, out_w, layer.filters))
    for i in range(kh):
        for j in range(kw):
            patch = x[:, i : i + sh * out_h : sh, j : j + sw * out_w : sw, :]
            out += patch @ kernel[i, j]
    return activate(layer.activation, out + weights["bias"])


def convolve(x: np.ndarray, kernel: np.ndarray, strides: tuple[int, int]) -> np.ndarray:
    """A ``same``-padded convolution without a bias (a residual block's)."""
    kh, kw = kernel.shape[:2]
    sh, sw = strides
    x = np.pad(
        x, ((0, 0), _same_padding(x.shape[1], kh, sh), _same_padding(x.shape[2], kw, sw), (0, 0))
    )
    out_h, out_w = (x.shape[1] - kh) // sh + 1, (x.shape[2] - kw) // sw + 1
    out = np.zeros((x.shape[0], out_h, out_w, kernel.shape[3]))
    for i in range(kh):
        for j in range(kw):
            out += x[:, i : i + sh * out_h : sh, j : j + sw * out_w : sw, :] @ kernel[i, j]
    return out


def batch_norm(
    x: np.ndarray, weights: dict[str, np.ndarray], epsilon: float, prefix: str = ""
) -> np.ndarray:
    """Evaluation behaviour: normalised with the moving mean and variance."""
    mean, variance = weights[prefix + "moving_mean"], weights[prefix + "moving_variance"]
    scale = weights[prefix + "gamma"] / np.sqrt(variance.astype(np.float64) + epsilon)
    return (x - mean) * scale + weights[prefix + "beta"]


def batch_statistics(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """A training batch's mean and biased variance over every axis but the channels."""
    axes = tuple(range(x.ndim - 1))
    return x.mean(axis=axes), x.var(axis=axes)


def moving_statistics(
    layer: BatchNorm, weights: dict[str, np.ndarray], x: np.ndarray
) -> dict[str, np.ndarray]:
    """The moving mean and variance after one training step on input ``x`` (the update of
    :class:`~harness.workload.tasks.BatchNorm`, Keras's momentum, the biased variance)."""
    mean, variance = batch_statistics(np.asarray(x, np.float64))
    keep = layer.momentum
    return {
        "moving_mean": keep * weights["moving_mean"] + (1 - keep) * mean,
        "moving_variance": keep * weights["moving_variance"] + (1 - keep) * variance,
    }


def residual_block(
    layer: ResidualBlock, weights: dict[str, np.ndarray], x: np.ndarray
) -> np.ndarray:
    """Evaluation behaviour of :class:`~harness.workload.tasks.ResidualBlock`."""
    strides = (layer.strides[0], layer.strides[1])
    inner = np.maximum(
        batch_norm(convolve(x, weights["conv1_kernel"], strides), weights, layer.epsilon, "bn1_"),
        0,
    )
    inner = batch_norm(
        convolve(inner, weights["conv2_kernel"], (1, 1)), weights, layer.epsilon, "bn2_"
    )
    shortcut = x
    if layer.projects(x.shape[-1]):
        projected = convolve(x, weights["shortcut_kernel"], strides)
        shortcut = batch_norm(projected, weights, layer.epsilon, "shortcut_bn_")
    return np.maximum(inner + shortcut, 0)


def max_pool2d(layer: MaxPool2D, x: np.ndarray) -> np.ndarray:
    (ph, pw), (sh, sw) = layer.pool_size, layer.stride
    out_h, out_w = (x.shape[1] - ph) // sh + 1, (x.shape[2] - pw) // sw + 1
    windows = [
        x[:, i : i + sh * out_h : sh, j : j + sw * out_w : sw, :]
        for i in range(ph)
        for j in range(pw)
    ]
    return np.max(windows, axis=0)


def recurrent(layer: SimpleRNN | LSTM | GRU, weights: dict[str, np.ndarray], x: np.ndarray):
    kernel, recurrent_kernel, bias = (
        weights[name].astype(np.float64) for name in ("kernel", "recurrent_kernel", "bias")
    )
    units = layer.units
    h = np.zeros((x.shape[0], units))
    c = np.zeros_like(h)
    states = []
    for t in range(x.shape[1]):
        inputs = x[:, t, :] @ kernel
        if isinstance(layer, SimpleRNN):
            h = np.tanh(inputs + h @ recurrent_kernel + bias)
        elif isinstance(layer, LSTM):
            z = inputs + h @ recurrent_kernel + bias
            i, f, g, o = (z[:, k * units : (k + 1) * units] for k in range(4))
            c = activate("sigmoid", f) * c + activate("sigmoid", i) * np.tanh(g)
            h = activate("sigmoid", o) * np.tanh(c)
        else:
            inputs = inputs + bias[0]
            inner = h @ recurrent_kernel + bias[1]
            x_z, x_r, x_h = (inputs[:, k * units : (k + 1) * units] for k in range(3))
            h_z, h_r, h_h = (inner[:, k * units : (k + 1) * units] for k in range(3))
            update = activate("sigmoid", x_z + h_z)
            reset = activate("sigmoid", x_r + h_r)
            candidate = np.tanh(x_h + reset * h_h)
            h = update * h + (1 - update) * candidate
        states.append(h)
    return np.stack(states, axis=1) if layer.return_sequences else h


def patches(layer: Patches, x: np.ndarray) -> np.ndarray:
    """Row-major tokens over the patch grid, each token's values in (row, column, channel)."""
    n, h, w, c = x.shape
    p = layer.size
    grid = x.reshape(n, h // p, p, w // p, p, c).transpose(0, 1, 3, 2, 4, 5)
    return grid.reshape(n, (h // p) * (w // p), p * p * c)


def layer_norm(x: np.ndarray, gamma: np.ndarray, beta: np.ndarray, epsilon: float) -> np.ndarray:
    mean = x.mean(axis=-1, keepdims=True)
    variance = ((x - mean) ** 2).mean(axis=-1, keepdims=True)  # biased, as every framework's
    return (x - mean) / np.sqrt(variance + epsilon) * gamma + beta


def gelu(x: np.ndarray) -> np.ndarray:
    """The exact GELU, ``x * Phi(x)``: not the tanh approximation."""
    return 0.5 * x * (1 + _erf(x / math.sqrt(2)))


def attention(weights: dict[str, np.ndarray], x: np.ndarray, causal: bool = False) -> np.ndarray:
    """Multi-head self-attention over ``x (n, steps, width)``, output projection included;
    ``causal``: each step attends to itself and earlier steps only."""
    q, k, v = (
        np.einsum("ntd,dhk->nthk", x, weights[f"{name}_kernel"]) + weights[f"{name}_bias"]
        for name in ("query", "key", "value")
    )
    scores = np.einsum("nqhk,nshk->nhqs", q, k) / math.sqrt(q.shape[-1])
    if causal:
        steps = scores.shape[-1]
        scores = np.where(np.tri(steps, dtype=bool), scores, -np.inf)
    probabilities = activate("softmax", scores)  # over the keys (the last axis)
    mixed = np.einsum("nhqs,nshk->nqhk", probabilities, v)
    return np.einsum("nqhk,hkd->nqd", mixed, weights["output_kernel"]) + weights["output_bias"]


def transformer_encoder(
    layer: TransformerEncoder, weights: dict[str, np.ndarray], x: np.ndarray
) -> np.ndarray:
    """Pre-norm: ``x + MHA(LN1(x))``, then ``x + MLP(LN2(x))`` (dropout is off when evaluating)."""
    w = {name: value.astype(np.float64) for name, value in weights.items()}
    normed = layer_norm(x, w["norm1_gamma"], w["norm1_beta"], layer.epsilon)
    x = x + attention(w, normed, layer.causal)
    hidden = layer_norm(x, w["norm2_gamma"], w["norm2_beta"], layer.epsilon)
    hidden = gelu(hidden @ w["mlp_kernel"] + w["mlp_bias"])
    return x + hidden @ w["mlp_output_kernel"] + w["mlp_output_bias"]


def layer_forward(layer: Layer, weights: dict[str, np.ndarray], x: np.ndarray) -> np.ndarray:
    """The output of one layer (evaluation behaviour: dropout is the identity)."""
    x = np.asarray(x, dtype=np.float64)
    if isinstance(layer, Flatten):
        return x.reshape(len(x), -1)  # row-major over (h, w, c): channels vary fastest
    if isinstance(layer, Dropout):
        return x
    if isinstance(layer, Dense):
        return activate(layer.activation, x @ weights["kernel"] + weights["bias"])
    if isinstance(layer, Conv2D):
        return conv2d(layer, weights, x)
    if isinstance(layer, MaxPool2D):
        return max_pool2d(layer, x)
    if isinstance(layer, BatchNorm):
        return activate(layer.activation, batch_norm(x, weights, layer.epsilon))
    if isinstance(layer, GlobalAvgPool2D):
        return x.mean(axis=(1, 2))
    if isinstance(layer, ResidualBlock):
        return residual_block(layer, weights, x)
    if isinstance(layer, Patches):
        return patches(layer, x)
    if isinstance(layer, PositionEmbedding):
        return x + weights["embedding"]
    if isinstance(layer, Embedding):
        return weights["embeddings"].astype(np.float64)[x.astype(np.int64)]
    if isinstance(layer, MeanPool):
        return x.mean(axis=1)
    if isinstance(layer, LayerNorm):
        return layer_norm(x, weights["gamma"], weights["beta"], layer.epsilon)
    if isinstance(layer, TransformerEncoder):
        return transformer_encoder(layer, weights, x)
    return recurrent(layer, weights, x)


def forward(model: ModelSpec, weights: list[dict[str, np.ndarray]], x: np.ndarray) -> np.ndarray:
    """The model's output for inputs ``x`` of shape ``(n, *model.input_shape)``."""
    for layer, layer_weights in zip(model.layers, weights, strict=True):
        x = layer_forward(layer, layer_weights, x)
    return x
