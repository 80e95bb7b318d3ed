"""Keras models for the harness's tasks: the one implementation shared by every plugin that
trains through Keras (the built-in ``tensorflow`` plugin, and ``keras_jax`` / ``keras_torch``
from the ``harness-keras`` distribution); how they train is :mod:`harness.api.keras_training`.

Keras fixes its backend when it is first imported, so nothing here imports Keras at module
level: a plugin calls these functions in ``build``, after its ``setup`` has chosen the backend,
and ``import harness.api.keras_models`` works where Keras is not installed. The classes that
subclass Keras's are made on first use, by the cached ``_*_class`` functions.

The harness's weight layout is Keras's own, so weights pass through ``set_weights`` and
``get_weights`` unchanged.

Precision follows Keras's global dtype policy, which a plugin's ``setup`` sets before anything is
built (:func:`harness.api.precision.keras_settings`): ``bfloat16`` keeps variables and computes in
bfloat16, ``mixed_bfloat16`` keeps float32 variables and computes in bfloat16. Either way the
output layer's activation runs in float32, so the loss is float32 and ``predict`` float32.
"""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING, Any

from harness.api import keras_vit
from harness.api.adapter import UnsupportedSpec

# how the model trains lives in keras_training; its names stay importable from here
from harness.api.keras_training import (  # noqa: F401
    compile_model,
    evaluation,
    keras_loss,
    paper_adam,
    step_timer,
    warmup_cosine,
)

if TYPE_CHECKING:
    import keras

    from harness.workload.tasks import (
        GRU,
        LSTM,
        Layer,
        ModelSpec,
        SimpleRNN,
    )

#: what a Keras plugin records as its ``adam_epsilon`` setting (Keras's own Adam puts it elsewhere)
ADAM_EPSILON = "outside sqrt of bias-corrected v (as in PyTorch and Optax)"

#: the arrays of each layer kind, in the order Keras's get_weights/set_weights use; the
#: harness's layout is Keras's, so the arrays pass through unchanged
PARAMETER_NAMES = {
    "dense": ("kernel", "bias"),
    "conv2d": ("kernel", "bias"),
    "simple_rnn": ("kernel", "recurrent_kernel", "bias"),
    "lstm": ("kernel", "recurrent_kernel", "bias"),
    "gru": ("kernel", "recurrent_kernel", "bias"),
    "position_embedding": ("embedding",),
    "embedding": ("embeddings",),
    "layer_norm": ("gamma", "beta"),
    # the moving statistics too: not trained, but part of the model's state (and the harness's)
    "batch_norm": ("gamma", "beta", "moving_mean", "moving_variance"),
}

#: a residual block's sublayers and their variables, in the harness's array order: each array
#: is named ``<sublayer>_<variable>`` (``bn1_moving_mean``); the shortcut's only with a projection
RESIDUAL_PARTS = tuple(
    (part, ("kernel",) if part in ("conv1", "conv2", "shortcut") else PARAMETER_NAMES["batch_norm"])
    for part in ("conv1", "bn1", "conv2", "bn2", "shortcut", "shortcut_bn")
)


# -- the model ----------------------------------------------------------------


def keras_layer(spec: Layer, *, use_cudnn: bool | str = "auto") -> keras.layers.Layer:
    """The Keras layer for one layer spec, every setting that shapes its output spelled out.

    :param use_cudnn: for LSTM and GRU layers: ``"auto"`` (Keras's default) lets Keras take
        cuDNN's kernel on a GPU (the same maths, but not compilable by XLA), ``False`` keeps the
        plain loop.
    :raises UnsupportedSpec: for a layer kind Keras isn't given here.
    """
    import keras

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
    if spec.kind == "patches":
        return keras_vit.patches(spec)
    if spec.kind == "position_embedding":
        return keras_vit.position_embedding()
    if spec.kind == "embedding":  # Keras's layer casts the float32 token ids to int32 first
        return keras.layers.Embedding(spec.input_dim, spec.output_dim, mask_zero=False)
    if spec.kind == "mean_pool":
        return keras.layers.GlobalAveragePooling1D(data_format="channels_last")
    if spec.kind == "layer_norm":
        return keras.layers.LayerNormalization(
            axis=-1, epsilon=spec.epsilon, center=True, scale=True, rms_scaling=False
        )
    if spec.kind == "transformer_encoder":
        return keras_vit.transformer_encoder(spec)
    if spec.kind == "simple_rnn" or spec.kind == "lstm" or spec.kind == "gru":
        return _recurrent_layer(spec, use_cudnn)
    if spec.kind == "batch_norm":
        return _batch_norm_class()(spec.momentum, spec.epsilon, spec.activation)
    if spec.kind == "global_avg_pool2d":
        return keras.layers.GlobalAveragePooling2D(data_format="channels_last", keepdims=False)
    if spec.kind == "residual_block":
        return _residual_block_class()(spec)
    raise UnsupportedSpec(f"layer kind {spec.kind!r}")


def _recurrent_layer(spec: SimpleRNN | LSTM | GRU, use_cudnn: bool | str) -> keras.layers.Layer:
    """A SimpleRNN, LSTM or GRU layer: the settings they share are spelled out once."""
    import keras

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
        # build() assigns every weight; Keras's default orthogonal initializer would run a QR
        # decomposition, which has no bfloat16 kernel (TensorFlow) or fails quietly (JAX)
        "recurrent_initializer": "zeros",
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


def build_model(
    model_spec: ModelSpec, weights: list[dict[str, Any]], *, use_cudnn: bool | str = "auto"
) -> keras.Sequential:
    """The task's model as a ``keras.Sequential`` holding the harness's initial weights.

    Once compiled (:func:`compile_model`), ``model.fit(...).history["loss"]`` is the epoch's
    training loss as the harness defines it: the plain mean of the batch losses.

    Under a bfloat16 or mixed policy, a dense output layer computes its product in bfloat16
    and its activation in float32 (:func:`_float32_output_class`).

    :param use_cudnn: passed to every LSTM and GRU layer (see :func:`keras_layer`).
    :raises UnsupportedSpec: for a layer kind Keras isn't given here, or when this Keras keeps a
        layer's weights in another layout than the harness's.
    """
    import keras

    layers = [keras_layer(spec, use_cudnn=use_cudnn) for spec in model_spec.layers]
    last = model_spec.layers[-1]
    if last.kind == "dense" and keras.config.dtype_policy().compute_dtype != "float32":
        layers[-1] = _float32_output_class()(last.units, activation=last.activation, use_bias=True)
    model = _sequential_class()([keras.Input(shape=tuple(model_spec.input_shape)), *layers])
    for spec, layer, params in zip(model_spec.layers, model.layers, weights, strict=True):
        variables = _variables(spec, layer)
        if params.keys() != variables.keys():
            raise ValueError(
                f"{spec.kind} layer: Keras holds {tuple(variables)}, the harness gives {tuple(params)}"
            )
        for name, variable in variables.items():
            variable.assign(params[name])
    return model


def _variables(spec: Layer, layer: keras.layers.Layer) -> dict[str, Any]:
    """A layer's variables by the harness's array names.

    :raises UnsupportedSpec: when this Keras keeps them under other names than the harness's.
    """
    if hasattr(layer, "harness_variables"):  # a composite layer (ViT encoder, residual block)
        return layer.harness_variables()
    return _variables_named(spec.kind, layer, PARAMETER_NAMES.get(spec.kind, ()))


def _variables_named(what: str, layer: keras.layers.Layer, names: tuple[str, ...]) -> dict:
    """The layer's variables by name, which must be ``names`` in that order.

    :raises UnsupportedSpec: when this Keras keeps them under other names than the harness's.
    """
    # Keras names its variables as the harness does: a mismatch is a changed Keras
    got = tuple(variable.name for variable in layer.weights)
    if got != names:
        raise UnsupportedSpec(f"this Keras keeps {what} weights as {got}, not {names}")
    return dict(zip(names, layer.weights, strict=True))


def layer_weights(model_spec: ModelSpec, model: keras.Sequential) -> list[dict[str, Any]]:
    """The model's current weights in the harness's layout, one dict per layer, as float32
    (bfloat16 variables widened exactly)."""
    import numpy as np

    return [
        {
            name: np.asarray(variable.numpy()).astype(np.float32, copy=False)
            for name, variable in _variables(spec, layer).items()
        }
        for spec, layer in zip(model_spec.layers, model.layers, strict=True)
    ]


@functools.cache
def _sequential_class() -> type:
    """``keras.Sequential`` whose epoch loss is the plain mean of the batch losses.

    Keras's own loss tracker weighs each batch's loss by its sample count; the harness's epoch
    loss, as every other framework reports it, counts every batch once (the two differ when the
    last batch is smaller). This follows the pattern ``keras.Model.compute_loss`` documents for
    a loss tracker of one's own: update it in ``compute_loss`` and make it the model's only
    metric, so ``fit`` resets it every epoch and reports it as ``history["loss"]``.
    """
    import keras

    class BatchMeanSequential(keras.Sequential):
        def __init__(self, *args, **kwargs) -> None:
            super().__init__(*args, **kwargs)
            self.batch_mean_loss = keras.metrics.Mean(name="loss")

        def compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None, training=True):
            loss = super().compute_loss(x, y, y_pred, sample_weight, training=training)
            if training:
                self.batch_mean_loss.update_state(loss)  # no sample_weight: one count per batch
            return loss

        @property
        def metrics(self):
            return [self.batch_mean_loss]

    return BatchMeanSequential


@functools.cache
def _float32_output_class() -> type:
    import keras
    from keras import ops

    class Float32OutputDense(keras.layers.Dense):
        """A dense output layer whose product runs in the policy's compute dtype (bfloat16) and
        whose activation, softmax included, runs in float32 on the float32 cast of it: the
        pattern of Keras's mixed-precision guide (a float32 ``Activation`` last), inside the
        layer so the model keeps one layer per layer spec. Its output is float32, and so the
        loss Keras computes from it; on TensorFlow the softmax records its float32 logits, which
        the cross-entropy reads as in float32."""

        def __init__(self, units, activation=None, **kwargs) -> None:
            super().__init__(units, activation=None, **kwargs)
            self.output_activation = keras.activations.get(activation)

        def call(self, inputs, training=None):
            return self.output_activation(
                ops.cast(super().call(inputs, training=training), "float32")
            )

        def compute_output_spec(self, inputs, *args, **kwargs):
            # Keras makes a dense layer's symbolic output in its compute dtype: say float32
            spec = super().compute_output_spec(inputs, *args, **kwargs)
            return keras.KerasTensor(spec.shape, dtype="float32")

        def get_config(self):
            return {
                **super().get_config(),
                "activation": keras.activations.serialize(self.output_activation),
            }

    return Float32OutputDense


# -- the ResNet's layers -------------------------------------------------------


@functools.cache
def _batch_norm_class() -> type:
    import keras

    class ActivatedBatchNorm(keras.layers.BatchNormalization):
        """Keras's batch norm (the task's momentum convention and biased batch variance, as
        :class:`harness.workload.tasks.BatchNorm` defines it), then the task's activation, which
        Keras's layer has no setting for."""

        def __init__(self, momentum, epsilon, activation="linear", **kwargs) -> None:
            # the settings spelled out as defaults, so from_config can pass them back
            settings = {"axis": -1, "center": True, "scale": True, **kwargs}
            super().__init__(momentum=momentum, epsilon=epsilon, **settings)
            self.activation_name = activation
            self.activation = keras.activations.get(activation)

        def call(self, inputs, training=None, mask=None):
            return self.activation(super().call(inputs, training=training, mask=mask))

        def get_config(self):
            return {**super().get_config(), "activation": self.activation_name}

    return ActivatedBatchNorm


def _block_conv(filters: int, size: int, strides, name: str) -> keras.layers.Layer:
    """A residual block's convolution: ``same`` padding (TensorFlow's), no bias."""
    import keras

    return keras.layers.Conv2D(
        filters, size, strides=strides, padding="same", use_bias=False, name=name
    )


@functools.cache
def _residual_block_class() -> type:
    import keras
    from keras import ops

    class ResidualBlock(keras.layers.Layer):
        """``relu(BN2(conv2(relu(BN1(conv1(x))))) + shortcut(x))``; the shortcut is a 1x1
        convolution and its batch norm when the stride or the width changes, else ``x``."""

        def __init__(self, spec, **kwargs) -> None:
            super().__init__(**kwargs)
            self.spec = spec
            self.conv1 = _block_conv(spec.filters, 3, spec.strides, "conv1")
            self.bn1 = _batch_norm_class()(spec.momentum, spec.epsilon, name="bn1")
            self.conv2 = _block_conv(spec.filters, 3, 1, "conv2")
            self.bn2 = _batch_norm_class()(spec.momentum, spec.epsilon, name="bn2")
            self.shortcut = self.shortcut_bn = None  # made in build: they need the input width

        def build(self, input_shape):
            spec = self.spec
            self.conv1.build(input_shape)
            output_shape = self.conv1.compute_output_shape(input_shape)
            self.bn1.build(output_shape)
            self.conv2.build(output_shape)
            self.bn2.build(output_shape)
            if spec.projects(input_shape[-1]):
                self.shortcut = _block_conv(spec.filters, 1, spec.strides, "shortcut")
                self.shortcut_bn = _batch_norm_class()(
                    spec.momentum, spec.epsilon, name="shortcut_bn"
                )
                self.shortcut.build(input_shape)
                self.shortcut_bn.build(output_shape)

        def call(self, x, training=None):
            inner = ops.relu(self.bn1(self.conv1(x), training=training))
            inner = self.bn2(self.conv2(inner), training=training)
            if self.shortcut is not None:
                x = self.shortcut_bn(self.shortcut(x), training=training)
            return ops.relu(inner + x)

        def harness_variables(self) -> dict[str, Any]:
            """Every array by its harness name: the sublayer's prefix and the variable's name."""
            found: dict[str, Any] = {}
            for part, names in RESIDUAL_PARTS:
                sublayer = getattr(self, part)
                if sublayer is not None:
                    variables = _variables_named(f"residual_block {part}", sublayer, names)
                    found |= {f"{part}_{name}": v for name, v in variables.items()}
            return found

    return ResidualBlock


# -- the optimizer ------------------------------------------------------------
