"""A task's model as a PyTorch module, and its weights between the harness's layout and torch's.

Imported only from :meth:`TorchAdapter.build`, so importing the plugin doesn't import torch.

Where torch's conventions differ from the harness's (Keras's):

* Images arrive channels-last ``(n, h, w, c)``; torch's convolutions want channels-first. The
  model permutes once before the first convolution or pooling, back before a flatten (so the
  next dense kernel sees ``(h, w, c)`` order) and back before returning an image.
* ``nn.Linear`` keeps ``(out, in)``, ``nn.Conv2d`` ``(out, in, kh, kw)``, recurrent modules
  ``(gates * units, in)``: kernels are transposed on the way in and out.
* TensorFlow's ``same`` padding puts the odd pixel at the bottom and right, and is defined for
  any stride; ``nn.Conv2d(padding="same")`` is neither, so the padding is explicit.
* ``nn.RNN`` and ``nn.LSTM`` add two biases where the harness has one: the harness's goes in
  ``bias_ih`` and ``bias_hh`` stays zero and frozen, so the function and the trainable
  parameters are Keras's. ``nn.GRU`` computes Keras 3's "reset_after" GRU with its two biases,
  but stacks the gates reset, update, candidate instead of update, reset, candidate.
* A ``transformer_encoder`` is ``nn.TransformerEncoderLayer`` with ``norm_first=True`` (pre-norm)
  and ``activation="gelu"`` (the exact, erf form). Its attention packs the query, key and value
  projections into one ``in_proj_weight (3 width, width)``: the harness's ``(width, heads,
  key_dim)`` kernels are flattened to ``(width, heads * key_dim)``, transposed and stacked. It
  needs ``heads * key_dim`` to equal the width; another shape is declined.
* A ``batch_norm`` is not ``nn.BatchNorm``: that one's momentum is the share of the new value
  and it updates its running variance with the unbiased batch variance, where the task keeps
  ``momentum`` of the old value and uses the biased variance. :class:`_BatchNorm` normalises
  with ``F.batch_norm`` and updates its moving statistics itself.
* A ``residual_block``'s convolutions have no bias and are padded as TensorFlow pads.
* An ``embedding`` is ``nn.Embedding`` (its table is the harness's ``(input_dim, output_dim)``
  as it is); the token ids arrive as float32 and are cast to int64 inside the module.
* A ``causal`` encoder passes a float mask (``-inf`` above the diagonal) with ``is_causal=True``
  to the layer, so step ``i`` attends to steps ``j <= i`` only.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from harness.api import (
    GRU,
    LAYER_KINDS,
    LSTM,
    BatchNorm,
    Conv2D,
    Dense,
    Dropout,
    Flatten,
    GlobalAvgPool2D,
    LayerNorm,
    MaxPool2D,
    MeanPool,
    Patches,
    PositionEmbedding,
    ResidualBlock,
    SimpleRNN,
    TransformerEncoder,
    UnsupportedSpec,
)

#: the API 3 token embedding's kind: ``harness.api`` doesn't export its spec class (Embedding)
#: yet, and a plugin imports nothing else of harness, so the layer is known by its kind
_EMBEDDING = "embedding"
_ACTIVATIONS = {"relu": nn.ReLU, "tanh": nn.Tanh, "sigmoid": nn.Sigmoid}
#: the harness's GRU gate blocks (z, r, h) taken in torch's order (r, z, n); its own inverse
_GRU_GATES = (1, 0, 2)


class InPrecision(nn.Module):
    """A model run in a cell's precision, returning float32 outputs for the float32 loss.

    :param autocast: the dtype of ``torch.autocast`` around the forward pass (``mixed``), or
        ``None`` for a module whose parameters are already in its dtype (``bfloat16``).
    """

    def __init__(self, module: nn.Module, device_type: str, autocast: torch.dtype | None) -> None:
        super().__init__()
        self.module = module
        self.device_type = device_type
        self.autocast = autocast

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.autocast is None:
            return self.module(x).float()
        with torch.autocast(self.device_type, dtype=self.autocast):
            output = self.module(x)
        return output.float()


@dataclass
class BuiltModel:
    """The module, which submodule holds each layer's parameters, and the output's last step."""

    module: nn.Sequential
    #: per task layer: the nn.Linear / nn.Conv2d / _Recurrent holding its weights, or None
    holders: list[nn.Module | None]
    #: whether a final softmax was left out of ``module`` (the loss takes logits)
    softmax_folded: bool


def build_model(model_spec, weights, *, fold_final_softmax: bool) -> BuiltModel:
    """An ``nn.Sequential`` computing ``model_spec`` from the harness's ``weights``.

    :param fold_final_softmax: leave a final dense layer's softmax out of the module, for a
        loss that takes logits.
    :raises UnsupportedSpec: for a layer this function doesn't know.
    """
    for spec in model_spec.layers:  # before any shape is worked out from an unknown kind
        if spec.kind not in LAYER_KINDS:
            raise UnsupportedSpec(f"layer kind {spec.kind!r}")
    modules: list[nn.Module] = []
    holders: list[nn.Module | None] = []
    channels_first = False  # whether the running image tensor is (n, c, h, w)
    specs = model_spec.layers
    for index, (spec, params, in_shape) in enumerate(
        zip(specs, weights, model_spec.input_shapes(), strict=True)
    ):
        last = index == len(specs) - 1
        if _wants_channels_first(spec, in_shape) and not channels_first:
            modules.append(_Permute(0, 3, 1, 2))
            channels_first = True
        elif isinstance(spec, Flatten | Patches) and channels_first:
            modules.append(_Permute(0, 2, 3, 1))
            channels_first = False
        layer_modules, holder = _layer_modules(
            spec, in_shape, fold_softmax=last and fold_final_softmax
        )
        modules.extend(layer_modules)
        if isinstance(spec, GlobalAvgPool2D):
            channels_first = False  # (n, c): no image left to permute back
        if holder is not None:
            load_weights(spec, holder, params)
        holders.append(holder)
    if channels_first:
        modules.append(_Permute(0, 2, 3, 1))  # an image output is returned channels-last
    folded = (
        fold_final_softmax and isinstance(specs[-1], Dense) and specs[-1].activation == "softmax"
    )
    return BuiltModel(nn.Sequential(*modules), holders, folded)


def _wants_channels_first(spec, in_shape) -> bool:
    """Whether a layer computes on a channels-first image (a batch norm only on an image)."""
    if isinstance(spec, BatchNorm):
        return len(in_shape) == 3
    return isinstance(spec, Conv2D | MaxPool2D | GlobalAvgPool2D | ResidualBlock)


def _layer_modules(
    spec, in_shape, *, fold_softmax: bool
) -> tuple[list[nn.Module], nn.Module | None]:
    """One layer's modules (an image comes channels-first) and the one holding its weights.

    :param fold_softmax: leave a dense layer's softmax out (the final layer's, for a loss
        that takes logits).
    """
    modules: list[nn.Module] = []
    holder: nn.Module | None = None
    if isinstance(spec, Flatten):
        modules.append(nn.Flatten())
    elif isinstance(spec, Dropout):
        modules.append(nn.Dropout(spec.rate))
    elif isinstance(spec, Dense):
        holder = nn.Linear(in_shape[-1], spec.units)  # on a sequence, every step
        modules.append(holder)
        if not (fold_softmax and spec.activation == "softmax"):
            modules.extend(_activation(spec.activation, dim=-1))
    elif isinstance(spec, Conv2D):
        padding, conv_padding = _conv_padding(spec, in_shape)
        if padding is not None:
            modules.append(_Pad(padding))
        holder = nn.Conv2d(in_shape[-1], spec.filters, spec.kernel_size, spec.strides, conv_padding)
        modules.append(holder)
        modules.extend(_activation(spec.activation, dim=1))
    elif isinstance(spec, MaxPool2D):
        modules.append(nn.MaxPool2d(spec.pool_size, spec.stride))
    elif isinstance(spec, SimpleRNN | LSTM | GRU):
        holder = _Recurrent(spec, in_shape[-1])
        modules.append(holder)
    elif isinstance(spec, Patches):
        modules.append(_Patches(spec.size))
    elif isinstance(spec, PositionEmbedding):
        holder = _PositionEmbedding(in_shape)
        modules.append(holder)
    elif spec.kind == _EMBEDDING:
        holder = _Embedding(spec.input_dim, spec.output_dim)
        modules.append(holder)
    elif isinstance(spec, MeanPool):
        modules.append(_MeanPool())
    elif isinstance(spec, LayerNorm):
        holder = nn.LayerNorm(in_shape[-1], eps=spec.epsilon)
        modules.append(holder)
    elif isinstance(spec, TransformerEncoder):
        holder = _encoder(spec, in_shape)
        modules.append(holder)
    elif isinstance(spec, BatchNorm | GlobalAvgPool2D | ResidualBlock):
        return _resnet_modules(spec, in_shape)
    else:
        raise UnsupportedSpec(f"layer kind {spec.kind!r}")
    return modules, holder


def _resnet_modules(spec, in_shape) -> tuple[list[nn.Module], nn.Module | None]:
    """A ResNet layer's modules; an image comes channels-first, other inputs channels-last."""
    if isinstance(spec, GlobalAvgPool2D):
        return [_GlobalAvgPool()], None
    if isinstance(spec, ResidualBlock):
        block = _ResidualBlock(spec, in_shape)
        return [block], block
    holder = _BatchNorm(in_shape[-1], spec.momentum, spec.epsilon, channels_last=len(in_shape) != 3)
    return [holder, *_activation(spec.activation, dim=1)], holder


def _activation(name: str, dim: int) -> list[nn.Module]:
    if name == "linear":
        return []
    if name == "softmax":
        return [nn.Softmax(dim=dim)]
    return [_ACTIVATIONS[name]()]


def _conv_padding(spec: Conv2D, in_shape) -> tuple[tuple[int, ...] | None, tuple[int, int]]:
    """``(F.pad widths or None, nn.Conv2d padding)`` for TensorFlow's padding rule.

    Symmetric padding is left to the convolution; uneven padding is done by ``F.pad``.
    """
    if spec.padding == "valid":
        return None, (0, 0)
    return _same_padding(in_shape, spec.kernel_size, spec.strides)


def _same_padding(in_shape, kernel_size, strides) -> tuple[tuple[int, ...] | None, tuple[int, int]]:
    """TensorFlow's ``same`` for an ``(h, w, ...)`` input: the odd pixel after (bottom, right)."""
    sides = []
    for size, kernel, stride in zip(in_shape[:2], kernel_size, strides, strict=True):
        out = -(-size // stride)
        total = max((out - 1) * stride + kernel - size, 0)
        sides.append((total // 2, total - total // 2))
    (top, bottom), (left, right) = sides
    if top == bottom and left == right:
        return None, (top, left)
    return (left, right, top, bottom), (0, 0)


class _Permute(nn.Module):
    def __init__(self, *dims: int) -> None:
        super().__init__()
        self.dims = dims

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.permute(*self.dims)


class _Pad(nn.Module):
    def __init__(self, padding: tuple[int, ...]) -> None:
        super().__init__()
        self.padding = padding

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.pad(x, self.padding)


class _Patches(nn.Module):
    """(n, h, w, c) -> (n, h/p * w/p, p * p * c), as the harness orders tokens and values."""

    def __init__(self, size: int) -> None:
        super().__init__()
        self.size = size

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, h, w, c = x.shape
        p = self.size
        grid = x.reshape(n, h // p, p, w // p, p, c).permute(0, 1, 3, 2, 4, 5)
        return grid.reshape(n, (h // p) * (w // p), p * p * c)


class _PositionEmbedding(nn.Module):
    def __init__(self, shape) -> None:
        super().__init__()
        self.embedding = nn.Parameter(torch.zeros(tuple(shape)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.embedding


class _Embedding(nn.Embedding):
    """``nn.Embedding`` on token ids that arrive as float32: (n, steps) -> (n, steps, dim)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        return super().forward(x.long())


class _MeanPool(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.mean(dim=1)


class _GlobalAvgPool(nn.Module):
    """(n, c, h, w) -> (n, c)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.mean(dim=(2, 3))


#: a batch norm's arrays in the harness's layout, and where :class:`_BatchNorm` keeps them
_BATCH_NORM_ARRAYS = {
    "gamma": "weight",
    "beta": "bias",
    "moving_mean": "moving_mean",
    "moving_variance": "moving_variance",
}


class _BatchNorm(nn.Module):
    """The task's batch norm over every axis but the channels (axis 1, or the last one when
    ``channels_last``): Keras's momentum, the biased batch variance in the moving variance.

    The moving statistics are buffers, so ``parameters()`` (the optimizer, the count) leaves
    them out, and ``model.train()`` / ``model.eval()`` choose which statistics normalise.
    """

    moving_mean: torch.Tensor
    moving_variance: torch.Tensor

    def __init__(self, channels: int, momentum: float, epsilon: float, channels_last: bool):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(channels))
        self.bias = nn.Parameter(torch.zeros(channels))
        self.register_buffer("moving_mean", torch.zeros(channels))
        self.register_buffer("moving_variance", torch.ones(channels))
        self.momentum = momentum  # the share of the old statistics kept (Keras's convention)
        self.epsilon = epsilon
        self.channels_last = channels_last

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        moved = self.channels_last and x.dim() > 2  # F.batch_norm wants the channels at axis 1
        if moved:
            x = x.movedim(-1, 1)
        if self.training:
            self._update(x)
            # no running statistics given: normalised with the batch's, variance biased
            y = F.batch_norm(x, None, None, self.weight, self.bias, True, 0.0, self.epsilon)
        else:
            y = F.batch_norm(
                x, self.moving_mean, self.moving_variance, self.weight, self.bias,
                False, 0.0, self.epsilon,
            )  # fmt: skip
        return y.movedim(1, -1) if moved else y

    def _update(self, x: torch.Tensor) -> None:
        """moving = momentum * moving + (1 - momentum) * batch, the variance biased.

        The batch's statistics are taken in float32 whatever ``x`` is (a bfloat16 activation
        under autocast), and stored in the buffers' dtype: float32 in a ``mixed`` cell,
        bfloat16 in a ``bfloat16`` one, where ``module.to(torch.bfloat16)`` cast the buffers
        with the parameters.
        """
        with torch.no_grad():
            axes = [axis for axis in range(x.dim()) if axis != 1]
            variance, mean = torch.var_mean(x.float(), dim=axes, correction=0)
            dtype = self.moving_mean.dtype
            self.moving_mean.lerp_(mean.to(dtype), 1 - self.momentum)
            self.moving_variance.lerp_(variance.to(dtype), 1 - self.momentum)

    def load(self, params: dict[str, np.ndarray], prefix: str = "") -> None:
        with torch.no_grad():
            for name, attribute in _BATCH_NORM_ARRAYS.items():
                getattr(self, attribute).copy_(torch.from_numpy(params[prefix + name]))

    def read(self, prefix: str = "") -> dict[str, np.ndarray]:
        return {
            prefix + name: _numpy(getattr(self, attribute))
            for name, attribute in _BATCH_NORM_ARRAYS.items()
        }


class _SameConv(nn.Module):
    """A convolution without a bias, padded as TensorFlow pads ``same``."""

    def __init__(self, in_shape, filters: int, kernel: int, strides) -> None:
        super().__init__()
        self.padding, conv_padding = _same_padding(in_shape, (kernel, kernel), strides)
        self.conv = nn.Conv2d(
            in_shape[-1], filters, kernel, tuple(strides), conv_padding, bias=False
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(x if self.padding is None else F.pad(x, self.padding))

    def load(self, kernel: np.ndarray) -> None:
        with torch.no_grad():
            self.conv.weight.copy_(torch.from_numpy(kernel.transpose(3, 2, 0, 1).copy()))

    def read(self) -> np.ndarray:
        return np.ascontiguousarray(_numpy(self.conv.weight).transpose(2, 3, 1, 0))


class _ResidualBlock(nn.Module):
    """``relu(BN2(conv2(relu(BN1(conv1(x))))) + shortcut(x))`` on channels-first images."""

    def __init__(self, spec: ResidualBlock, in_shape) -> None:
        super().__init__()
        filters, strides = spec.filters, tuple(spec.strides)
        self.conv1 = _SameConv(in_shape, filters, 3, strides)
        inner_shape = (-(-in_shape[0] // strides[0]), -(-in_shape[1] // strides[1]), filters)
        self.conv2 = _SameConv(inner_shape, filters, 3, (1, 1))
        self.bn1, self.bn2 = (_BatchNorm(filters, spec.momentum, spec.epsilon, False) for _ in "12")
        self.shortcut: _SameConv | None = None
        self.shortcut_bn: _BatchNorm | None = None
        if spec.projects(in_shape[-1]):
            self.shortcut = _SameConv(in_shape, filters, 1, strides)
            self.shortcut_bn = _BatchNorm(filters, spec.momentum, spec.epsilon, False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        inner = F.relu(self.bn1(self.conv1(x)))
        inner = self.bn2(self.conv2(inner))
        if self.shortcut is not None and self.shortcut_bn is not None:
            x = self.shortcut_bn(self.shortcut(x))
        return F.relu(inner + x)

    def load(self, params: dict[str, np.ndarray]) -> None:
        for kernel, prefix, conv, bn in self._parts():
            conv.load(params[kernel])
            bn.load(params, prefix)

    def read(self) -> dict[str, np.ndarray]:
        """In the harness's order: conv1, bn1, conv2, bn2, then the shortcut's."""
        weights: dict[str, np.ndarray] = {}
        for kernel, prefix, conv, bn in self._parts():
            weights[kernel] = conv.read()
            weights |= bn.read(prefix)
        return weights

    def _parts(self) -> list[tuple[str, str, _SameConv, _BatchNorm]]:
        """(kernel's name, batch norm's prefix, convolution, batch norm), in the harness's order."""
        parts = [("conv1_kernel", "bn1_", self.conv1, self.bn1)]
        parts.append(("conv2_kernel", "bn2_", self.conv2, self.bn2))
        if self.shortcut is not None and self.shortcut_bn is not None:
            parts.append(("shortcut_kernel", "shortcut_bn_", self.shortcut, self.shortcut_bn))
        return parts


def _encoder(spec: TransformerEncoder, in_shape) -> nn.TransformerEncoderLayer:
    width = in_shape[-1]
    if spec.heads * spec.key_dim != width:
        raise UnsupportedSpec(
            f"transformer_encoder: nn.TransformerEncoderLayer splits the width ({width}) among "
            f"the heads, so heads x key_dim must equal it, not {spec.heads} x {spec.key_dim}"
        )
    options: dict[str, Any] = dict(
        dim_feedforward=spec.mlp_units,
        dropout=spec.dropout,  # attention probabilities, MLP activation, each sublayer's output
        activation="gelu",  # F.gelu's default is the exact (erf) form
        layer_norm_eps=spec.epsilon,
        batch_first=True,
        norm_first=True,
        bias=True,
    )
    if spec.causal:
        return _CausalEncoder(in_shape[0], width, spec.heads, **options)
    return nn.TransformerEncoderLayer(width, spec.heads, **options)


class _CausalEncoder(nn.TransformerEncoderLayer):
    """An encoder layer whose step ``i`` attends to steps ``j <= i`` only (a decoder block).

    The mask is a buffer left out of the ``state_dict``, so the weights are the plain layer's.
    """

    causal_mask: torch.Tensor  # (steps, steps): 0 on and below the diagonal, -inf above it

    def __init__(self, steps: int, width: int, heads: int, **options: Any) -> None:
        super().__init__(width, heads, **options)
        mask = torch.triu(torch.full((steps, steps), float("-inf")), diagonal=1)
        self.register_buffer("causal_mask", mask, persistent=False)

    def forward(self, src: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        return super().forward(src, src_mask=self.causal_mask, is_causal=True)


#: the harness's encoder arrays and where nn.TransformerEncoderLayer keeps them (one-to-one)
_ENCODER_DIRECT = {
    "norm1_gamma": "norm1.weight",
    "norm1_beta": "norm1.bias",
    "output_bias": "self_attn.out_proj.bias",
    "norm2_gamma": "norm2.weight",
    "norm2_beta": "norm2.bias",
    "mlp_bias": "linear1.bias",
    "mlp_output_bias": "linear2.bias",
}
_ENCODER_TRANSPOSED = {
    "mlp_kernel": "linear1.weight",
    "mlp_output_kernel": "linear2.weight",
}
_QKV = ("query", "key", "value")


def _encoder_to_torch(params: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """The harness's encoder arrays as the layer's ``state_dict`` entries."""
    width = params["norm1_gamma"].shape[0]
    state = {target: params[name] for name, target in _ENCODER_DIRECT.items()}
    state |= {target: params[name].T for name, target in _ENCODER_TRANSPOSED.items()}
    state["self_attn.in_proj_weight"] = np.concatenate(
        [params[f"{name}_kernel"].reshape(width, -1).T for name in _QKV]
    )
    state["self_attn.in_proj_bias"] = np.concatenate(
        [params[f"{name}_bias"].reshape(-1) for name in _QKV]
    )
    state["self_attn.out_proj.weight"] = params["output_kernel"].reshape(-1, width).T
    return state


def _encoder_from_torch(holder: nn.TransformerEncoderLayer) -> dict[str, np.ndarray]:
    """The inverse of :func:`_encoder_to_torch`, in the harness's order."""
    state = {name: _numpy(value) for name, value in holder.state_dict().items()}
    heads, width = holder.self_attn.num_heads, holder.self_attn.embed_dim
    key_dim = width // heads
    weights = {"norm1_gamma": state["norm1.weight"], "norm1_beta": state["norm1.bias"]}
    kernels = np.split(state["self_attn.in_proj_weight"], 3)
    biases = np.split(state["self_attn.in_proj_bias"], 3)
    for name, kernel, bias in zip(_QKV, kernels, biases, strict=True):
        weights[f"{name}_kernel"] = kernel.T.reshape(width, heads, key_dim)
        weights[f"{name}_bias"] = bias.reshape(heads, key_dim)
    weights["output_kernel"] = state["self_attn.out_proj.weight"].T.reshape(heads, key_dim, width)
    for name, source in _ENCODER_DIRECT.items():
        weights[name] = state[source]
    for name, source in _ENCODER_TRANSPOSED.items():
        weights[name] = state[source].T
    order = ("norm1_gamma", "norm1_beta", *(f"{n}_{p}" for n in _QKV for p in ("kernel", "bias")))
    order += ("output_kernel", "output_bias", "norm2_gamma", "norm2_beta", "mlp_kernel")
    order += ("mlp_bias", "mlp_output_kernel", "mlp_output_bias")
    return {name: np.ascontiguousarray(weights[name]) for name in order}


class _Recurrent(nn.Module):
    """``nn.RNN`` / ``nn.LSTM`` / ``nn.GRU`` over ``(n, steps, features)`` from zero states,
    returning every step's output or only the last one."""

    def __init__(self, spec: SimpleRNN | LSTM | GRU, features: int) -> None:
        super().__init__()
        kind = {"simple_rnn": nn.RNN, "lstm": nn.LSTM, "gru": nn.GRU}[spec.kind]
        extra = {"nonlinearity": "tanh"} if spec.kind == "simple_rnn" else {}
        self.layer = kind(features, spec.units, batch_first=True, **extra)
        self.return_sequences = spec.return_sequences
        if spec.kind != "gru":
            # the harness's layout has one bias; a second, trainable one would be an extra
            # parameter vector with its own Adam trajectory
            self.layer.bias_hh_l0.requires_grad_(False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        outputs, _ = self.layer(x)
        return outputs if self.return_sequences else outputs[:, -1]


def _gate_blocks(array: np.ndarray, gates: tuple[int, ...], axis: int) -> np.ndarray:
    blocks = np.split(array, len(gates), axis=axis)
    return np.concatenate([blocks[gate] for gate in gates], axis=axis)


def load_weights(spec, holder: Any, params: dict[str, np.ndarray]) -> None:
    """Copy one layer's harness-layout arrays into its torch module."""
    with torch.no_grad():
        if isinstance(spec, Dense):
            holder.weight.copy_(torch.from_numpy(params["kernel"].T.copy()))
            holder.bias.copy_(torch.from_numpy(params["bias"]))
        elif isinstance(spec, Conv2D):
            holder.weight.copy_(torch.from_numpy(params["kernel"].transpose(3, 2, 0, 1).copy()))
            holder.bias.copy_(torch.from_numpy(params["bias"]))
        elif isinstance(spec, PositionEmbedding):
            holder.embedding.copy_(torch.from_numpy(params["embedding"]))
        elif spec.kind == _EMBEDDING:
            holder.weight.copy_(torch.from_numpy(params["embeddings"]))
        elif isinstance(spec, LayerNorm):
            holder.weight.copy_(torch.from_numpy(params["gamma"]))
            holder.bias.copy_(torch.from_numpy(params["beta"]))
        elif isinstance(spec, TransformerEncoder):
            state = {k: torch.from_numpy(v.copy()) for k, v in _encoder_to_torch(params).items()}
            holder.load_state_dict(state, strict=True)
        elif isinstance(spec, BatchNorm | ResidualBlock):
            holder.load(params)
        else:
            layer = holder.layer
            kernel, recurrent_kernel, bias = (
                params[name] for name in ("kernel", "recurrent_kernel", "bias")
            )
            if isinstance(spec, GRU):
                kernel = _gate_blocks(kernel, _GRU_GATES, axis=1)
                recurrent_kernel = _gate_blocks(recurrent_kernel, _GRU_GATES, axis=1)
                bias_ih, bias_hh = (_gate_blocks(row, _GRU_GATES, axis=0) for row in bias)
            else:
                bias_ih, bias_hh = bias, np.zeros_like(bias)
            layer.weight_ih_l0.copy_(torch.from_numpy(kernel.T.copy()))
            layer.weight_hh_l0.copy_(torch.from_numpy(recurrent_kernel.T.copy()))
            layer.bias_ih_l0.copy_(torch.from_numpy(np.ascontiguousarray(bias_ih)))
            layer.bias_hh_l0.copy_(torch.from_numpy(np.ascontiguousarray(bias_hh)))


def _numpy(tensor: torch.Tensor) -> np.ndarray:
    # numpy has no bfloat16: a bfloat16 tensor is widened first (exactly)
    return tensor.detach().float().cpu().numpy().astype(np.float32)


def read_weights(spec, holder: Any) -> dict[str, np.ndarray]:
    """One layer's current weights in the harness's layout (the inverse of :func:`load_weights`)."""
    if holder is None:
        return {}
    if isinstance(spec, Dense):
        kernel = _numpy(holder.weight).T
        return {"kernel": np.ascontiguousarray(kernel), "bias": _numpy(holder.bias)}
    if isinstance(spec, Conv2D):
        kernel = _numpy(holder.weight).transpose(2, 3, 1, 0)
        return {"kernel": np.ascontiguousarray(kernel), "bias": _numpy(holder.bias)}
    if isinstance(spec, PositionEmbedding):
        return {"embedding": _numpy(holder.embedding)}
    if spec.kind == _EMBEDDING:
        return {"embeddings": _numpy(holder.weight)}
    if isinstance(spec, LayerNorm):
        return {"gamma": _numpy(holder.weight), "beta": _numpy(holder.bias)}
    if isinstance(spec, TransformerEncoder):
        return _encoder_from_torch(holder)
    if isinstance(spec, BatchNorm | ResidualBlock):
        return holder.read()  # the moving statistics too
    layer = holder.layer
    kernel = _numpy(layer.weight_ih_l0).T
    recurrent_kernel = _numpy(layer.weight_hh_l0).T
    if isinstance(spec, GRU):
        kernel = _gate_blocks(kernel, _GRU_GATES, axis=1)
        recurrent_kernel = _gate_blocks(recurrent_kernel, _GRU_GATES, axis=1)
        bias = np.stack(
            [
                _gate_blocks(_numpy(b), _GRU_GATES, axis=0)
                for b in (layer.bias_ih_l0, layer.bias_hh_l0)
            ]
        )
    else:
        bias = _numpy(layer.bias_ih_l0)  # bias_hh is frozen at zero
    return {
        "kernel": np.ascontiguousarray(kernel),
        "recurrent_kernel": np.ascontiguousarray(recurrent_kernel),
        "bias": bias,
    }
