"""The PyTorch plugin on labels for every step (plugin API 3): a small causal language model
trains, evaluates and predicts with ``(n, steps)`` labels, the loss and accuracy the mean over
every step of every sample, and compiled mode's padded last batch takes eager's step."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

from .conftest import harness_env

TRAIN = """
import json, sys
import numpy as np
from harness.api.adapter import open_session
from harness.registry.plugins import get_registry
from harness.testing.probes import PROBES, probe_task, probe_weights, probe_inputs

probe = next(probe for probe in PROBES if probe.name == "small_gpt")
task = probe_task(probe, loss="sparse_categorical_crossentropy", learning_rate=0.01, batch_size=4)
x = probe_inputs(task, samples=10)  # batches of 4, 4 and a last one of 2
y = np.random.default_rng(1).integers(0, 7, x.shape).astype(np.int64)  # (10, 6): every step
order = np.random.default_rng(2).permutation(10)
mode, out = sys.argv[1:]
session = open_session(get_registry().framework("torch"), device="cpu", threads=1, mode=mode)
trainer = session.build(task, probe_weights(task), x, y)
losses = [float(trainer.train_epoch(order)) for _ in range(2)]
evaluation = trainer.evaluate(x, y)
arrays = {f"{i}-{name}": a for i, layer in enumerate(trainer.weights()) for name, a in layer.items()}
np.savez(out, predicted=trainer.predict(x), x=x, y=y, **arrays)
print(json.dumps({"losses": losses, "loss": evaluation.loss, "accuracy": evaluation.accuracy}))
"""


def train(mode: str, folder) -> tuple[dict, dict[str, np.ndarray]]:
    out = folder / f"torch-{mode}.npz"
    result = subprocess.run(
        [sys.executable, "-c", TRAIN, mode, str(out)],
        capture_output=True, text=True, env=harness_env(), timeout=600,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    arrays = np.load(out)
    return json.loads(result.stdout.splitlines()[-1]), {name: arrays[name] for name in arrays.files}


def test_labels_for_every_step_are_averaged_over_every_token(tmp_path):
    result, arrays = train("eager", tmp_path)
    predicted, y = arrays["predicted"].astype(np.float64), arrays["y"]
    assert predicted.shape == (*y.shape, 7)
    picked = np.take_along_axis(predicted, y[..., None], axis=-1)[..., 0]
    assert result["loss"] == pytest.approx(-np.log(picked).mean(), rel=1e-5)
    assert result["accuracy"] == pytest.approx((predicted.argmax(axis=-1) == y).mean())
    assert result["losses"][1] < result["losses"][0]


def test_compiled_pads_the_last_batch_of_a_language_model_as_eager_runs_it(tmp_path):
    expected, expected_arrays = train("eager", tmp_path)
    result, arrays = train("compiled", tmp_path)
    assert result["losses"] == pytest.approx(expected["losses"], rel=1e-5)
    assert result["loss"] == pytest.approx(expected["loss"], rel=1e-5)
    assert result["accuracy"] == pytest.approx(expected["accuracy"])
    for name, array in expected_arrays.items():
        if name.endswith("-key_bias"):  # can't change the output: its gradient is rounding noise
            continue
        np.testing.assert_allclose(arrays[name], array, rtol=1e-5, atol=1e-6, err_msg=name)
