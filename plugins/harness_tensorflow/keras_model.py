"""The Keras side of the adapter: layers from the task's specs, and the harness's Adam.

Imports keras at the top, so the adapter imports this module only in ``build``, after ``setup``
has chosen Keras's backend.
"""

from __future__ import annotations

import keras
from keras import ops

from harness.adapter import UnsupportedSpec

#: the arrays of each layer kind, in the order Keras's get_weights/set_weights use; the
#: harness's layout is Keras's, so the arrays pass through unchanged
PARAMETER_NAMES = {
    "dense": ("kernel", "bias"),
    "conv2d": ("kernel", "bias"),
    "simple_rnn": ("kernel", "recurrent_kernel", "bias"),
    "lstm": ("kernel", "recurrent_kernel", "bias"),
    "gru": ("kernel", "recurrent_kernel", "bias"),
}


def keras_layer(spec, *, use_cudnn: bool | str = "auto") -> keras.layers.Layer:
    """The Keras layer for one layer spec, every setting that shapes its output spelled out.

    :param use_cudnn: for LSTM and GRU layers: ``"auto"`` lets Keras take cuDNN's kernel on a
        GPU (the same math, but not compilable by XLA), ``False`` keeps the plain loop.
    """
    if spec.kind == "flatten":
        return keras.layers.Flatten(data_format="channels_last")
    if spec.kind == "dense":
        return keras.layers.Dense(spec.units, activation=spec.activation, use_bias=True)
    if spec.kind == "conv2d":
        return keras.layers.Conv2D(
            spec.filters,
            spec.kernel_size,
            strides=spec.strides,
            padding=spec.padding,
            data_format="channels_last",
            dilation_rate=(1, 1),
            groups=1,
            activation=spec.activation,
            use_bias=True,
        )
    if spec.kind == "max_pool2d":
        return keras.layers.MaxPooling2D(
            spec.pool_size, strides=spec.stride, padding="valid", data_format="channels_last"
        )
    if spec.kind == "dropout":
        return keras.layers.Dropout(spec.rate)
    if spec.kind in ("simple_rnn", "lstm", "gru"):
        common = {
            "units": spec.units,
            "activation": spec.activation,
            "use_bias": True,
            "dropout": 0.0,
            "recurrent_dropout": 0.0,
            "return_sequences": spec.return_sequences,
            "return_state": False,
            "go_backwards": False,
            "stateful": False,
            "unroll": False,
        }
        if spec.kind == "simple_rnn":
            return keras.layers.SimpleRNN(**common)
        gated = {
            **common,
            "recurrent_activation": spec.recurrent_activation,
            "use_cudnn": use_cudnn,
        }
        if spec.kind == "lstm":
            return keras.layers.LSTM(**gated)
        return keras.layers.GRU(**gated, reset_after=True)
    raise UnsupportedSpec(f"layer kind {spec.kind!r}")


def build_model(model_spec, weights, *, use_cudnn: bool | str = "auto") -> keras.Sequential:
    """A ``keras.Sequential`` for the task's model, holding the harness's weights."""
    layers = [keras_layer(spec, use_cudnn=use_cudnn) for spec in model_spec.layers]
    model = keras.Sequential([keras.Input(shape=tuple(model_spec.input_shape)), *layers])
    for spec, layer, params in zip(model_spec.layers, model.layers, weights, strict=True):
        names = PARAMETER_NAMES.get(spec.kind, ())
        # Keras names its variables as the harness does: a mismatch is a changed Keras
        got = tuple(variable.name for variable in layer.weights)
        if got != names or params.keys() != set(names):
            raise ValueError(
                f"{spec.kind} layer: Keras holds {got}, the harness gives {tuple(params)}"
            )
        if names:
            layer.set_weights([params[name] for name in names])
    return model


def layer_weights(model_spec, model: keras.Sequential) -> list[dict]:
    """The model's current weights in the harness's layout, one dict per layer."""
    return [
        dict(zip(PARAMETER_NAMES.get(spec.kind, ()), layer.get_weights(), strict=True))
        for spec, layer in zip(model_spec.layers, model.layers, strict=True)
    ]


class HarnessAdam(keras.optimizers.Adam):
    """Adam as in the paper's Algorithm 1, PyTorch and Optax: ``epsilon`` is added to the
    bias-corrected ``sqrt(v_hat)``.

    Keras's own Adam adds it to ``sqrt(v)`` and folds the bias corrections into the step size
    (the paper's "epsilon hat"), which is a different step while ``v`` is small. Here::

        param -= lr / (1 - beta_1**t) * m / (sqrt(v) / sqrt(1 - beta_2**t) + epsilon)
    """

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        if self.amsgrad:
            raise ValueError("HarnessAdam does not implement AMSGrad")

    def update_step(self, gradient, variable, learning_rate):
        dtype = variable.dtype
        lr = ops.cast(learning_rate, dtype)
        gradient = ops.cast(gradient, dtype)
        step = ops.cast(self.iterations + 1, dtype)
        beta_1_power = ops.power(ops.cast(self.beta_1, dtype), step)
        beta_2_power = ops.power(ops.cast(self.beta_2, dtype), step)

        m = self._momentums[self._get_variable_index(variable)]
        v = self._velocities[self._get_variable_index(variable)]
        self.assign_add(m, ops.multiply(ops.subtract(gradient, m), 1 - self.beta_1))
        self.assign_add(v, ops.multiply(ops.subtract(ops.square(gradient), v), 1 - self.beta_2))

        step_size = ops.divide(lr, 1 - beta_1_power)
        denominator = ops.add(ops.divide(ops.sqrt(v), ops.sqrt(1 - beta_2_power)), self.epsilon)
        self.assign_sub(variable, ops.multiply(step_size, ops.divide(m, denominator)))


class BatchMean(keras.metrics.Mean):
    """A mean in which every batch counts once, whatever its size.

    Keras's loss tracker weights each batch's loss by its sample count; the harness's epoch
    loss is the plain mean of the per-batch losses (they differ when the last batch is smaller).
    """

    def update_state(self, values, sample_weight=None):
        return super().update_state(values)
