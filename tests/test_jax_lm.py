"""JAX trains a language model (a label at every step, plugin API 3) as the task says where the
conformance kit doesn't look: the loss is the mean over every step of every real sample (a
padded last batch's padding weighs 0 at every step), and evaluation averages over the tokens."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

from .conftest import harness_env

TRAIN = """
import json, sys
import jax.numpy as jnp
import numpy as np
from harness.api.adapter import open_session
from harness.registry.plugins import get_registry
from harness.testing.probes import PROBES, probe_inputs, probe_task, probe_weights
from harness.workload.reference import forward

probe = next(probe for probe in PROBES if probe.name == "small_gpt")
task = probe_task(probe, loss="sparse_categorical_crossentropy", learning_rate=0.01, batch_size=8)
x = probe_inputs(task, samples=20)  # batches of 8, 8 and a last one of 4
rng = np.random.default_rng(5)
y = rng.integers(0, 7, x.shape).astype(np.int64)  # the next token at every step
order = rng.permutation(20)
mode, out = sys.argv[1:]
session = open_session(get_registry().framework("jax"), device="cpu", threads=1, mode=mode)

def reference(weights, index):
    probabilities = forward(task.model, weights, x[index])
    picked = np.take_along_axis(probabilities, y[index][..., None], axis=-1)[..., 0]
    hits = probabilities.argmax(axis=-1) == y[index]
    return float(-np.log(picked).mean()), float(hits.mean())

result = {}
# one padded batch of 5 samples: its loss, before the step, is the mean over 5 x 6 tokens
trainer = session.build(task, probe_weights(task), x, y)
result["first_loss"] = float(trainer.train_epoch(order[:5]))
result["first_expected"] = reference(probe_weights(task), order[:5])[0]
# a whole epoch with a padded last batch, against the same steps on unpadded batches
trainer = session.build(task, probe_weights(task), x, y)
result["losses"] = [float(trainer.train_epoch(order))]
padded = trainer.weights()
evaluation = trainer.evaluate(x, y)
result["evaluation"] = [evaluation.loss, evaluation.accuracy]
result["evaluation_expected"] = list(reference(padded, np.arange(20)))
result["predict_shape"] = list(trainer.predict(x).shape)
trainer = session.build(task, probe_weights(task), x, y)
zero = jnp.zeros((), jnp.float32)
state = (trainer.params, trainer.batch_stats, trainer.opt_state, zero, jnp.zeros((), jnp.int32))
for start in range(0, 20, 8):  # the state numbers the steps
    index = order[start : start + 8]
    weight = np.ones(len(index), np.float32)
    state = trainer.train_step(state, x[index], y[index], weight)
trainer.params, trainer.batch_stats, trainer.opt_state = state[:3]
result["losses"].append(float(state[3]) / 3)
arrays = {f"padded-{i}-{k}": a for i, layer in enumerate(padded) for k, a in layer.items()}
arrays |= {
    f"unpadded-{i}-{k}": a for i, layer in enumerate(trainer.weights()) for k, a in layer.items()
}
np.savez(out, **arrays)
print(json.dumps(result))
"""


@pytest.mark.parametrize("mode", ["eager", "compiled"])
def test_a_language_model_trains_and_evaluates_over_every_step(mode, tmp_path):
    out = tmp_path / f"{mode}.npz"
    run = subprocess.run(
        [sys.executable, "-c", TRAIN, mode, str(out)],
        capture_output=True, text=True, env=harness_env(), timeout=600,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr[-3000:]
    result = json.loads(run.stdout.splitlines()[-1])
    assert result["first_loss"] == pytest.approx(result["first_expected"], rel=1e-5)
    padded, unpadded = result["losses"]
    assert padded == pytest.approx(unpadded, rel=1e-5)
    assert result["evaluation"] == pytest.approx(result["evaluation_expected"], rel=1e-5)
    assert result["predict_shape"] == [20, 6, 7]
    arrays = np.load(out)
    names = [name for name in arrays.files if name.startswith("padded-")]
    assert names
    for name in names:
        expected = arrays[name.replace("padded-", "unpadded-", 1)]
        np.testing.assert_allclose(arrays[name], expected, rtol=1e-5, atol=1e-6, err_msg=name)
