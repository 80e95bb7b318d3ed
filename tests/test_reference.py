"""The numpy reference's Vision Transformer layers, against the maths written out another way.

The conformance kit holds every plugin to :mod:`harness.workload.reference`; these tests hold the
reference to the task's definitions, so a plugin is never fitted to a wrong reference.
"""

import math

import numpy as np
import pytest

from harness.testing.probes import Probe, probe_task, probe_weights
from harness.workload import reference
from harness.workload.fairness import initial_weights
from harness.workload.tasks import LayerNorm, Patches


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
