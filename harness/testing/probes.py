"""Probe models that check a plugin computes what the task says, layer by layer.

Each probe is a tiny model (usually one layer) with random weights (biases included, so a
dropped bias shows) and random inputs; a plugin builds it with the harness's weights, and its
``predict`` must match :func:`harness.workload.reference.forward`. Used by the layer tests of the built-in
plugins and by the conformance kit (:mod:`harness.testing`) that every plugin runs.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from harness.workload.fairness import initial_weights
from harness.workload.reference import forward
from harness.workload.tasks import (
    Adam,
    DatasetSpec,
    Embedding,
    Loss,
    ModelSpec,
    Target,
    Task,
    Training,
)


@dataclass(frozen=True)
class Probe:
    name: str
    input_shape: tuple[int, ...]
    layers: tuple[dict[str, Any], ...]
    #: how far the output may be from the reference, relative to its scale; None: the kit's
    #: default (``harness.testing.suite.OUTPUT_RTOL``)
    rtol: float | None = None


#: the encoder probes' tolerance: float32 keeps them within about 2e-7 of the reference, and
#: GELU's tanh approximation, the likeliest mistake, moves them by 6e-5 to 8e-5
ENCODER_RTOL = 1e-5


def _one(name: str, input_shape: tuple[int, ...], rtol: float | None = None, **layer: Any) -> Probe:
    return Probe(name, input_shape, (layer,), rtol)


PROBES: tuple[Probe, ...] = (
    *(
        _one(f"dense_{activation}", (5,), kind="dense", units=7, activation=activation)
        for activation in ("linear", "relu", "tanh", "sigmoid", "softmax")
    ),
    _one("flatten", (4, 3, 2), kind="flatten"),
    _one("conv2d_valid", (7, 6, 2), kind="conv2d", filters=4, kernel_size=3, activation="relu"),
    _one("conv2d_same", (7, 6, 2), kind="conv2d", filters=3, kernel_size=3, padding="same"),
    _one(
        "conv2d_same_stride2",
        (7, 6, 2),
        kind="conv2d",
        filters=3,
        kernel_size=[3, 2],
        strides=2,
        padding="same",
    ),
    _one("conv2d_valid_stride2", (8, 7, 1), kind="conv2d", filters=2, kernel_size=3, strides=2),
    _one("max_pool2d", (7, 6, 3), kind="max_pool2d", pool_size=2),
    _one("max_pool2d_stride1", (5, 6, 2), kind="max_pool2d", pool_size=3, strides=1),
    _one("dropout", (6,), kind="dropout", rate=0.5),
    *(
        _one(
            f"{kind}{'_sequences' if sequences else ''}",
            (6, 3),
            kind=kind,
            units=4,
            return_sequences=sequences,
        )
        for kind in ("simple_rnn", "lstm", "gru")
        for sequences in (False, True)
    ),
    Probe(
        # a flatten after a convolution: catches channels-first flattening
        "conv2d_flatten_dense",
        (6, 5, 2),
        (
            {"kind": "conv2d", "filters": 3, "kernel_size": 2},
            {"kind": "max_pool2d", "pool_size": 2},
            {"kind": "flatten"},
            {"kind": "dense", "units": 4, "activation": "softmax"},
        ),
    ),
    _one("patches", (4, 6, 2), kind="patches", size=2),
    _one("dense_sequence", (4, 3), kind="dense", units=5, activation="relu"),
    _one("position_embedding", (4, 3), kind="position_embedding"),
    _one("mean_pool", (4, 3), kind="mean_pool"),
    _one("layer_norm", (4, 5), kind="layer_norm", epsilon=1e-3),
    # pre-norm, exact GELU: a post-norm block is far off, a tanh GELU by 7e-5 (ENCODER_RTOL)
    _one(
        "transformer_encoder",
        (5, 8),
        ENCODER_RTOL,
        kind="transformer_encoder",
        heads=2,
        key_dim=4,
        mlp_units=6,
    ),
    Probe(
        "vision_transformer",
        (4, 4, 1),
        (
            {"kind": "patches", "size": 2},
            {"kind": "dense", "units": 6},
            {"kind": "position_embedding"},
            {"kind": "transformer_encoder", "heads": 3, "key_dim": 2, "mlp_units": 5},
            {"kind": "layer_norm"},
            {"kind": "mean_pool"},
            {"kind": "dense", "units": 3, "activation": "softmax"},
        ),
        ENCODER_RTOL,
    ),
    # the ResNet layers (plugin API 2): moving statistics random, so evaluation must use them
    _one("batch_norm", (5,), kind="batch_norm", momentum=0.9),
    _one("batch_norm_image_relu", (4, 3, 2), kind="batch_norm", activation="relu"),
    _one("global_avg_pool2d", (4, 3, 2), kind="global_avg_pool2d"),
    _one("residual_block_identity", (5, 4, 3), kind="residual_block", filters=3),
    # odd sizes, stride 2: a projection shortcut, and "same" padding as TensorFlow pads
    _one("residual_block_projection", (5, 4, 2), kind="residual_block", filters=3, strides=2),
    Probe(
        "small_resnet",
        (6, 6, 1),
        (
            {"kind": "conv2d", "filters": 4, "kernel_size": 3, "padding": "same"},
            {"kind": "batch_norm", "activation": "relu"},
            {"kind": "residual_block", "filters": 4},
            {"kind": "residual_block", "filters": 6, "strides": 2},
            {"kind": "global_avg_pool2d"},
            {"kind": "dense", "units": 3, "activation": "softmax"},
        ),
    ),
    # a language model's layers (plugin API 3): token ids in, and a mask that hides later steps
    _one("embedding", (5,), kind="embedding", input_dim=7, output_dim=3, stddev=1.0),
    _one(
        "causal_transformer_encoder",
        (5, 6),
        ENCODER_RTOL,
        kind="transformer_encoder",
        causal=True,
        heads=2,
        key_dim=3,
        mlp_units=4,
    ),
    Probe(
        "small_gpt",
        (6,),
        (
            {"kind": "embedding", "input_dim": 7, "output_dim": 6, "stddev": 1.0},
            {"kind": "position_embedding"},
            {
                "kind": "transformer_encoder",
                "causal": True,
                "heads": 3,
                "key_dim": 2,
                "mlp_units": 5,
            },
            {"kind": "layer_norm"},
            {"kind": "dense", "units": 7, "activation": "softmax"},
        ),
        ENCODER_RTOL,
    ),
    Probe(
        "stacked_rnn_dense",
        (5, 2),
        (
            {"kind": "simple_rnn", "units": 3, "return_sequences": True},
            {"kind": "lstm", "units": 3, "return_sequences": True},
            {"kind": "gru", "units": 3},
            {"kind": "dense", "units": 1},
        ),
    ),
)


def probe_task(
    probe: Probe,
    seed: int = 0,
    *,
    loss: Loss = "mean_squared_error",
    learning_rate: float = 0.001,
    batch_size: int = 4,
) -> Task:
    """A task around the probe's layers, for building only: plugins must not read its dataset.

    Made without the whole-task validation (its output needn't fit a dataset), with the parts
    validated on their own.
    """
    model = ModelSpec.model_validate({"input_shape": probe.input_shape, "layers": probe.layers})
    model.output_shapes()  # raises if the layers don't fit
    return Task.model_construct(
        name=f"probe_{probe.name}",
        description="",
        source="",
        seed=seed,
        dataset=DatasetSpec.model_construct(name="probe"),
        model=model,
        training=Training(
            loss=loss,
            optimizer=Adam(name="adam", learning_rate=learning_rate),
            batch_size=batch_size,
            epochs=1,
            eval_batch_size=batch_size,
        ),
        target=Target(metric="test_mse", max=1.0)
        if loss == "mean_squared_error"
        else Target(min=0.5),
    )


def probe_weights(task: Task, seed: int = 0) -> list[dict[str, np.ndarray]]:
    """The harness's initial weights, with biases, normalisation scales and offsets, batch
    norms' moving statistics and position embeddings made random and large enough to matter
    (zeros and ones would hide a lost bias, a swapped scale and offset, or batch statistics
    used where the moving ones belong; an embedding drawn at 0.02 would barely move the
    output)."""
    rng = np.random.default_rng([seed, 3])
    weights = initial_weights(task)
    for layer in weights:
        for name, array in layer.items():
            if name.endswith(("bias", "beta", "embedding", "moving_mean")):
                layer[name] = rng.uniform(-0.5, 0.5, array.shape).astype(np.float32)
            elif name.endswith("gamma"):
                layer[name] = rng.uniform(0.5, 1.5, array.shape).astype(np.float32)
            elif name.endswith("moving_variance"):
                layer[name] = rng.uniform(0.5, 2.0, array.shape).astype(np.float32)
    return weights


def probe_inputs(task: Task, samples: int = 3, seed: int = 0) -> np.ndarray:
    """Random inputs for the probe; token ids (as float32) for a model that starts with an
    embedding."""
    rng = np.random.default_rng([seed, 4])
    shape = (samples, *task.model.input_shape)
    first = task.model.layers[0]
    if isinstance(first, Embedding):
        return rng.integers(0, first.input_dim, shape).astype(np.float32)
    return rng.standard_normal(shape).astype(np.float32)


def expected_output(task: Task, weights: list[dict[str, np.ndarray]], x: np.ndarray) -> np.ndarray:
    """What the probe must output: the numpy reference, in float64."""
    return forward(task.model, weights, x)
