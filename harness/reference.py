"""A plain numpy forward pass of every layer kind: the reference plugins are tested against.

It computes in float64 from the harness's weight layout (:mod:`harness.fairness`), written for
clarity rather than speed. A wrong gate order, a transposed kernel or a flatten in the wrong
memory order shows up as a mismatch against these functions.
"""

from __future__ import annotations

import numpy as np

from harness.tasks import (
    GRU,
    LSTM,
    Conv2D,
    Dense,
    Dropout,
    Flatten,
    Layer,
    MaxPool2D,
    ModelSpec,
    SimpleRNN,
)


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
    return recurrent(layer, weights, x)


def forward(model: ModelSpec, weights: list[dict[str, np.ndarray]], x: np.ndarray) -> np.ndarray:
    """The model's output for inputs ``x`` of shape ``(n, *model.input_shape)``."""
    for layer, layer_weights in zip(model.layers, weights, strict=True):
        x = layer_forward(layer, layer_weights, x)
    return x
