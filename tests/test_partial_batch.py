"""A smaller last batch trains as the task says in every mode: JAX eager and PyTorch compiled
pad it to the full size (padding weighs 0) so as not to compile a second program, and must
still take exactly the step PyTorch eager takes on the unpadded batch."""

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
from harness.testing.probes import Probe, probe_task, probe_weights

probe = Probe("partial", (6,), ({"kind": "dense", "units": 5, "activation": "relu"},
                                {"kind": "dense", "units": 3, "activation": "softmax"}))
task = probe_task(probe, loss="sparse_categorical_crossentropy", learning_rate=0.01, batch_size=8)
rng = np.random.default_rng(1)
x = rng.standard_normal((20, 6)).astype(np.float32)  # batches of 8, 8 and a last one of 4
y = rng.integers(0, 3, 20).astype(np.int64)
order = rng.permutation(20)
framework, mode, out = sys.argv[1:]
session = open_session(get_registry().framework(framework), device="cpu", threads=1, mode=mode)
trainer = session.build(task, probe_weights(task), x, y)
losses = [float(trainer.train_epoch(order)) for _ in range(2)]
weights = trainer.weights()
np.savez(out, **{f"{i}-{name}": a for i, layer in enumerate(weights) for name, a in layer.items()})
print(json.dumps(losses))
"""


def train(framework: str, mode: str, folder) -> tuple[list[float], dict[str, np.ndarray]]:
    out = folder / f"{framework}-{mode}.npz"
    result = subprocess.run(
        [sys.executable, "-c", TRAIN, framework, mode, str(out)],
        capture_output=True, text=True, env=harness_env(), timeout=600,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    arrays = np.load(out)
    return json.loads(result.stdout.splitlines()[-1]), {name: arrays[name] for name in arrays.files}


@pytest.mark.parametrize(("framework", "mode"), [("jax", "eager"), ("torch", "compiled")])
def test_a_padded_last_batch_takes_the_same_step_as_the_unpadded_one(framework, mode, tmp_path):
    expected_losses, expected_weights = train("torch", "eager", tmp_path)
    losses, weights = train(framework, mode, tmp_path)
    assert losses == pytest.approx(expected_losses, rel=1e-5)
    assert weights.keys() == expected_weights.keys()
    for name, expected in expected_weights.items():
        np.testing.assert_allclose(weights[name], expected, rtol=1e-5, atol=1e-6, err_msg=name)
