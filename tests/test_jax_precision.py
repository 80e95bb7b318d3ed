"""JAX computes in the precision a cell asks for (plugin API 4) and follows the task's learning-rate
schedule, each checked in a child process of its own, as a cell runs:

* ``float32`` products are exact to float32 and the manifest says so (no TF32, ``highest``);
  ``bfloat16`` and ``mixed`` products round their operands to bfloat16;
* ``bfloat16`` keeps parameters and Adam's moments in bfloat16, ``mixed`` keeps them in float32
  and computes in bfloat16, both training in either mode with float32 losses and predictions;
* every update's learning rate is the one ``Training.learning_rate`` gives, counted over every
  epoch, a padded last batch included.
"""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

from harness.testing.reference_training import train
from harness.workload.tasks import Adam

from .conftest import harness_env

SETUP = """
import json, sys
import jax
import numpy as np
from harness.api.adapter import open_session
from harness.registry.plugins import get_registry
from harness.testing.probes import Probe, probe_task, probe_weights

def session(precision, mode="eager"):
    adapter = get_registry().framework("jax")
    return open_session(adapter, device="cpu", threads=1, mode=mode, precision=precision)

def dtypes(tree):
    return sorted({str(leaf.dtype) for leaf in jax.tree_util.tree_leaves(tree)})
"""

PRODUCTS = (
    SETUP
    + """
# 1 + 2**-11 needs 11 bits of mantissa: float32 holds it and its square exactly, bfloat16 (8
# bits) rounds it to 1
near_one = np.float32(1 + 2**-11)
dense = probe_task(Probe("unit", (1,), ({"kind": "dense", "units": 1},)))
unit = [{"kernel": np.array([[near_one]], np.float32), "bias": np.zeros(1, np.float32)}]
# token ids above 256, which bfloat16 can't hold: the look-up must not round them
lookup = probe_task(Probe("ids", (2,), ({"kind": "embedding", "input_dim": 300, "output_dim": 1},)))
table = [{"embeddings": (np.arange(300) % 7).astype(np.float32)[:, None]}]  # exact in bfloat16
ids = np.array([[299, 257]], np.float32)
result = {}
for precision in ("float32", "bfloat16", "mixed"):
    cell = session(precision)
    x = np.array([[near_one]], np.float32)
    product = cell.build(dense, unit, x, np.zeros(1, np.float32)).predict(x)
    rows = cell.build(lookup, table, ids, np.zeros(1, np.float32)).predict(ids)
    result[precision] = {
        "manifest": cell.runtime.precision,
        "product": float(product[0, 0]),
        "product_dtype": str(product.dtype),
        "rows": rows.reshape(-1).tolist(),
    }
print(json.dumps(result))
"""
)


@pytest.fixture(scope="module")
def products():
    run = subprocess.run(
        [sys.executable, "-c", PRODUCTS],
        capture_output=True, text=True, env=harness_env(), timeout=600,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr[-3000:]
    return json.loads(run.stdout.splitlines()[-1])


def test_a_float32_cell_computes_its_products_exactly_in_float32(products):
    float32 = products["float32"]
    manifest = float32["manifest"]
    assert manifest["tf32"] is False
    assert manifest["compute"] == manifest["compute_dtype"] == "float32"
    assert manifest["parameters"] == manifest["parameter_dtype"] == "float32"
    assert manifest["jax_default_matmul_precision"] == "highest"
    assert float32["product"] == 1 + 2**-10 + 2**-22  # (1 + 2**-11)**2, not rounded
    assert float32["product_dtype"] == "float32"


@pytest.mark.parametrize("precision", ["bfloat16", "mixed"])
def test_reduced_precision_cells_round_their_operands_to_bfloat16(precision, products):
    cell = products[precision]
    assert cell["product"] != 1 + 2**-10 + 2**-22
    assert cell["product"] == 1.0  # both operands rounded to 1 before the product
    assert cell["product_dtype"] == "float32"  # predictions come back in float32
    manifest = cell["manifest"]
    assert manifest["compute"] == manifest["compute_dtype"] == "bfloat16"
    assert manifest["loss_dtype"] == manifest["batch_norm_statistics_dtype"] == "float32"
    kept = "bfloat16" if precision == "bfloat16" else "float32"
    assert manifest["parameters"] == manifest["parameter_dtype"] == kept
    assert manifest["optimizer_state_dtype"] == kept
    # the switches hold for every precision: what a mixed cell keeps float32 stays float32
    assert manifest["tf32"] is False and manifest["jax_default_matmul_precision"] == "highest"


@pytest.mark.parametrize("precision", ["float32", "bfloat16", "mixed"])
def test_token_ids_are_looked_up_exactly_in_every_precision(precision, products):
    assert products[precision]["rows"] == [299 % 7, 257 % 7]


TRAIN = (
    SETUP
    + """
precision = sys.argv[1]
# a convolution, a batch norm (its statistics stay float32) and a softmax classifier
task = probe_task(
    Probe("conv_bn", (5, 5, 1), ({"kind": "conv2d", "filters": 3, "kernel_size": 3, "padding": "same"},
                                 {"kind": "batch_norm", "activation": "relu"},
                                 {"kind": "max_pool2d", "pool_size": 2},
                                 {"kind": "flatten"},
                                 {"kind": "dense", "units": 3, "activation": "softmax"})),
    loss="sparse_categorical_crossentropy", learning_rate=0.01, batch_size=4,
)
rng = np.random.default_rng(7)
x = rng.standard_normal((10, 5, 5, 1)).astype(np.float32)  # batches of 4, 4 and a padded 2
y = rng.integers(0, 3, 10)
# recurrent layers step a state: it must be in the compute dtype too, or the steps promote
recurrent = probe_task(Probe("rnn", (4, 2), ({"kind": "lstm", "units": 3, "return_sequences": True},
                                             {"kind": "gru", "units": 3},
                                             {"kind": "dense", "units": 1})))
sequences = rng.standard_normal((3, 4, 2)).astype(np.float32)
result = {}
for mode in ("eager", "compiled"):
    cell = session(precision, mode)
    trainer = cell.build(task, probe_weights(task), x, y)
    losses = [trainer.train_epoch(np.random.default_rng(epoch).permutation(10)) for epoch in range(6)]
    rnn = cell.build(recurrent, probe_weights(recurrent), sequences, np.zeros(3, np.float32))
    result[mode] = {
        "losses": losses,
        "params": dtypes(trainer.params),
        "optimizer_state": dtypes(trainer.opt_state),
        "batch_stats": dtypes(trainer.batch_stats),
        "compute": str(jax.eval_shape(trainer.forward, trainer.variables(), x).dtype),
        "recurrent_compute": str(jax.eval_shape(rnn.forward, rnn.variables(), sequences).dtype),
        "predict": str(trainer.predict(x).dtype),
        "weights": dtypes([trainer.weights()]),
        "evaluation": trainer.evaluate(x, y).loss,
    }
print(json.dumps(result))
"""
)


@pytest.mark.parametrize("precision", ["bfloat16", "mixed"])
def test_reduced_precision_cells_train_in_both_modes(precision):
    run = subprocess.run(
        [sys.executable, "-c", TRAIN, precision],
        capture_output=True, text=True, env=harness_env(), timeout=600,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr[-3000:]
    result = json.loads(run.stdout.splitlines()[-1])
    kept = "bfloat16" if precision == "bfloat16" else "float32"
    for mode, cell in result.items():
        losses = cell["losses"]
        assert np.all(np.isfinite(losses)) and losses[-1] < 0.8 * losses[0], (mode, losses)
        assert np.isfinite(cell["evaluation"])
        assert cell["params"] == [kept], mode
        assert cell["optimizer_state"] == sorted(["int32", kept]), mode  # Adam: count, moments
        assert cell["batch_stats"] == ["float32"], mode
        assert cell["compute"] == cell["recurrent_compute"] == "bfloat16", mode
        assert cell["predict"] == "float32" and cell["weights"] == ["float32"], mode
    # the scanned epoch computes the eager steps' updates, in the same precision
    assert result["compiled"]["losses"] == pytest.approx(result["eager"]["losses"], rel=1e-2)


SCHEDULE = (
    SETUP
    + """
from harness.api import WarmupCosine

mode, out = sys.argv[1:]
task = probe_task(Probe("linear", (3,), ({"kind": "dense", "units": 1},)), learning_rate=0.01)
schedule = WarmupCosine(kind="warmup_cosine", warmup_steps=3, final_fraction=0.1)
training = task.training.model_copy(update={"epochs": 3, "schedule": schedule})
task = task.model_copy(update={"training": training})
rng = np.random.default_rng(11)
x = rng.standard_normal((10, 3)).astype(np.float32)  # batches of 4, 4 and a padded 2
y = rng.standard_normal(10).astype(np.float32)
orders = [rng.permutation(10) for _ in range(training.epochs)]
weights = probe_weights(task)
trainer = session("float32", mode).build(task, weights, x, y)
for order in orders:
    trainer.train_epoch(order)
# the reference's rate of each of the 3 x 3 updates
rates = [training.learning_rate(step, len(x)) for step in range(training.total_steps(len(x)))]
trained = trainer.weights()[0]
np.savez(out, x=x, y=y, orders=np.array(orders), rates=np.array(rates),
         kernel=weights[0]["kernel"], bias=weights[0]["bias"],
         trained_kernel=trained["kernel"], trained_bias=trained["bias"])
"""
)


def adam_with_rates(arrays):
    """The linear regressor trained in float64 by the kit's numpy Adam, update ``s`` at rate
    ``rates[s]``: the batches of each epoch's order in turn, the last one smaller."""
    initial = [{"kernel": arrays["kernel"], "bias": arrays["bias"]}]
    batches = [order[start : start + 4] for order in arrays["orders"] for start in range(0, 10, 4)]
    assert len(batches) == len(arrays["rates"]) == 9
    adam = Adam(name="adam", learning_rate=0.01)
    rates = [float(rate) for rate in arrays["rates"]]
    _, weights = train("regressor", initial, arrays["x"], arrays["y"], batches, adam, rates)
    return weights[0]


@pytest.mark.parametrize("mode", ["eager", "compiled"])
def test_every_update_uses_the_schedules_learning_rate(mode, tmp_path):
    out = tmp_path / f"{mode}.npz"
    run = subprocess.run(
        [sys.executable, "-c", SCHEDULE, mode, str(out)],
        capture_output=True, text=True, env=harness_env(), timeout=600,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr[-3000:]
    arrays = np.load(out)
    rates = arrays["rates"]
    # warm-up from base / 3 (not from 0, as optax's own schedule starts), then down the cosine
    assert rates[0] == pytest.approx(0.01 / 3) and rates[2] == pytest.approx(0.01)
    assert rates[3] == pytest.approx(0.01) and np.all(np.diff(rates[3:]) < 0)
    expected = adam_with_rates(arrays)
    for name in ("kernel", "bias"):
        np.testing.assert_allclose(arrays[f"trained_{name}"], expected[name], rtol=0, atol=2e-6)
