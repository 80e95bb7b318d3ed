"""Tasks: framework-neutral definitions of a training job, read from TOML files.

A task names no framework. It says which dataset and preprocessing, which model (a small layer
vocabulary), which loss and optimizer with which hyperparameters, the batch size, the epochs,
the seed and the quality target. Built-in tasks live in the top-level ``tasks/`` folder
(installed as the ``harness_tasks`` package); ``--task`` also accepts a path to a file.
"""

from __future__ import annotations

import math
import operator
import stat
import tomllib
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Annotated, Any, Literal

import numpy as np
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PrivateAttr,
    ValidationError,
    ValidationInfo,
    model_validator,
)

from harness._moved import moved_attribute
from harness.data.datasets import DATASETS, DatasetInfo
from harness.errors import HarnessError, unknown_name_message

#: the datasets a task may name: the built-in ones, or what the caller hands to validation
DatasetFacts = Mapping[str, DatasetInfo]


def _datasets(info: ValidationInfo) -> DatasetFacts:
    """The datasets this validation may resolve names against: those handed in the context
    (``harness.registry.catalog`` hands the plugins' too), else the built-in ones."""
    context = info.context if isinstance(info.context, dict) else {}
    return context.get("datasets") or DATASETS


Activation = Literal["linear", "relu", "tanh", "sigmoid", "softmax"]
Positive = Annotated[int, Field(gt=0, le=1_000_000)]


class TaskError(HarnessError):
    """A task file is missing, malformed, or describes something impossible."""


class _Spec(BaseModel):
    """Every part of a task: unknown keys refused, NaN and infinities refused, no value taken
    for another type (``true`` is not the number 1, ``"128"`` not the number 128, ``2.0`` not
    the count 2), and every float one that float32 (what the frameworks compute in) holds as a
    finite, normal number that is zero only where it was written as zero and that still keeps
    within the field's bounds."""

    # strict: pydantic's lax mode would read "128" and true as numbers; TOML has real numbers
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False, strict=True)

    @model_validator(mode="before")
    @classmethod
    def _no_bools_for_numbers(cls, data: object) -> object:
        if isinstance(data, dict):
            for name, value in data.items():
                field = cls.model_fields.get(name)
                if field is not None and _holds_bool(value) and "bool" not in str(field.annotation):
                    raise ValueError(f"{name}: {value!r} is a true/false value, not a number")
        return data

    @model_validator(mode="after")
    def _floats_fit_float32(self) -> _Spec:
        for name, field in type(self).model_fields.items():
            value = getattr(self, name)
            if isinstance(value, float):
                problem = float32_problem(value, field.metadata)
            elif isinstance(value, dict):  # target.by_dataset
                problems = (
                    float32_problem(item) for item in value.values() if isinstance(item, float)
                )
                problem = next(filter(None, problems), None)
            else:
                continue
            if problem:
                raise ValueError(f"{name}: {problem}")
        return self


def float32_problem(value: float, bounds: Iterable[object] = ()) -> str | None:
    """Why ``value`` is not the number it says once in float32, or None when it is: it
    overflows, becomes 0, is subnormal (which many devices flush to 0), or rounds onto a bound
    of its field that it must not reach (``beta_2 = 0.99999999999`` is 1.0)."""
    with np.errstate(over="ignore", under="ignore"):
        single = float(np.float32(value))
    hint = "give a value between about 1e-38 and 3e38"
    if not math.isfinite(single) or (single == 0) != (value == 0):
        return f"{value!r} is {single!r} in float32, which the frameworks compute in; {hint}"
    if single != 0 and abs(single) < _FLOAT32_TINY:
        return (
            f"{value!r} is {single:.2g} in float32, below its smallest normal number, which "
            f"many devices compute as 0; {hint}"
        )
    for bound in bounds:
        for limit, holds, words in (
            (getattr(bound, "gt", None), operator.gt, "more than"),
            (getattr(bound, "ge", None), operator.ge, "at least"),
            (getattr(bound, "lt", None), operator.lt, "less than"),
            (getattr(bound, "le", None), operator.le, "at most"),
        ):
            if limit is not None and not holds(single, limit):
                return (
                    f"{value!r} is {single!r} in float32, which the frameworks compute in, "
                    f"and it must be {words} {limit:g}"
                )
    return None


_FLOAT32_TINY = float(np.finfo(np.float32).tiny)


def _holds_bool(value: object) -> bool:
    if isinstance(value, bool):
        return True
    return isinstance(value, list | tuple) and any(isinstance(item, bool) for item in value)


# -- model ------------------------------------------------------------------
#
# Shapes leave out the batch axis. Images are (height, width, channels), sequences are
# (steps, features). Parameters are made by the harness (``harness.workload.fairness``) from each
# layer's initialisers; the names below are Keras's, whose defaults the classic recipes use.


def _pair(value: object) -> object:
    """``3`` -> ``(3, 3)``: kernel sizes, strides and pool sizes may be given as one number."""
    return (value, value) if isinstance(value, int) else _tuple(value)


def _tuple(value: object) -> object:
    """A TOML or JSON array for a tuple field (strict validation takes only tuples)."""
    return tuple(value) if isinstance(value, list) else value


def _list(value: object) -> object:
    """A tuple for a list field, as Python callers write one (strict validation takes only
    lists)."""
    return list(value) if isinstance(value, tuple) else value


Pair = Annotated[
    tuple[Annotated[int, Field(gt=0, le=10_000)], Annotated[int, Field(gt=0, le=10_000)]],
    BeforeValidator(_pair),
]


class Flatten(_Spec):
    """Flattens (h, w, c) or (steps, features) to one axis, in row-major (channels-last) order."""

    kind: Literal["flatten"]


class Dense(_Spec):
    """``x W + b`` then the activation. On a sequence (steps, features) the same kernel is
    applied to every step (the last axis), as Keras's ``Dense`` does."""

    kind: Literal["dense"]
    units: Positive
    activation: Activation = "linear"
    kernel_initializer: Literal["glorot_uniform"] = "glorot_uniform"
    bias_initializer: Literal["zeros"] = "zeros"


class Conv2D(_Spec):
    """A 2-D convolution over (height, width, channels) inputs, with a bias.

    ``same`` padding pads as TensorFlow does: ``ceil(size / stride)`` outputs, the odd pixel of
    padding at the bottom and right.
    """

    kind: Literal["conv2d"]
    filters: Positive
    kernel_size: Pair
    strides: Pair = (1, 1)
    padding: Literal["valid", "same"] = "valid"
    activation: Activation = "linear"
    kernel_initializer: Literal["glorot_uniform"] = "glorot_uniform"
    bias_initializer: Literal["zeros"] = "zeros"


class MaxPool2D(_Spec):
    """Max-pooling over (height, width) windows, without padding; ``strides`` default to the
    pool size."""

    kind: Literal["max_pool2d"]
    pool_size: Pair = (2, 2)
    strides: Pair | None = None

    @property
    def stride(self) -> tuple[int, int]:
        return self.strides or self.pool_size


class BatchNorm(_Spec):
    """Batch normalisation over every axis but the last (the channels), then the activation.

    Training normalises with the batch's mean and biased variance (divided by the count);
    evaluation with the moving ones. After each training step::

        moving_mean     = momentum * moving_mean     + (1 - momentum) * batch_mean
        moving_variance = momentum * moving_variance + (1 - momentum) * batch_variance

    with the *biased* batch variance and ``momentum`` in Keras's convention (the share of the
    old value kept: PyTorch's ``momentum=0.1`` is this ``0.9``, and PyTorch updates with the
    unbiased variance; its plugin converts both). ``gamma`` starts at ones, ``beta`` at
    zeros, the moving mean at zeros and the moving variance at ones.
    """

    kind: Literal["batch_norm"]
    momentum: float = Field(default=0.99, ge=0, lt=1)
    epsilon: float = Field(default=1e-3, gt=0, le=1)
    activation: Activation = "linear"


class GlobalAvgPool2D(_Spec):
    """The mean over (height, width) of an (h, w, c) input: (c,). Parameter-free."""

    kind: Literal["global_avg_pool2d"]


class ResidualBlock(_Spec):
    """A basic ResNet block (He et al., 2016) on (h, w, c) inputs::

        y = relu(BN2(conv2(relu(BN1(conv1(x))))) + shortcut(x))

    ``conv1`` is 3x3 with ``strides``, ``conv2`` 3x3 with stride 1, both ``same`` (TensorFlow's
    padding) and without a bias, both ``filters`` wide. ``shortcut`` is the identity when the
    stride is 1 and the width doesn't change, else a projection: a 1x1 convolution with
    ``strides`` and no bias, then its own batch norm ``BN_s``. Every batch norm uses
    ``momentum`` and ``epsilon`` as :class:`BatchNorm` does; kernels are Glorot-uniform.
    """

    kind: Literal["residual_block"]
    filters: Positive
    strides: Pair = (1, 1)
    momentum: float = Field(default=0.99, ge=0, lt=1)
    epsilon: float = Field(default=1e-3, gt=0, le=1)
    kernel_initializer: Literal["glorot_uniform"] = "glorot_uniform"

    def projects(self, in_channels: int) -> bool:
        """Whether the shortcut is a projection (the stride or the width changes)."""
        return tuple(self.strides) != (1, 1) or in_channels != self.filters


class Dropout(_Spec):
    """Zeroes a ``rate`` share of inputs while training and scales the rest by 1 / (1 - rate);
    the identity when evaluating. Each framework draws its own masks."""

    kind: Literal["dropout"]
    rate: float = Field(ge=0, lt=1)


class _Recurrent(_Spec):
    units: Positive
    #: output every step's state (steps, units), not only the last one (units,)
    return_sequences: bool = False
    activation: Literal["tanh"] = "tanh"
    kernel_initializer: Literal["glorot_uniform"] = "glorot_uniform"
    recurrent_initializer: Literal["orthogonal"] = "orthogonal"
    bias_initializer: Literal["zeros"] = "zeros"


class SimpleRNN(_Recurrent):
    """``h = tanh(x W + h U + b)``, from a zero initial state."""

    kind: Literal["simple_rnn"]


class LSTM(_Recurrent):
    """Gates in the order input, forget, cell, output; sigmoid gates; zero initial states."""

    kind: Literal["lstm"]
    recurrent_activation: Literal["sigmoid"] = "sigmoid"
    #: start the forget gate's bias at 1 (Keras's default, after Jozefowicz et al., 2015)
    unit_forget_bias: bool = True


class GRU(_Recurrent):
    """Gates in the order update, reset, candidate, with the reset gate applied after the
    recurrent product ("reset_after", as Keras 3, PyTorch and cuDNN compute it); separate input
    and recurrent biases."""

    kind: Literal["gru"]
    recurrent_activation: Literal["sigmoid"] = "sigmoid"


# -- sequences built from images (the Vision Transformer's layers) -------------------------------


class Patches(_Spec):
    """Cuts an (h, w, c) image into non-overlapping ``size`` x ``size`` patches: a sequence of
    ``(h / size) * (w / size)`` tokens of ``size * size * c`` values. Tokens run over the patch
    grid in row-major order (left to right, then top to bottom); inside a token the values are
    in (row, column, channel) order, channels varying fastest. Parameter-free."""

    kind: Literal["patches"]
    size: Annotated[int, Field(gt=0, le=10_000)]


class PositionEmbedding(_Spec):
    """Adds a learned (steps, features) array to its (steps, features) input."""

    kind: Literal["position_embedding"]
    #: drawn from a normal distribution of mean 0 and this standard deviation (ViT's 0.02)
    initializer: Literal["random_normal"] = "random_normal"
    stddev: float = Field(default=0.02, gt=0, le=10)


class Embedding(_Spec):
    """Looks up a learned vector for each token id of a (steps,) sequence: (steps,
    output_dim). The ids arrive as float32 (exact below 2**24), each in ``[0, input_dim)``;
    the table starts normal with mean 0 and ``stddev`` (GPT-2's 0.02). Only a model's first
    layer, on a dataset of token ids (``[preprocessing] divide_by`` 1)."""

    kind: Literal["embedding"]
    #: the vocabulary size: the dataset's class count
    input_dim: Positive
    output_dim: Positive
    initializer: Literal["random_normal"] = "random_normal"
    stddev: float = Field(default=0.02, gt=0, le=10)


class MeanPool(_Spec):
    """The mean over the steps of a (steps, features) sequence: (features,). Parameter-free."""

    kind: Literal["mean_pool"]


class LayerNorm(_Spec):
    """Normalises each step over its last axis: ``(x - mean) / sqrt(var + epsilon) * gamma +
    beta``, with the biased variance (divided by the feature count); ``gamma`` starts at ones,
    ``beta`` at zeros."""

    kind: Literal["layer_norm"]
    epsilon: float = Field(default=1e-6, gt=0, le=1)


class TransformerEncoder(_Spec):
    """One pre-norm Transformer encoder block over a (steps, width) sequence, output the same
    shape (the exact maths is in docs/tasks.md)::

        x = x + Dropout(MHA(LN1(x)))
        x = x + Dropout(Dense2(Dropout(gelu(Dense1(LN2(x))))))

    With ``causal``, step ``i`` attends only to steps ``j <= i`` (the scores of later keys
    are masked out before the softmax): a decoder block, as in GPT. ``MHA`` is multi-head
    self-attention with ``heads`` heads of ``key_dim`` values each (the
    value width is ``key_dim`` too), scores scaled by ``1 / sqrt(key_dim)``, a softmax over the
    keys (with ``dropout`` on its probabilities), and an output projection back to the width;
    every projection has a bias. ``gelu`` is the exact form ``x * Phi(x) = 0.5 x (1 + erf(x /
    sqrt 2))``, not the tanh approximation. Both layer norms use ``epsilon``. Kernels are
    Glorot-uniform over each projection's (inputs, outputs) matrix, biases zeros, ``gamma`` ones
    and ``beta`` zeros.
    """

    kind: Literal["transformer_encoder"]
    heads: Annotated[int, Field(gt=0, le=1024)]
    key_dim: Positive
    mlp_units: Positive
    mlp_activation: Literal["gelu"] = "gelu"
    #: mask each step's attention to later steps (a decoder block); plugin API 3
    causal: bool = False
    #: on the attention probabilities, after the MLP's activation and on each sublayer's output
    dropout: float = Field(default=0.0, ge=0, lt=1)
    epsilon: float = Field(default=1e-6, gt=0, le=1)
    kernel_initializer: Literal["glorot_uniform"] = "glorot_uniform"
    bias_initializer: Literal["zeros"] = "zeros"


Layer = Annotated[
    Flatten
    | Dense
    | Conv2D
    | MaxPool2D
    | Dropout
    | BatchNorm
    | GlobalAvgPool2D
    | ResidualBlock
    | SimpleRNN
    | LSTM
    | GRU
    | Patches
    | PositionEmbedding
    | Embedding
    | MeanPool
    | LayerNorm
    | TransformerEncoder,
    Field(discriminator="kind"),
]
LAYER_KINDS = (
    "flatten",
    "dense",
    "conv2d",
    "max_pool2d",
    "dropout",
    "batch_norm",
    "global_avg_pool2d",
    "residual_block",
    "simple_rnn",
    "lstm",
    "gru",
    "patches",
    "position_embedding",
    "embedding",
    "mean_pool",
    "layer_norm",
    "transformer_encoder",
)
RECURRENT_KINDS = ("simple_rnn", "lstm", "gru")
#: the layers that take a (steps, features) sequence and return one of the same shape
SEQUENCE_KINDS = ("position_embedding", "layer_norm", "transformer_encoder")


def _window(size: int, kernel: int, stride: int, padding: str) -> int:
    if padding == "same":
        return -(-size // stride)
    return (size - kernel) // stride + 1


def output_shape(layer: Layer, shape: tuple[int, ...]) -> tuple[int, ...]:
    """The output shape of ``layer`` for an input of ``shape``; ``ValueError`` on a misfit."""
    if isinstance(layer, Flatten | Dropout):
        return (math.prod(shape),) if isinstance(layer, Flatten) else shape
    if isinstance(layer, Dense):
        if len(shape) not in (1, 2):
            raise ValueError(
                f"needs a flat input or a sequence but gets shape {shape}; put a flatten layer "
                "before it"
            )
        return (*shape[:-1], layer.units)
    if isinstance(layer, Conv2D | MaxPool2D):
        if len(shape) != 3:
            raise ValueError(f"needs an input of shape (height, width, channels), not {shape}")
        if isinstance(layer, Conv2D):
            kernel, stride, padding, channels = (
                layer.kernel_size,
                layer.strides,
                layer.padding,
                layer.filters,
            )
        else:
            kernel, stride, padding, channels = layer.pool_size, layer.stride, "valid", shape[2]
        out = tuple(_window(shape[i], kernel[i], stride[i], padding) for i in (0, 1))
        if min(out) < 1:
            raise ValueError(f"its {kernel[0]}x{kernel[1]} window does not fit input {shape}")
        return (*out, channels)
    if isinstance(layer, BatchNorm | GlobalAvgPool2D | ResidualBlock):
        return _image_output_shape(layer, shape)
    if isinstance(
        layer, Patches | PositionEmbedding | Embedding | MeanPool | LayerNorm | TransformerEncoder
    ):
        return _sequence_output_shape(layer, shape)
    if layer.kind not in RECURRENT_KINDS:
        raise ValueError(
            f"is a layer kind this harness doesn't know (known: {', '.join(LAYER_KINDS)})"
        )
    if len(shape) != 2:
        raise ValueError(f"needs an input of shape (steps, features), not {shape}")
    return (shape[0], layer.units) if layer.return_sequences else (layer.units,)


def _image_output_shape(layer: Layer, shape: tuple[int, ...]) -> tuple[int, ...]:
    if isinstance(layer, BatchNorm):
        return shape  # over the last axis, whatever the rank
    if len(shape) != 3:
        raise ValueError(f"needs an input of shape (height, width, channels), not {shape}")
    if isinstance(layer, GlobalAvgPool2D):
        return (shape[2],)
    assert isinstance(layer, ResidualBlock)
    out = tuple(_window(shape[i], 3, layer.strides[i], "same") for i in (0, 1))
    return (*out, layer.filters)


def _sequence_output_shape(layer: Layer, shape: tuple[int, ...]) -> tuple[int, ...]:
    if isinstance(layer, Patches):
        if len(shape) != 3:
            raise ValueError(f"needs an input of shape (height, width, channels), not {shape}")
        if shape[0] % layer.size or shape[1] % layer.size:
            raise ValueError(
                f"cuts {layer.size}x{layer.size} patches, which don't tile a "
                f"{shape[0]}x{shape[1]} image"
            )
        return (shape[0] // layer.size * (shape[1] // layer.size), layer.size**2 * shape[2])
    if isinstance(layer, LayerNorm):
        return shape  # over the last axis, whatever the rank
    if isinstance(layer, Embedding):
        if len(shape) != 1:
            raise ValueError(f"needs an input of token ids, shape (steps,), not {shape}")
        return (shape[0], layer.output_dim)
    if len(shape) != 2:
        raise ValueError(f"needs an input of shape (steps, features), not {shape}")
    return (shape[1],) if isinstance(layer, MeanPool) else shape


class ModelSpec(_Spec):
    input_shape: Annotated[tuple[Annotated[int, Field(gt=0)], ...], BeforeValidator(_tuple)]
    layers: Annotated[list[Layer], BeforeValidator(_list)] = Field(min_length=1)

    def output_shapes(self) -> list[tuple[int, ...]]:
        """The output shape of each layer (without the batch axis); raises on a misfit."""
        shape: tuple[int, ...] = self.input_shape
        shapes: list[tuple[int, ...]] = []
        for index, layer in enumerate(self.layers):
            try:
                shape = output_shape(layer, shape)
            except ValueError as exc:
                raise ValueError(f"layers[{index}] ({layer.kind}) {exc}") from None
            shapes.append(shape)
        return shapes

    def input_shapes(self) -> list[tuple[int, ...]]:
        """The input shape of each layer."""
        return [tuple(self.input_shape), *self.output_shapes()[:-1]]

    def without_dropout(self) -> ModelSpec:
        """This model with every dropout rate set to 0 (the agreement check's model)."""
        layers = [
            layer.model_copy(update={"rate": 0.0})
            if isinstance(layer, Dropout)
            else layer.model_copy(update={"dropout": 0.0})
            if isinstance(layer, TransformerEncoder)
            else layer
            for layer in self.layers
        ]
        return self.model_copy(update={"layers": layers})


# -- training ---------------------------------------------------------------


class Adam(_Spec):
    name: Literal["adam"]
    learning_rate: float = Field(default=0.001, gt=0, le=10)
    beta_1: float = Field(default=0.9, ge=0, lt=1)
    beta_2: float = Field(default=0.999, ge=0, lt=1)
    epsilon: float = Field(default=1e-7, gt=0, le=1)


Loss = Literal["sparse_categorical_crossentropy", "mean_squared_error"]


class WarmupCosine(_Spec):
    """A learning rate that rises linearly from ``base / warmup_steps`` to the optimizer's
    ``learning_rate`` over ``warmup_steps`` updates, then falls along half a cosine
    towards ``final_fraction`` of it, which it reaches one update after the last (as Optax's and
    Keras's cosine decays count; the schedule transformers train with). Update ``s`` (0-based, counted over every epoch) of ``total`` uses::

        base * (s + 1) / warmup_steps                                     for s < warmup_steps
        base * (f + (1 - f) * (1 + cos(pi * (s - warmup_steps) / max(1, total - warmup_steps))) / 2)

    where ``total = epochs * ceil(training samples / batch_size)``: every epoch ends with its
    smaller last batch as one update.
    """

    kind: Literal["warmup_cosine"]
    warmup_steps: int = Field(default=0, ge=0, le=10_000_000)
    final_fraction: float = Field(default=0.0, ge=0, le=1)

    def learning_rate(self, step: int, base: float, total_steps: int) -> float:
        """The learning rate of update ``step``: the reference every plugin's schedule matches."""
        if step < self.warmup_steps:
            return base * (step + 1) / self.warmup_steps
        progress = min(1.0, (step - self.warmup_steps) / max(1, total_steps - self.warmup_steps))
        cosine = (1 + math.cos(math.pi * progress)) / 2
        return base * (self.final_fraction + (1 - self.final_fraction) * cosine)


class Training(_Spec):
    #: ``sparse_categorical_crossentropy`` takes integer labels and a softmax output;
    #: ``mean_squared_error`` takes float targets of shape (n,) and a (1,)-shaped output
    loss: Loss
    optimizer: Adam
    batch_size: int = Field(gt=0, le=1_000_000)
    epochs: int = Field(gt=0, le=10_000)
    eval_batch_size: int = Field(default=1000, gt=0, le=1_000_000)
    #: training samples held out (the last ones) to measure accuracy after every epoch
    validation_samples: int = Field(default=0, ge=0, le=1_000_000)
    #: how the learning rate changes over training; ``None``: the optimizer's, constant
    schedule: WarmupCosine | None = None

    def total_steps(self, num_samples: int) -> int:
        """Optimizer updates over the whole training on ``num_samples`` samples."""
        return self.epochs * -(-num_samples // self.batch_size)

    def learning_rate(self, step: int, num_samples: int) -> float:
        """The learning rate of update ``step`` (0-based, over every epoch)."""
        base = self.optimizer.learning_rate
        if self.schedule is None:
            return base
        return self.schedule.learning_rate(step, base, self.total_steps(num_samples))


# -- data and target ----------------------------------------------------------


class DatasetSpec(_Spec):
    name: str
    #: train on the first N training samples (those left after the held-out validation
    #: samples); ``None`` for all of them. Sweeps over the amount of work vary it.
    train_samples: int | None = Field(default=None, gt=0, le=100_000_000)

    @model_validator(mode="after")
    def _known(self, info: ValidationInfo) -> DatasetSpec:
        known = _datasets(info)
        if self.name not in known:
            raise ValueError(unknown_name_message("dataset", self.name, list(known)))
        return self


class Preprocessing(_Spec):
    #: Inputs are divided by this (255 scales 8-bit pixels to [0, 1]).
    divide_by: float = Field(default=1.0, gt=0)


#: each metric, with whether higher is better and the validation figure tracked for it
#: ``test_bits_per_char``: a language model's mean loss per token (character) in bits
METRICS = {"test_accuracy": True, "test_mse": False, "test_bits_per_char": False}


class Target(_Spec):
    """The quality a finished cell must reach: ``test_accuracy >= min`` or ``test_mse <= max``."""

    metric: Literal["test_accuracy", "test_mse", "test_bits_per_char"] = "test_accuracy"
    min: float | None = Field(default=None, ge=0, le=1)
    max: float | None = Field(default=None, gt=0)
    #: the threshold when the task runs on another dataset (``--dataset``), by dataset name
    by_dataset: dict[str, Annotated[float, Field(ge=0)]] = {}

    @model_validator(mode="after")
    def _one_bound(self) -> Target:
        needed, other = ("min", "max") if self.higher_is_better else ("max", "min")
        if getattr(self, needed) is None or getattr(self, other) is not None:
            hint = ' (an error to stay under? set metric = "test_mse")' if self.max else ""
            raise ValueError(f"target {self.metric} needs `{needed}` (and no `{other}`){hint}")
        if self.higher_is_better and any(value > 1 for value in self.by_dataset.values()):
            raise ValueError(f"target.by_dataset: {self.metric} targets are at most 1")
        if not self.higher_is_better and any(value <= 0 for value in self.by_dataset.values()):
            raise ValueError(f"target.by_dataset: {self.metric} targets are more than 0")
        return self

    @property
    def higher_is_better(self) -> bool:
        return METRICS[self.metric]

    @property
    def threshold(self) -> float:
        return self.min if self.higher_is_better else self.max  # type: ignore[return-value]

    @property
    def validation_metric(self) -> str:
        """What is measured on the validation split after every epoch: accuracy or mse."""
        return self.metric.removeprefix("test_")

    def met(self, value: float | None) -> bool:
        if value is None:
            return False
        return value >= self.threshold if self.higher_is_better else value <= self.threshold

    def describe(self, value: float | None = None) -> str:
        """``test_accuracy ≥ 0.97``, or with a value: ``0.9812 ≥ 0.97`` / ``0.0041 > 0.003``."""
        if value is None:
            return f"{self.metric} {'≥' if self.higher_is_better else '≤'} {self.threshold:g}"
        ok = self.met(value)
        sign = ("≥" if ok else "<") if self.higher_is_better else ("≤" if ok else ">")
        # an error can be far below 1: significant digits, not decimals
        shown = f"{value:.4f}" if self.higher_is_better else f"{value:.3g}"
        return f"{shown} {sign} {self.threshold:g}"

    def for_dataset(self, name: str) -> Target:
        if name not in self.by_dataset:
            return self
        bound = "min" if self.higher_is_better else "max"
        return self.model_copy(update={bound: self.by_dataset[name]})


class Tolerances(_Spec):
    """An agreement check's bounds in one precision."""

    loss_rtol: float = Field(gt=0)
    weights_rtol: float = Field(gt=0)


#: the bounds of a check in a reduced precision where a task states none. bfloat16 keeps 8
#: significant bits (a relative rounding of 2**-9, about 2e-3, at every operation), and
#: frameworks round in different places (which products accumulate in float32, where
#: activations are cast); weights are measured against their layer's scale (see
#: harness.checks.agreement.weights_difference). Measured (docs/measuring.md, "Precision"):
#: mnist_mlp over 100 steps at most 3.1e-2 (loss) and 0.17 (weights) apart in bfloat16,
#: 1.3e-2 and 0.16 in mixed
REDUCED_PRECISION_TOLERANCES = {
    "bfloat16": Tolerances(loss_rtol=5e-2, weights_rtol=0.25),
    "mixed": Tolerances(loss_rtol=2e-2, weights_rtol=0.25),
}


class Agreement(_Spec):
    """What ``harness check-agreement`` holds the frameworks to on this task (CPU; the
    tolerances below are float32's, ``bfloat16`` and ``mixed`` have their own)."""

    #: optimizer steps compared, from the shared initial weights on the shared batches
    steps: int = Field(default=100, gt=0, le=100_000)
    #: largest allowed relative difference of a step's training loss between two frameworks
    loss_rtol: float = Field(default=1e-4, gt=0)
    #: largest allowed difference of any weight after the steps, relative to the largest
    #: magnitude in its array
    weights_rtol: float = Field(default=1e-3, gt=0)
    #: weight arrays (by name, in every layer) left out of the weights comparison: only arrays
    #: that cannot change the model's output, whose values are rounding noise (give the reason
    #: in ``note``); they are still counted and trained
    weights_not_compared: Annotated[list[str], BeforeValidator(_list)] = []
    #: why the tolerances are what they are (shown by the check)
    note: str = ""
    #: the bounds of ``check-agreement --precision bfloat16`` / ``mixed``; unset:
    #: :data:`REDUCED_PRECISION_TOLERANCES`
    bfloat16: Tolerances | None = None
    mixed: Tolerances | None = None

    def tolerances(self, precision: str = "float32") -> Tolerances:
        """The loss and weights bounds of a check in ``precision``."""
        if precision == "float32":
            return Tolerances(loss_rtol=self.loss_rtol, weights_rtol=self.weights_rtol)
        stated = getattr(self, precision)
        return stated if stated is not None else REDUCED_PRECISION_TOLERANCES[precision]


#: what a task holds that needs each plugin API (:meth:`Task.plugin_api_needed`)
NEEDS = {3: "a language model's layers", 4: "a learning-rate schedule"}


class Task(_Spec):
    name: str = Field(pattern=r"^[A-Za-z0-9_.-]+$", max_length=100)
    description: str = ""
    source: str = ""
    seed: int = Field(ge=0, lt=2**32)
    dataset: DatasetSpec
    preprocessing: Preprocessing = Preprocessing()
    model: ModelSpec
    training: Training
    target: Target
    agreement: Agreement = Agreement()
    #: the facts of the dataset the task was validated against (shape, classes, files)
    _dataset_info: DatasetInfo = PrivateAttr()

    @property
    def dataset_info(self) -> DatasetInfo:
        """What the task's dataset is: resolved once, when the task was validated."""
        return self._dataset_info

    @model_validator(mode="after")
    def _shapes_fit(self, info: ValidationInfo) -> Task:
        dataset = _datasets(info)[self.dataset.name]
        self._dataset_info = dataset
        model_input = tuple(self.model.input_shape)
        if model_input not in (dataset.input_shape, (*dataset.input_shape, 1)):
            raise ValueError(
                f"model.input_shape {model_input} does not match dataset {dataset.name!r}, whose "
                f"inputs have shape {dataset.input_shape} (a trailing channel axis of 1 may be "
                "added); a task is made for one input shape: pick a dataset of that shape, or "
                "set model.input_shape (--vary model.input_shape=["
                + ",".join(map(str, dataset.input_shape))
                + "]) and "
                "whatever in the model depends on it"
            )
        try:
            output = self.model.output_shapes()[-1]
        except ValueError as exc:
            raise ValueError(f"model.{exc}") from None
        if dataset.num_classes:
            if output != (*dataset.label_shape, dataset.num_classes):
                per = (
                    f" for each of its {dataset.label_shape} labels" if dataset.label_shape else ""
                )
                raise ValueError(
                    f"the last layer outputs shape {output}, but dataset {dataset.name!r} has "
                    f"{dataset.num_classes} classes{per}"
                )
            if self.training.loss != "sparse_categorical_crossentropy":
                raise ValueError(
                    f"dataset {dataset.name!r} has classes: use loss sparse_categorical_crossentropy"
                )
            if (
                self.model.layers[-1].kind != "dense"
                or self.model.layers[-1].activation != "softmax"
            ):
                raise ValueError("a classifier's last layer must be a dense layer with softmax")
        else:
            if output != (1,):
                raise ValueError(
                    f"the last layer outputs shape {output}; dataset {dataset.name!r} has one "
                    "target value per sample, so it must output shape (1,)"
                )
            if self.training.loss != "mean_squared_error":
                raise ValueError(
                    f"dataset {dataset.name!r} has real-valued targets: use loss mean_squared_error"
                )
        self._check_token_ids(dataset)
        wanted = (
            "test_mse"
            if not dataset.num_classes
            else "test_bits_per_char"
            if dataset.label_shape
            else "test_accuracy"
        )
        if self.target.metric != wanted:
            raise ValueError(f"target.metric must be {wanted} for dataset {dataset.name!r}")
        return self

    def _check_token_ids(self, dataset: DatasetInfo) -> None:
        """An embedding looks up token ids: first, on undivided ids, one row per class."""
        for index, layer in enumerate(self.model.layers):
            if not isinstance(layer, Embedding):
                continue
            if index:
                raise ValueError(f"layers[{index}] (embedding) must be the first layer")
            if self.preprocessing.divide_by != 1:
                raise ValueError(
                    "an embedding takes token ids: [preprocessing] divide_by must be 1"
                )
            if layer.input_dim != dataset.num_classes:
                raise ValueError(
                    f"layers[0] (embedding) has input_dim {layer.input_dim}, but dataset "
                    f"{dataset.name!r} has {dataset.num_classes} token ids"
                )

    def with_epochs(self, epochs: int) -> Task:
        """This task with another epoch count (``--epochs``), validated."""
        data = self.model_dump()
        data["training"]["epochs"] = epochs
        return _validate(data, f"task {self.name!r} with --epochs {epochs}", self.known_datasets())

    def with_dataset(self, name: str, datasets: DatasetFacts | None = None) -> Task:
        """This task on another dataset of the same shape (``--dataset``), with that dataset's
        target from ``target.by_dataset`` when the task gives one. ``datasets``: the datasets
        ``name`` may be (``harness.registry.catalog.known_datasets()`` for a plugin's)."""
        data = self.model_dump()
        data["dataset"]["name"] = name
        data["target"] = self.target.for_dataset(name).model_dump()
        origin = f"task {self.name!r} with --dataset {name}"
        return _validate(data, origin, datasets or self.known_datasets())

    def known_datasets(self) -> DatasetFacts:
        """The built-in datasets and the one this task was validated against."""
        return {**DATASETS, self.dataset.name: self._dataset_info}

    def plugin_api_needed(self) -> int:
        """The plugin API an adapter must speak to build this task faithfully (an older adapter
        could ignore what it doesn't know, unknowingly): 4 for a learning-rate schedule, 3 for a
        language model (a causal block without its mask); :data:`NEEDS` says why."""
        if self.training.schedule is not None:
            return 4
        language = any(
            isinstance(layer, Embedding) or (isinstance(layer, TransformerEncoder) and layer.causal)
            for layer in self.model.layers
        )
        labels = getattr(self, "_dataset_info", None)  # a kit's probe task has no dataset
        return 3 if language or (labels is not None and labels.label_shape) else 0

    def without_dropout(self) -> Task:
        """This task with dropout disabled, so every framework computes the same function."""
        return self.model_copy(update={"model": self.model.without_dropout()})


# -- loading ----------------------------------------------------------------


#: far more than any task file needs (they are a few KB); more is not a task file
MAX_TASK_FILE_BYTES = 1 << 20


def load_task_file(path: Path, datasets: DatasetFacts | None = None) -> Task:
    """The task in the TOML file at ``path``; its dataset is looked up in ``datasets`` (the
    built-in ones when not given)."""
    try:
        # looked at before opening: opening a pipe would wait for a writer, /dev/zero never ends
        mode = path.stat().st_mode
        if stat.S_ISDIR(mode):
            raise TaskError(f"{path}: is a folder, not a task file")
        if not stat.S_ISREG(mode):
            raise TaskError(f"{path}: is not a regular file (a device, pipe or socket)")
        with path.open("rb") as handle:
            raw = handle.read(MAX_TASK_FILE_BYTES + 1)
        if len(raw) > MAX_TASK_FILE_BYTES:
            raise TaskError(f"{path}: more than {MAX_TASK_FILE_BYTES:,} bytes, not a task file")
        text = raw.decode("utf-8")
    except FileNotFoundError:
        raise TaskError(f"{path}: task file not found") from None
    except IsADirectoryError:
        raise TaskError(f"{path}: is a folder, not a task file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise TaskError(f"{path}: cannot read task file: {exc}") from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise TaskError(f"{path}: not valid TOML: {exc}") from None
    return _validate(data, str(path), datasets)


def validate_task_data(data: dict, origin: str, datasets: DatasetFacts | None = None) -> Task:
    """``data`` (a task file's tables) as a :class:`Task`; one line naming ``origin`` if not.
    ``datasets``: the datasets it may name (the built-in ones when not given)."""
    return _validate(data, origin, datasets)


def _validate(data: dict, origin: str, datasets: DatasetFacts | None = None) -> Task:
    try:
        return Task.model_validate(data, context={"datasets": datasets or DATASETS})
    except ValidationError as exc:
        raise TaskError(f"{origin}: {_first_problem(exc)}") from None


def _first_problem(exc: ValidationError) -> str:
    """One line for the first problem pydantic found (and how many more there are)."""
    errors = exc.errors(include_url=False)
    first = errors[0]
    where = ".".join(str(part) for part in first["loc"] if not _is_union_tag(part))
    message = first["msg"].removeprefix("Value error, ")
    if first["type"] == "extra_forbidden":
        message = "unknown key (check its spelling)"
    elif first["type"] in _NUMBER_TYPES and isinstance(first["input"], bool):
        message = f"{first['input']!r} is a true/false value, not a number"
    elif first["type"] in _NUMBER_TYPES and isinstance(first["input"], str):
        message = f"{first['input']!r} is text, not a number (write it without quotes)"
    elif first["type"] in _NUMBER_TYPES and isinstance(first["input"], float):
        message = (
            f"{first['input']!r} is a decimal number; this takes a whole number, written "
            "without a point or exponent"
        )
    elif first["type"] == "union_tag_invalid":
        message = (
            f"unknown layer kind {first['input'].get('kind')!r} (known: {', '.join(LAYER_KINDS)})"
        )
    line = f"{where}: {message}" if where else message
    if len(errors) > 1:
        line += f" (and {len(errors) - 1} more problem{'s' if len(errors) > 2 else ''})"
    return line


#: pydantic's error types for a value that is not the number a field takes
_NUMBER_TYPES = ("int_type", "float_type", "int_parsing", "float_parsing", "int_from_float")


def _is_union_tag(part: object) -> bool:
    return part in LAYER_KINDS


def __getattr__(name: str) -> Any:
    # harness 0.2 loaded tasks by name here; finding them needs the plugin registry, a layer
    # above this one, where load_task now lives
    if name == "load_task":
        return moved_attribute(__name__, name, "harness.registry.catalog")
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
