"""JAX's batch norms train as the task says where the conformance kit doesn't look: a smaller
last batch padded to the full size (the padding must stay out of the batch statistics) and the
compiled mode (an epoch scanned as one program must carry the moving statistics along)."""

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
from harness.testing.probes import Probe, probe_task, probe_weights

probe = Probe("bn", (4, 3, 2), ({"kind": "batch_norm", "momentum": 0.9},
                                {"kind": "residual_block", "filters": 3, "momentum": 0.8},
                                {"kind": "global_avg_pool2d"}, {"kind": "dense", "units": 1}))
task = probe_task(probe, loss="mean_squared_error", learning_rate=0.01, batch_size=8)
rng = np.random.default_rng(3)
x = (rng.standard_normal((20, 4, 3, 2)) * 2 + 1).astype(np.float32)  # batches of 8, 8 and 4
y = rng.standard_normal(20).astype(np.float32)
order = rng.permutation(20)
mode, out = sys.argv[1:]
session = open_session(get_registry().framework("jax"), device="cpu", threads=1, mode=mode)
trainer = session.build(task, probe_weights(task), x, y)
arrays = {f"initial-0-{k}": a for k, a in probe_weights(task)[0].items()}
losses = [float(trainer.train_epoch(order))]
arrays |= {f"padded-0-{k}": a for k, a in trainer.weights()[0].items()}
arrays |= {f"padded-1-{k}": a for k, a in trainer.weights()[1].items()}
# the same steps on unpadded batches: the last one is a program of its own shape
trainer = session.build(task, probe_weights(task), x, y)
zero = jnp.zeros((), jnp.float32)
state = (trainer.params, trainer.batch_stats, trainer.opt_state, zero, jnp.zeros((), jnp.int32))
for start in range(0, 20, 8):  # the state numbers the steps
    index = order[start : start + 8]
    weight = np.ones(len(index), np.float32)
    state = trainer.train_step(state, x[index], y[index], weight)
trainer.params, trainer.batch_stats, trainer.opt_state = state[:3]
losses.append(float(state[3]) / 3)
arrays |= {f"unpadded-0-{k}": a for k, a in trainer.weights()[0].items()}
arrays |= {f"unpadded-1-{k}": a for k, a in trainer.weights()[1].items()}
np.savez(out, x=x, order=order, **arrays)
print(json.dumps(losses))
"""


def train(mode: str, folder) -> tuple[list[float], dict[str, np.ndarray]]:
    out = folder / f"{mode}.npz"
    result = subprocess.run(
        [sys.executable, "-c", TRAIN, mode, str(out)],
        capture_output=True, text=True, env=harness_env(), timeout=600,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    arrays = np.load(out)
    return json.loads(result.stdout.splitlines()[-1]), {name: arrays[name] for name in arrays.files}


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """Each mode's run, once for the module (a child process each)."""
    runs: dict[str, tuple[list[float], dict[str, np.ndarray]]] = {}

    def run(mode: str):
        if mode not in runs:
            runs[mode] = train(mode, tmp_path_factory.mktemp(mode))
        return runs[mode]

    return run


def moving_statistics(arrays: dict[str, np.ndarray], momentum: float) -> dict[str, np.ndarray]:
    """The task's update over each (unpadded) batch of 8 in turn, from the initial statistics
    (the probe draws them at random)."""
    x, order = arrays["x"], arrays["order"]
    mean = arrays["initial-0-moving_mean"].astype(np.float64)
    variance = arrays["initial-0-moving_variance"].astype(np.float64)
    for start in range(0, len(order), 8):
        batch = x[order[start : start + 8]].astype(np.float64)
        axes = tuple(range(batch.ndim - 1))
        mean = momentum * mean + (1 - momentum) * batch.mean(axis=axes)
        variance = momentum * variance + (1 - momentum) * batch.var(axis=axes)
    return {"moving_mean": mean, "moving_variance": variance}


@pytest.mark.parametrize("mode", ["eager", "compiled"])
def test_a_padded_last_batch_keeps_its_padding_out_of_the_batch_statistics(mode, trained):
    losses, arrays = trained(mode)
    expected = moving_statistics(arrays, 0.9)
    for name, value in expected.items():
        np.testing.assert_allclose(arrays[f"padded-0-{name}"], value, rtol=1e-5, err_msg=name)
    # the padded step is the unpadded one: every array, the residual block's statistics too
    assert losses[0] == pytest.approx(losses[1], rel=1e-5)
    padded = sorted(name for name in arrays if name.startswith("padded-"))
    assert any("bn2_moving_variance" in name for name in padded)
    for name in padded:
        other = arrays[name.replace("padded-", "unpadded-")]
        np.testing.assert_allclose(arrays[name], other, rtol=1e-5, atol=1e-6, err_msg=name)


def test_the_compiled_epoch_carries_the_moving_statistics_as_the_eager_steps_do(trained):
    eager_losses, eager = trained("eager")
    compiled_losses, compiled = trained("compiled")
    assert compiled_losses == pytest.approx(eager_losses, rel=1e-5)
    for name, value in eager.items():
        np.testing.assert_allclose(compiled[name], value, rtol=1e-5, atol=1e-6, err_msg=name)
