"""Keras models from harness layer specs, and Adam as the harness defines it.

Imports Keras at the top: the adapter imports this module only in ``build``, after ``setup``
has chosen the backend. The harness's weight layout is Keras's own, so weights pass through
``set_weights`` / ``get_weights`` unchanged.
"""

from __future__ import annotations

import keras
from keras import layers, ops

from harness.adapter import UnsupportedSpec

#: each layer kind's arrays, in the order Keras keeps its variables
ARRAYS = {
    "dense": ("kernel", "bias"),
    "conv2d": ("kernel", "bias"),
    "simple_rnn": ("kernel", "recurrent_kernel", "bias"),
    "lstm": ("kernel", "recurrent_kernel", "bias"),
    "gru": ("kernel", "recurrent_kernel", "bias"),
}


def _recurrent(spec) -> keras.layers.Layer:
    options = {"return_sequences": spec.return_sequences, "activation": spec.activation}
    if spec.kind == "simple_rnn":
        return layers.SimpleRNN(spec.units, **options)
    options["recurrent_activation"] = spec.recurrent_activation
    if spec.kind == "lstm":
        return layers.LSTM(spec.units, **options)
    return layers.GRU(spec.units, reset_after=True, **options)


#: layer kind -> the Keras layer, with every setting that changes its output written out
BUILDERS = {
    "flatten": lambda spec: layers.Flatten(data_format="channels_last"),
    "dense": lambda spec: layers.Dense(spec.units, activation=spec.activation),
    "conv2d": lambda spec: layers.Conv2D(
        spec.filters,
        spec.kernel_size,
        strides=spec.strides,
        padding=spec.padding,
        activation=spec.activation,
        data_format="channels_last",
    ),
    "max_pool2d": lambda spec: layers.MaxPooling2D(
        spec.pool_size, strides=spec.stride, padding="valid", data_format="channels_last"
    ),
    "dropout": lambda spec: layers.Dropout(spec.rate),
    "simple_rnn": _recurrent,
    "lstm": _recurrent,
    "gru": _recurrent,
}


def sequential(model_spec, weights) -> keras.Sequential:
    """The task's model as a ``keras.Sequential`` holding the harness's initial weights."""
    unknown = [spec.kind for spec in model_spec.layers if spec.kind not in BUILDERS]
    if unknown:
        raise UnsupportedSpec(f"layer kind {unknown[0]!r}")
    model = keras.Sequential(
        [keras.Input(shape=tuple(model_spec.input_shape))]
        + [BUILDERS[spec.kind](spec) for spec in model_spec.layers]
    )
    for spec, layer, arrays in zip(model_spec.layers, model.layers, weights, strict=True):
        names = ARRAYS.get(spec.kind, ())
        if tuple(variable.name for variable in layer.weights) != names:
            raise UnsupportedSpec(f"this Keras keeps {spec.kind} weights differently")
        if names:
            layer.set_weights([arrays[name] for name in names])
    return model


def harness_weights(model_spec, model: keras.Sequential) -> list[dict]:
    """The model's weights back in the harness's layout."""
    return [
        dict(zip(ARRAYS.get(spec.kind, ()), layer.get_weights(), strict=True))
        for spec, layer in zip(model_spec.layers, model.layers, strict=True)
    ]


class PaperAdam(keras.optimizers.Adam):
    """Adam with epsilon added to the bias-corrected ``sqrt(v_hat)`` (Kingma & Ba's
    Algorithm 1; PyTorch, Optax), where Keras's Adam adds it to the uncorrected ``sqrt(v)``."""

    def update_step(self, gradient, variable, learning_rate):
        kind = variable.dtype
        t = ops.cast(self.iterations + 1, kind)
        first = self._momentums[self._get_variable_index(variable)]
        second = self._velocities[self._get_variable_index(variable)]
        gradient = ops.cast(gradient, kind)
        self.assign(first, self.beta_1 * first + (1 - self.beta_1) * gradient)
        self.assign(second, self.beta_2 * second + (1 - self.beta_2) * ops.square(gradient))
        first_hat = first / (1 - ops.power(ops.cast(self.beta_1, kind), t))
        second_hat = second / (1 - ops.power(ops.cast(self.beta_2, kind), t))
        step = ops.cast(learning_rate, kind) * first_hat / (ops.sqrt(second_hat) + self.epsilon)
        self.assign_sub(variable, step)


class MeanOfBatches(keras.metrics.Mean):
    """The epoch loss as the harness defines it: every batch's loss counts once (Keras weighs
    each by its size, which differs for a smaller last batch)."""

    def update_state(self, values, sample_weight=None):
        return super().update_state(values)
