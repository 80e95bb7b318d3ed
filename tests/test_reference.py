"""The numpy reference's Vision Transformer and ResNet layers, against the maths written out another way.

The conformance kit holds every plugin to :mod:`harness.workload.reference`; these tests hold the
reference to the task's definitions, so a plugin is never fitted to a wrong reference.
"""

import math

import numpy as np
import pytest

from harness.testing.probes import Probe, probe_task, probe_weights
from harness.workload import reference
from harness.workload.fairness import initial_weights
from harness.workload.tasks import BatchNorm, GlobalAvgPool2D, LayerNorm, Patches, ResidualBlock


def test_gelu_is_the_exact_erf_form_not_the_tanh_approximation():
    x = np.array([-2.0, -0.5, 0.0, 1.0, 3.0])
    phi = np.array([0.5 * (1 + math.erf(v / math.sqrt(2))) for v in x])
    np.testing.assert_allclose(reference.gelu(x), x * phi, rtol=1e-15)
    tanh_form = 0.5 * x * (1 + np.tanh(math.sqrt(2 / math.pi) * (x + 0.044715 * x**3)))
    assert np.abs(reference.gelu(x) - tanh_form).max() > 1e-4


def test_patches_are_row_major_tokens_of_row_column_channel_values():
    image = np.arange(4 * 6 * 2, dtype=np.float64).reshape(1, 4, 6, 2)
    tokens = reference.patches(Patches(kind="patches", size=2), image)
    assert tokens.shape == (1, 6, 8)  # a 2x3 grid of 2x2x2 patches
    # the second token is rows 0-1, columns 2-3, every channel, channels varying fastest
    assert tokens[0, 1].tolist() == image[0, 0:2, 2:4, :].reshape(-1).tolist()
    assert tokens[0, 3].tolist() == image[0, 2:4, 0:2, :].reshape(-1).tolist()


def test_layer_norm_uses_the_biased_variance_and_epsilon():
    x = np.array([[1.0, 2.0, 4.0]])
    spec = LayerNorm(kind="layer_norm", epsilon=0.5)
    out = reference.layer_forward(spec, {"gamma": np.ones(3), "beta": np.zeros(3)}, x)
    mean, variance = 7 / 3, ((1 - 7 / 3) ** 2 + (2 - 7 / 3) ** 2 + (4 - 7 / 3) ** 2) / 3
    np.testing.assert_allclose(out, (x - mean) / np.sqrt(variance + 0.5))


def _attention_one_head_at_a_time(weights, x):
    """Multi-head attention as the paper writes it: a loop over heads, concatenated."""
    heads = weights["query_kernel"].shape[1]
    outputs = []
    for h in range(heads):
        q, k, v = (
            x @ weights[f"{name}_kernel"][:, h, :] + weights[f"{name}_bias"][h]
            for name in ("query", "key", "value")
        )
        scores = q @ np.swapaxes(k, -1, -2) / math.sqrt(q.shape[-1])
        scores = np.exp(scores - scores.max(axis=-1, keepdims=True))
        outputs.append(scores / scores.sum(axis=-1, keepdims=True) @ v)
    width = weights["output_kernel"].shape[-1]
    kernel = weights["output_kernel"].reshape(-1, width)  # heads stacked, as concatenated
    return np.concatenate(outputs, axis=-1) @ kernel + weights["output_bias"]


@pytest.fixture
def encoder():
    task = probe_task(
        Probe(
            "encoder",
            (5, 6),
            ({"kind": "transformer_encoder", "heads": 3, "key_dim": 2, "mlp_units": 7},),
        )
    )
    [weights] = probe_weights(task)
    x = np.random.default_rng(1).standard_normal((2, 5, 6))
    return task.model.layers[0], {k: v.astype(np.float64) for k, v in weights.items()}, x


def test_the_encoder_is_pre_norm_attention_then_a_gelu_mlp(encoder):
    spec, w, x = encoder
    normed = reference.layer_norm(x, w["norm1_gamma"], w["norm1_beta"], spec.epsilon)
    x1 = x + _attention_one_head_at_a_time(w, normed)
    hidden = reference.layer_norm(x1, w["norm2_gamma"], w["norm2_beta"], spec.epsilon)
    mlp = reference.gelu(hidden @ w["mlp_kernel"] + w["mlp_bias"])
    expected = x1 + mlp @ w["mlp_output_kernel"] + w["mlp_output_bias"]
    np.testing.assert_allclose(reference.transformer_encoder(spec, w, x), expected, rtol=1e-12)


def test_the_whole_vision_transformer_runs_through_the_reference():
    layers = (
        {"kind": "patches", "size": 2},
        {"kind": "dense", "units": 4},
        {"kind": "position_embedding"},
        {"kind": "transformer_encoder", "heads": 2, "key_dim": 2, "mlp_units": 3},
        {"kind": "layer_norm"},
        {"kind": "mean_pool"},
        {"kind": "dense", "units": 3, "activation": "softmax"},
    )
    task = probe_task(Probe("vit", (4, 4, 1), layers))
    assert task.model.output_shapes()[:3] == [(4, 4), (4, 4), (4, 4)]
    out = reference.forward(task.model, initial_weights(task), np.ones((2, 4, 4, 1)))
    assert out.shape == (2, 3)
    np.testing.assert_allclose(out.sum(axis=1), 1.0)


# -- the ResNet's layers ----------------------------------------------------------------


def test_batch_norm_evaluates_with_the_moving_statistics_then_its_activation():
    x = np.array([[-2.0, 1.0], [3.0, 5.0]])
    weights = {
        "gamma": np.array([2.0, 0.5]),
        "beta": np.array([0.1, -0.2]),
        "moving_mean": np.array([1.0, 2.0]),
        "moving_variance": np.array([4.0, 0.25]),
    }
    spec = BatchNorm(kind="batch_norm", epsilon=0.5, activation="relu")
    scaled = (x - [1.0, 2.0]) / np.sqrt([4.5, 0.75]) * [2.0, 0.5]
    expected = np.maximum(scaled + [0.1, -0.2], 0)
    np.testing.assert_allclose(reference.layer_forward(spec, weights, x), expected)


def test_moving_statistics_keep_momentum_of_the_old_and_take_the_biased_batch_variance():
    spec = BatchNorm(kind="batch_norm", momentum=0.9)
    x = np.array([[1.0], [3.0]])  # mean 2, biased variance 1 (the unbiased one is 2)
    old = {"moving_mean": np.array([10.0]), "moving_variance": np.array([5.0])}
    moved = reference.moving_statistics(spec, old, x)
    np.testing.assert_allclose(moved["moving_mean"], [0.9 * 10 + 0.1 * 2])
    np.testing.assert_allclose(moved["moving_variance"], [0.9 * 5 + 0.1 * 1])


def test_batch_statistics_of_images_are_per_channel_over_batch_height_and_width():
    x = np.random.default_rng(0).standard_normal((3, 4, 5, 2))
    mean, variance = reference.batch_statistics(x)
    np.testing.assert_allclose(mean, x.reshape(-1, 2).mean(axis=0))
    np.testing.assert_allclose(variance, x.reshape(-1, 2).var(axis=0))


def test_a_residual_block_adds_the_identity_when_shape_and_width_are_kept():
    spec = ResidualBlock(kind="residual_block", filters=2)
    assert not spec.projects(2) and spec.projects(3)
    x = np.random.default_rng(1).standard_normal((2, 3, 3, 2))
    weights = initial_weights(
        probe_task(Probe("block", (3, 3, 2), ({"kind": "residual_block", "filters": 2},)))
    )[0]
    assert "shortcut_kernel" not in weights
    weights["bn2_gamma"] = np.zeros(2)  # the inner path then adds only bn2's beta (zero)
    np.testing.assert_allclose(reference.residual_block(spec, weights, x), np.maximum(x, 0))


def test_a_projecting_residual_block_strides_both_paths_with_same_padding():
    spec = ResidualBlock(kind="residual_block", filters=3, strides=2)
    task = probe_task(Probe("block", (5, 4, 2), (spec.model_dump(),)))
    weights = initial_weights(task)[0]
    assert weights["shortcut_kernel"].shape == (1, 1, 2, 3)
    assert task.model.output_shapes() == [(3, 2, 3)]  # ceil(5 / 2), ceil(4 / 2)
    x = np.random.default_rng(2).standard_normal((1, 5, 4, 2))
    weights["bn2_gamma"] = np.zeros(3)
    # with the inner path silenced, the output is the projection: x at every second pixel
    # (a 1x1 kernel with stride 2 starts at the first pixel), through the kernel and bn
    projected = x[:, ::2, ::2, :] @ weights["shortcut_kernel"][0, 0]
    expected = np.maximum(projected / np.sqrt(1 + spec.epsilon), 0)
    np.testing.assert_allclose(reference.residual_block(spec, weights, x), expected)


def test_global_average_pooling_is_the_mean_over_height_and_width():
    x = np.arange(2 * 3 * 4 * 5, dtype=np.float64).reshape(2, 3, 4, 5)
    spec = GlobalAvgPool2D(kind="global_avg_pool2d")
    np.testing.assert_allclose(reference.layer_forward(spec, {}, x), x.mean(axis=(1, 2)))


def test_moving_statistics_are_kept_but_not_counted_as_parameters():
    from harness.workload.fairness import count_parameters

    task = probe_task(Probe("bn", (4,), ({"kind": "batch_norm"},)))
    [weights] = initial_weights(task)
    assert sorted(weights) == ["beta", "gamma", "moving_mean", "moving_variance"]
    assert count_parameters([weights]) == 8  # gamma and beta
    np.testing.assert_array_equal(weights["moving_variance"], np.ones(4))
