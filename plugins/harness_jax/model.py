"""The task's layers as Flax Linen modules, with parameters in the harness's layout.

Flax's own recurrent cells compute something else (``nn.GRUCell`` has no recurrent bias for the
update and reset gates; ``nn.LSTMCell`` keeps one kernel per gate), so the recurrent layers here
are written out: one ``kernel (features, G units)``, one ``recurrent_kernel (units, G units)``
and one ``bias`` per layer, gate blocks in Keras's order, stepped with ``lax.scan`` from a zero
state. Every layer's parameters sit under ``layer_<index>`` with the harness's names, so loading
and returning weights is a copy.

The Vision Transformer's layers use Flax's own modules: ``nn.LayerNorm`` (with
``use_fast_variance=False``: the variance as the mean of squared deviations, not ``E[x^2] -
E[x]^2``, which loses digits) and ``nn.MultiHeadDotProductAttention``, whose ``DenseGeneral``
kernels have the harness's shapes. Their parameters are nested and named by Flax (``scale``,
``bias``, ``attention/query/kernel``), so :func:`to_variables` and :func:`from_variables` rename
them. A ``causal`` encoder hands the attention Flax's causal mask (``nn.make_causal_mask``),
which sets the scores of later keys to the lowest float before the softmax.

A language model's ``embedding`` is a table of the harness's shape, ``embeddings (input_dim,
output_dim)``, indexed by the token ids (float32 in, cast to int32).

The ResNet's layers use ``nn.BatchNorm``, whose momentum is Keras's (the share of the old
statistics kept) and whose batch variance is the biased one; its moving statistics live in the
``batch_stats`` collection (``mean``, ``var``), apart from the trained ``params``. A smaller last
batch padded to the full size passes a mask, so the padding never enters the batch statistics.

Imported by the adapter's ``build``, after ``setup`` has imported JAX.
"""

from __future__ import annotations

from typing import ClassVar

import flax.linen as nn
import jax
import jax.numpy as jnp

from harness.api import UnsupportedSpec

ACTIVATIONS = {
    "linear": lambda x: x,
    "relu": nn.relu,
    "tanh": jnp.tanh,
    "sigmoid": nn.sigmoid,
    "softmax": nn.softmax,
}


def layer_name(index: int) -> str:
    """Where layer ``index``'s parameters live in the params tree."""
    return f"layer_{index}"


class _Recurrent(nn.Module):
    """What the three recurrent layers share: the parameters and the scan over time."""

    units: int
    return_sequences: bool
    #: how many gate blocks the kernels stack
    gates: ClassVar[int] = 1

    def step(self, carry, inputs, recurrent_kernel, recurrent_bias):
        """One time step: ``(carry, x_t W + b) -> (carry, h_t)``."""
        raise NotImplementedError

    def initial_carry(self, batch: int, dtype):
        return jnp.zeros((batch, self.units), dtype)

    @nn.compact
    def __call__(self, x):
        width = self.gates * self.units
        kernel = self.param("kernel", nn.initializers.glorot_uniform(), (x.shape[-1], width))
        recurrent_kernel = self.param(
            "recurrent_kernel", nn.initializers.orthogonal(), (self.units, width)
        )
        bias = self.param("bias", nn.initializers.zeros_init(), self.bias_shape(width))
        input_bias, recurrent_bias = (bias[0], bias[1]) if bias.ndim == 2 else (bias, None)
        # the input projection of every step at once; only h @ U has to wait for the last step
        inputs = jnp.swapaxes(x @ kernel + input_bias, 0, 1)  # (steps, batch, width)

        def step(carry, inputs_t):
            return self.step(carry, inputs_t, recurrent_kernel, recurrent_bias)

        # the state in the compute dtype: a float32 zero state would promote every step of a
        # bfloat16 cell to float32
        _, states = jax.lax.scan(step, self.initial_carry(x.shape[0], inputs.dtype), inputs)
        return jnp.swapaxes(states, 0, 1) if self.return_sequences else states[-1]

    def bias_shape(self, width: int) -> tuple[int, ...]:
        return (width,)


class SimpleRNN(_Recurrent):
    """``h = tanh(x W + b + h U)``."""

    def step(self, h, inputs, recurrent_kernel, recurrent_bias):
        h = jnp.tanh(inputs + h @ recurrent_kernel)
        return h, h


class LSTM(_Recurrent):
    """Gates input, forget, cell, output (Keras's order); sigmoid gates, tanh cell."""

    gates: ClassVar[int] = 4

    def initial_carry(self, batch: int, dtype):
        zeros = jnp.zeros((batch, self.units), dtype)
        return zeros, zeros

    def step(self, carry, inputs, recurrent_kernel, recurrent_bias):
        h, c = carry
        i, f, g, o = jnp.split(inputs + h @ recurrent_kernel, 4, axis=-1)
        c = nn.sigmoid(f) * c + nn.sigmoid(i) * jnp.tanh(g)
        h = nn.sigmoid(o) * jnp.tanh(c)
        return (h, c), h


class GRU(_Recurrent):
    """Gates update, reset, candidate; the reset gate scales the recurrent product *after* its
    bias (Keras 3's ``reset_after``): ``tanh(x W_h + b_h + r * (h U_h + b'_h))``."""

    gates: ClassVar[int] = 3

    def bias_shape(self, width: int) -> tuple[int, ...]:
        return (2, width)  # row 0 the input bias, row 1 the recurrent bias

    def step(self, h, inputs, recurrent_kernel, recurrent_bias):
        x_z, x_r, x_h = jnp.split(inputs, 3, axis=-1)
        h_z, h_r, h_h = jnp.split(h @ recurrent_kernel + recurrent_bias, 3, axis=-1)
        update = nn.sigmoid(x_z + h_z)
        reset = nn.sigmoid(x_r + h_r)
        candidate = jnp.tanh(x_h + reset * h_h)
        h = update * h + (1 - update) * candidate
        return h, h


RECURRENT = {"simple_rnn": SimpleRNN, "lstm": LSTM, "gru": GRU}


def exact_gelu(x):
    """GELU as the task defines it: ``x * Phi(x)`` with erf (Flax's default is the tanh form)."""
    return nn.gelu(x, approximate=False)


def patches(x, size: int):
    """(n, h, w, c) -> (n, h/p * w/p, p * p * c): row-major tokens, (row, column, channel)."""
    n, h, w, c = x.shape
    grid = x.reshape(n, h // size, size, w // size, size, c).transpose(0, 1, 3, 2, 4, 5)
    return grid.reshape(n, (h // size) * (w // size), size * size * c)


class Embedding(nn.Module):
    """A learned ``embeddings (input_dim, output_dim)`` table, one row per token id; the ids
    arrive as float32 (exact below 2**24) and are cast to int32 for the look-up."""

    input_dim: int
    output_dim: int

    @nn.compact
    def __call__(self, x):
        shape = (self.input_dim, self.output_dim)
        table = self.param("embeddings", nn.initializers.normal(0.02), shape)
        return jnp.take(table, x.astype(jnp.int32), axis=0)


class PositionEmbedding(nn.Module):
    @nn.compact
    def __call__(self, x):
        return x + self.param("embedding", nn.initializers.zeros_init(), x.shape[1:])


def layer_norm(epsilon: float, name: str) -> nn.LayerNorm:
    return nn.LayerNorm(epsilon=epsilon, use_fast_variance=False, name=name)


def sample_mask(weight, ndim: int):
    """A batch's sample weights (1 real, 0 padding) as a mask broadcastable to an input of
    ``ndim`` axes; ``None`` (every sample counts) without weights."""
    return None if weight is None else weight.reshape((-1,) + (1,) * (ndim - 1)) > 0


def batch_norm(x, spec, name: str, *, train: bool, weight=None):
    """Flax's batch norm with the task's momentum (Keras's convention, as Flax's) and epsilon;
    ``use_fast_variance=False``: the biased variance as the mean of squared deviations."""
    module = nn.BatchNorm(
        momentum=spec.momentum, epsilon=spec.epsilon, use_fast_variance=False, name=name
    )
    return module(x, use_running_average=not train, mask=sample_mask(weight, x.ndim))


class ResidualBlock(nn.Module):
    """``relu(BN2(conv2(relu(BN1(conv1(x))))) + shortcut(x))``; bias-free convolutions padded
    as TensorFlow pads ``same`` (lax's ``SAME``: the odd pixel at the bottom and right)."""

    spec: object

    def conv(self, x, size: int, strides, name: str):
        return nn.Conv(
            self.spec.filters,
            (size, size),
            strides=strides,
            padding="SAME",
            use_bias=False,
            kernel_init=nn.initializers.glorot_uniform(),
            name=name,
        )(x)

    @nn.compact
    def __call__(self, x, *, train: bool = False, weight=None):
        spec, strides = self.spec, tuple(self.spec.strides)
        inner = batch_norm(
            self.conv(x, 3, strides, "conv1"), spec, "bn1", train=train, weight=weight
        )
        inner = self.conv(nn.relu(inner), 3, (1, 1), "conv2")
        inner = batch_norm(inner, spec, "bn2", train=train, weight=weight)
        shortcut = x
        if spec.projects(x.shape[-1]):
            shortcut = self.conv(x, 1, strides, "shortcut")
            shortcut = batch_norm(shortcut, spec, "shortcut_bn", train=train, weight=weight)
        return nn.relu(inner + shortcut)


class TransformerEncoder(nn.Module):
    """``x + Dropout(MHA(LN1(x)))``, then ``x + Dropout(MLP(LN2(x)))`` (pre-norm)."""

    spec: object

    @nn.compact
    def __call__(self, x, *, train: bool = False):
        spec = self.spec
        deterministic = not train
        normed = layer_norm(spec.epsilon, "norm1")(x)
        # causal: step i sees steps j <= i only (a (1, 1, steps, steps) mask over the scores)
        mask = nn.make_causal_mask(jnp.ones(x.shape[:2]))[:1] if spec.causal else None
        attended = nn.MultiHeadDotProductAttention(
            num_heads=spec.heads,
            qkv_features=spec.heads * spec.key_dim,
            out_features=x.shape[-1],
            dropout_rate=spec.dropout,  # on the attention probabilities
            deterministic=deterministic,
            name="attention",
        )(normed, mask=mask)
        x = x + nn.Dropout(spec.dropout, deterministic=deterministic)(attended)
        hidden = exact_gelu(
            nn.Dense(spec.mlp_units, name="mlp")(layer_norm(spec.epsilon, "norm2")(x))
        )
        hidden = nn.Dropout(spec.dropout, deterministic=deterministic)(hidden)
        output = nn.Dense(x.shape[-1], name="mlp_output")(hidden)
        return x + nn.Dropout(spec.dropout, deterministic=deterministic)(output)


#: each encoder array (harness name) and its place in the Flax params tree
ENCODER_PATHS = {
    "norm1_gamma": ("norm1", "scale"),
    "norm1_beta": ("norm1", "bias"),
    **{
        f"{name}_{kind}": ("attention", name, kind)
        for name in ("query", "key", "value")
        for kind in ("kernel", "bias")
    },
    "output_kernel": ("attention", "out", "kernel"),
    "output_bias": ("attention", "out", "bias"),
    "norm2_gamma": ("norm2", "scale"),
    "norm2_beta": ("norm2", "bias"),
    "mlp_kernel": ("mlp", "kernel"),
    "mlp_bias": ("mlp", "bias"),
    "mlp_output_kernel": ("mlp_output", "kernel"),
    "mlp_output_bias": ("mlp_output", "bias"),
}
LAYER_NORM_PATHS = {"gamma": ("scale",), "beta": ("bias",)}
BATCH_NORM_PATHS = {**LAYER_NORM_PATHS, "moving_mean": ("mean",), "moving_variance": ("var",)}


def _batch_norm_paths(prefix: str, module: str) -> dict[str, tuple[str, ...]]:
    return {prefix + name: (module, *path) for name, path in BATCH_NORM_PATHS.items()}


RESIDUAL_PATHS = {
    "conv1_kernel": ("conv1", "kernel"),
    **_batch_norm_paths("bn1_", "bn1"),
    "conv2_kernel": ("conv2", "kernel"),
    **_batch_norm_paths("bn2_", "bn2"),
    "shortcut_kernel": ("shortcut", "kernel"),
    **_batch_norm_paths("shortcut_bn_", "shortcut_bn"),
}
#: modules only a projecting residual block has (an identity shortcut has no arrays)
OPTIONAL_MODULES = ("shortcut", "shortcut_bn")
#: the arrays Flax keeps in the "batch_stats" collection: the moving statistics, not trained
MOVING_STATISTICS = ("moving_mean", "moving_variance")


def collection(name: str) -> str:
    """The Flax variable collection that holds the harness array ``name``."""
    return "batch_stats" if name.endswith(MOVING_STATISTICS) else "params"


def _paths(kind: str) -> dict[str, tuple[str, ...]] | None:
    return {
        "transformer_encoder": ENCODER_PATHS,
        "layer_norm": LAYER_NORM_PATHS,
        "batch_norm": BATCH_NORM_PATHS,
        "residual_block": RESIDUAL_PATHS,
    }.get(kind)


def to_variables(spec, weights: dict) -> dict[str, dict]:
    """One layer's harness-layout arrays as its Flax subtrees: ``{"params": ...,
    "batch_stats": ...}`` (the moving statistics go to the second; either may be empty)."""
    paths = _paths(spec.kind) or {name: (name,) for name in weights}
    variables: dict[str, dict] = {"params": {}, "batch_stats": {}}
    for name, array in weights.items():
        *parents, leaf = paths[name]
        node = variables[collection(name)]
        for parent in parents:
            node = node.setdefault(parent, {})
        node[leaf] = array
    return variables


def from_variables(spec, variables: dict[str, dict]) -> dict:
    """The inverse of :func:`to_variables`: one layer's arrays in the harness's layout."""
    paths = _paths(spec.kind)
    if paths is None:
        return dict(variables["params"])
    weights = {}
    for name, path in paths.items():
        node = variables[collection(name)]
        if path[0] in OPTIONAL_MODULES and path[0] not in node:
            continue
        for part in path:
            node = node[part]
        weights[name] = node
    return weights


SUPPORTED = (
    "flatten",
    "dropout",
    "max_pool2d",
    "dense",
    "conv2d",
    *RECURRENT,
    "patches",
    "position_embedding",
    "embedding",
    "mean_pool",
    "layer_norm",
    "transformer_encoder",
    "batch_norm",
    "global_avg_pool2d",
    "residual_block",
)


def check_supported(layers) -> None:
    """Raise :class:`UnsupportedSpec` for a layer kind this module can't build."""
    for index, spec in enumerate(layers):
        if spec.kind not in SUPPORTED:
            raise UnsupportedSpec(f"layers[{index}]: layer kind {spec.kind!r}")


class Sequential(nn.Module):
    """The task's layers in order.

    :param layers: the task's layer specs (frozen pydantic models, so hashable).
    :param logits: leave out the last layer's softmax, for a loss that takes logits.
    """

    layers: tuple
    logits: bool = False

    @nn.compact
    def __call__(self, x, *, train: bool = False, weight=None):
        """``weight``: the batch's sample weights while training (padding weighs 0), which
        batch norms leave out of their statistics."""
        last = len(self.layers) - 1
        for index, spec in enumerate(self.layers):
            name = layer_name(index)
            if spec.kind == "flatten":
                x = x.reshape((x.shape[0], -1))  # NHWC row-major: channels vary fastest
            elif spec.kind == "dropout":
                x = nn.Dropout(rate=spec.rate, deterministic=not train)(x)
            elif spec.kind == "max_pool2d":
                x = nn.max_pool(x, spec.pool_size, strides=spec.stride, padding="VALID")
            elif spec.kind == "dense":
                x = nn.Dense(spec.units, name=name)(x)
            elif spec.kind == "conv2d":
                # kernel HWIO as the harness keeps it; lax's "SAME" pads as TensorFlow does
                x = nn.Conv(
                    spec.filters,
                    spec.kernel_size,
                    strides=spec.strides,
                    padding=spec.padding.upper(),
                    name=name,
                )(x)
            elif spec.kind == "patches":
                x = patches(x, spec.size)
            elif spec.kind == "embedding":
                x = Embedding(spec.input_dim, spec.output_dim, name=name)(x)
            elif spec.kind == "position_embedding":
                x = PositionEmbedding(name=name)(x)
            elif spec.kind == "mean_pool":
                x = x.mean(axis=1)
            elif spec.kind == "layer_norm":
                x = layer_norm(spec.epsilon, name)(x)
            elif spec.kind == "transformer_encoder":
                x = TransformerEncoder(spec, name=name)(x, train=train)
            elif spec.kind == "batch_norm":
                x = batch_norm(x, spec, name, train=train, weight=weight)
            elif spec.kind == "global_avg_pool2d":
                x = x.mean(axis=(1, 2))
            elif spec.kind == "residual_block":
                x = ResidualBlock(spec, name=name)(x, train=train, weight=weight)
            else:
                x = RECURRENT[spec.kind](spec.units, spec.return_sequences, name=name)(x)
            activation = getattr(spec, "activation", "linear")
            if spec.kind in RECURRENT or (index == last and self.logits):
                continue  # recurrent layers apply tanh inside; a loss on logits applies softmax
            x = ACTIVATIONS[activation](x)
        return x
