"""The PyTorch plugin's batch norm trains as the task says: batch statistics (the variance
biased) while training, the moving ones when evaluating, in eager and compiled mode alike, and
a smaller last batch is not padded (padding would change the batch statistics)."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

from .conftest import harness_env

pytest.importorskip("torch")

#: no biased layer before a batch norm: that bias's gradient is zero but for rounding, which
#: Adam scales to full steps, so eager and compiled runs would differ there by design
MODEL = [
    {"kind": "batch_norm", "momentum": 0.8, "activation": "relu"},
    {"kind": "residual_block", "filters": 4, "strides": 2, "momentum": 0.7},
    {"kind": "global_avg_pool2d"},
    {"kind": "dense", "units": 3, "activation": "softmax"},
]


def _session(mode: str):
    from harness.api.adapter import open_session
    from harness.registry.plugins import get_registry

    return open_session(get_registry().framework("torch"), device="cpu", threads=1, mode=mode)


def test_training_normalises_with_the_batch_and_evaluation_with_the_moving_statistics():
    import torch

    from harness.testing.probes import Probe, probe_task, probe_weights
    from harness.workload.reference import forward

    probe = Probe(
        "bn", (3,), ({"kind": "batch_norm", "momentum": 0.5}, {"kind": "dense", "units": 1})
    )
    task = probe_task(probe, batch_size=6)
    weights = probe_weights(task)
    rng = np.random.default_rng(3)
    x = (rng.standard_normal((6, 3)) * 3 - 2).astype(np.float32)
    trainer = _session("eager").build(task, weights, x, np.zeros(6, np.float32))
    trainer.model.train()
    with torch.no_grad():
        normalised = trainer.model[0](torch.from_numpy(x)).numpy()
    bn = weights[0]  # the probe's gamma and beta are drawn, not ones and zeros
    expected = (x - x.mean(axis=0)) / np.sqrt(x.var(axis=0) + task.model.layers[0].epsilon)
    expected = expected * bn["gamma"] + bn["beta"]
    np.testing.assert_allclose(normalised, expected, rtol=1e-5, atol=1e-5)
    trainer.train_epoch(np.arange(6))
    trained = trainer.weights()
    # predict() after training: the moving statistics, whatever mode train_epoch left
    np.testing.assert_allclose(
        trainer.predict(x), forward(task.model, trained, x), rtol=1e-5, atol=1e-6
    )


TRAIN = """
import json, sys
import numpy as np
from harness.api.adapter import open_session
from harness.registry.plugins import get_registry
from harness.testing.probes import Probe, probe_task, probe_weights

mode, out, layers = sys.argv[1], sys.argv[2], json.loads(sys.argv[3])
task = probe_task(Probe("bn_partial", (5, 5, 2), tuple(layers)),
                  loss="sparse_categorical_crossentropy", learning_rate=0.01, batch_size=8)
rng = np.random.default_rng(2)
x = rng.standard_normal((20, 5, 5, 2)).astype(np.float32)  # batches of 8, 8 and 4
y = rng.integers(0, 3, 20).astype(np.int64)
order = rng.permutation(20)
session = open_session(get_registry().framework("torch"), device="cpu", threads=1, mode=mode)
trainer = session.build(task, probe_weights(task), x, y)
losses = [float(trainer.train_epoch(order)) for _ in range(2)]
arrays = {f"{i}-{n}": a for i, layer in enumerate(trainer.weights()) for n, a in layer.items()}
np.savez(out, predictions=trainer.predict(x), **arrays)
print(json.dumps([losses, float(trainer.evaluate(x, y).loss)]))
"""


def _train(mode: str, folder) -> tuple[list, dict[str, np.ndarray]]:
    out = folder / f"{mode}.npz"
    result = subprocess.run(
        [sys.executable, "-c", TRAIN, mode, str(out), json.dumps(MODEL)],
        capture_output=True, text=True, env=harness_env(), timeout=900,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    arrays = np.load(out)
    return json.loads(result.stdout.splitlines()[-1]), {n: arrays[n] for n in arrays.files}


@pytest.mark.slow  # compiling: -m slow
def test_compiled_mode_trains_batch_norms_as_eager_does_with_a_smaller_last_batch(tmp_path):
    (expected_losses, expected_eval), expected = _train("eager", tmp_path)
    (losses, evaluation), got = _train("compiled", tmp_path)
    assert losses == pytest.approx(expected_losses, rel=1e-4)
    assert evaluation == pytest.approx(expected_eval, rel=1e-4)
    assert got.keys() == expected.keys()
    assert any(name.endswith("moving_variance") for name in got)
    for name, array in expected.items():
        np.testing.assert_allclose(got[name], array, rtol=1e-4, atol=1e-5, err_msg=name)
