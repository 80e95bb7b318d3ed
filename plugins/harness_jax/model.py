"""The task's layers as Flax Linen modules, with parameters in the harness's layout.

Flax's own recurrent cells compute something else (``nn.GRUCell`` has no recurrent bias for the
update and reset gates; ``nn.LSTMCell`` keeps one kernel per gate), so the recurrent layers here
are written out: one ``kernel (features, G units)``, one ``recurrent_kernel (units, G units)``
and one ``bias`` per layer, gate blocks in Keras's order, stepped with ``lax.scan`` from a zero
state. Every layer's parameters sit under ``layer_<index>`` with the harness's names, so loading
and returning weights is a copy.

Imported by the adapter's ``build``, after ``setup`` has imported JAX.
"""

from __future__ import annotations

from typing import ClassVar

import flax.linen as nn
import jax
import jax.numpy as jnp

from harness.adapter import UnsupportedSpec

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

    def initial_carry(self, batch: int):
        return jnp.zeros((batch, self.units), jnp.float32)

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

        _, states = jax.lax.scan(step, self.initial_carry(x.shape[0]), inputs)
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

    def initial_carry(self, batch: int):
        zeros = jnp.zeros((batch, self.units), jnp.float32)
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
SUPPORTED = ("flatten", "dropout", "max_pool2d", "dense", "conv2d", *RECURRENT)


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
    def __call__(self, x, *, train: bool = False):
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
            else:
                x = RECURRENT[spec.kind](spec.units, spec.return_sequences, name=name)(x)
            activation = getattr(spec, "activation", "linear")
            if spec.kind in RECURRENT or (index == last and self.logits):
                continue  # recurrent layers apply tanh inside; a loss on logits applies softmax
            x = ACTIVATIONS[activation](x)
        return x
