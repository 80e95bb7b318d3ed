"""The ResNet layers of harness.api.keras_models through the Keras-using plugins: one training
step updates every batch norm's moving statistics, those inside a residual block too, as the task
says, and prediction afterwards uses them. The conformance kit checks a lone batch norm in the
eager mode; this covers the blocks' nested batch norms and TensorFlow's XLA-compiled mode.

Keras fixes its backend at its first import, so each framework runs in a child process.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from harness.api.adapter import availability_of
from harness.checks.agreement import max_relative_difference
from harness.registry.plugins import get_registry
from harness.testing.probes import Probe, expected_output, probe_task
from harness.workload.reference import batch_statistics, convolve
from harness.workload.tasks import ResidualBlock
from tests.test_keras_support import run_python

#: a projecting block (stride 2, 2 -> 3 channels) first, so its input is the batch itself
PROBE = Probe(
    "resnet_step",
    (5, 4, 2),
    (
        {"kind": "residual_block", "filters": 3, "strides": 2, "momentum": 0.8},
        {"kind": "global_avg_pool2d"},
        {"kind": "dense", "units": 1},
    ),
)
BATCH = 8

STEP = """
    import json, os
    import numpy as np
    from harness.registry.plugins import get_registry
    from harness.testing.probes import probe_task, probe_weights
    from tests.test_keras_resnet import BATCH, PROBE, batch

    framework, mode = os.environ["STEP_FRAMEWORK"], os.environ["STEP_MODE"]
    session = get_registry().framework(framework).setup(device="cpu", threads=1, mode=mode)
    task = probe_task(PROBE, batch_size=BATCH)
    weights = probe_weights(task)
    x, y = batch()
    trainer = session.build(task, weights, x, y)
    trainer.train_epoch(np.arange(BATCH))
    report = {
        "given": [{k: v.tolist() for k, v in layer.items()} for layer in weights],
        "trained": [{k: np.asarray(v).tolist() for k, v in layer.items()} for layer in trainer.weights()],
        "predicted": np.asarray(trainer.predict(x)).tolist(),
    }
    print("REPORT " + json.dumps(report))
"""


def batch() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(7)
    x = (rng.standard_normal((BATCH, *PROBE.input_shape)) * 2 + 0.5).astype(np.float32)
    return x, rng.standard_normal(BATCH).astype(np.float32)


def expected_moving_statistics(block: ResidualBlock, w: dict, x: np.ndarray) -> dict:
    """Each of the block's batch norms after one training step on ``x``: its input normalised
    with the batch's statistics, which move the moving ones by ``momentum``."""
    x = x.astype(np.float64)
    statistics = {"bn1_": batch_statistics(convolve(x, w["conv1_kernel"], block.strides))}
    mean, variance = statistics["bn1_"]
    normed = (convolve(x, w["conv1_kernel"], block.strides) - mean) / np.sqrt(
        variance + block.epsilon
    )
    hidden = np.maximum(normed * w["bn1_gamma"] + w["bn1_beta"], 0)
    statistics["bn2_"] = batch_statistics(convolve(hidden, w["conv2_kernel"], (1, 1)))
    projected = convolve(x, w["shortcut_kernel"], block.strides)
    statistics["shortcut_bn_"] = batch_statistics(projected)
    keep = block.momentum
    expected = {}
    for prefix, (mean, variance) in statistics.items():
        old_mean, old_variance = w[prefix + "moving_mean"], w[prefix + "moving_variance"]
        expected[prefix + "moving_mean"] = keep * old_mean + (1 - keep) * mean
        expected[prefix + "moving_variance"] = keep * old_variance + (1 - keep) * variance
    return expected


@pytest.mark.parametrize(
    ("framework", "mode"),
    [
        ("tensorflow", "eager"),
        ("tensorflow", "compiled"),
        ("keras_jax", "eager"),
        ("keras_torch", "eager"),
    ],
)
def test_a_training_step_moves_every_batch_norm_and_prediction_uses_them(framework, mode):
    availability = availability_of(get_registry().framework(framework))
    if not availability.available:
        pytest.skip(availability.reason)
    child = run_python(STEP, STEP_FRAMEWORK=framework, STEP_MODE=mode)
    assert child.returncode == 0, child.stderr[-3000:]
    [line] = [line for line in child.stdout.splitlines() if line.startswith("REPORT ")]
    report = json.loads(line.removeprefix("REPORT "))
    given = [{k: np.asarray(v, np.float32) for k, v in layer.items()} for layer in report["given"]]
    trained = [{k: np.asarray(v) for k, v in layer.items()} for layer in report["trained"]]
    task = probe_task(PROBE, batch_size=BATCH)
    x, _ = batch()

    expected = expected_moving_statistics(task.model.layers[0], given[0], x)
    for name, value in expected.items():
        difference = max_relative_difference(value, trained[0][name])
        assert difference <= 1e-5, f"{framework} {mode}: {name} is {difference:.2e} off"

    # evaluation normalises with the moving statistics just trained, not the batch's
    predicted = np.asarray(report["predicted"])
    assert max_relative_difference(expected_output(task, trained, x), predicted) <= 1e-4
