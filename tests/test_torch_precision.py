"""The PyTorch plugin's precisions (plugin API 4) and learning-rate schedule: a float32 cell's
products are IEEE float32 (no TF32, no bfloat16 shortcut) where bfloat16 and mixed cells round;
bfloat16 and mixed cells train in eager and compiled mode with their parameters and Adam's
moments in the dtype the precision says; and a warm-up + cosine schedule sets each update's
learning rate to the harness's reference, without recompiling the compiled step as it changes."""

from __future__ import annotations

import json
import math
import subprocess
import sys

import numpy as np
import pytest

from harness.testing.probes import Probe, probe_task
from harness.testing.reference_training import train
from harness.workload.tasks import WarmupCosine

from .conftest import harness_env

pytest.importorskip("torch")


def run_child(script: str, *args: str) -> dict:
    result = subprocess.run(
        [sys.executable, "-c", script, *args],
        capture_output=True, text=True, env=harness_env(), timeout=900,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(result.stdout.splitlines()[-1])


# 1 + 2**-11 needs 12 bits of mantissa: float32 squares it exactly, to 1 + 2**-10 + 2**-22;
# bfloat16 (8 bits) and TF32 (11 bits) round it to 1 first
EXACT = """
import json
import numpy as np
from harness.api.adapter import open_session
from harness.registry.plugins import get_registry
from harness.testing.probes import Probe, probe_task

task = probe_task(Probe("one_product", (1,), ({"kind": "dense", "units": 1},)))
value = np.float32(1 + 2**-11)
weights = [{"kernel": np.full((1, 1), value), "bias": np.zeros(1, np.float32)}]
x = np.full((1, 1), value)
found = {}
for precision in ("float32", "bfloat16", "mixed"):
    session = open_session(
        get_registry().framework("torch"), device="cpu", threads=1, mode="eager",
        precision=precision,
    )
    trainer = session.build(task, weights, x, np.zeros(1, np.float32))
    predicted = trainer.predict(x)
    found[precision] = {
        "manifest": session.runtime.precision,
        "output": float(predicted[0, 0]),
        "dtype": str(predicted.dtype),
    }
print(json.dumps(found))
"""


def test_a_float32_product_is_exact_and_the_bfloat16_ones_round():
    found = run_child(EXACT)
    manifest = found["float32"]["manifest"]
    assert manifest["tf32"] is False
    assert (manifest["parameters"], manifest["compute"]) == ("float32", "float32")
    assert manifest["autocast"] == "off"
    assert found["float32"]["output"] == 1 + 2**-10 + 2**-22
    for precision in ("bfloat16", "mixed"):
        assert found[precision]["dtype"] == "float32"
        assert found[precision]["output"] == 1.0, precision
        assert found[precision]["manifest"]["compute"] == "bfloat16"
    assert found["bfloat16"]["manifest"]["parameters"] == "bfloat16"
    assert found["mixed"]["manifest"]["parameters"] == "float32"
    assert found["mixed"]["manifest"]["autocast"] == "bfloat16"


TRAIN = """
import json, sys
import numpy as np
from harness.api.adapter import open_session
from harness.registry.plugins import get_registry
from harness.testing.probes import Probe, probe_task, probe_weights, probe_inputs

precision = sys.argv[1]
MODELS = {
    # 10 samples in batches of 4: compiled mode pads the last batch of 2
    "mlp": ({"kind": "dense", "units": 8, "activation": "relu"},
            {"kind": "dense", "units": 3, "activation": "softmax"}),
    # a batch norm: compiled mode runs the last batch as it is, and moving statistics to keep
    "batch_norm": ({"kind": "dense", "units": 6, "activation": "relu"},
                   {"kind": "batch_norm", "momentum": 0.8},
                   {"kind": "dense", "units": 3, "activation": "softmax"}),
}
rng = np.random.default_rng(5)
found = {}
for mode in ("eager", "compiled"):
    session = open_session(
        get_registry().framework("torch"), device="cpu", threads=1, mode=mode, precision=precision
    )
    for name, layers in MODELS.items():
        task = probe_task(Probe(name, (5,), layers), loss="sparse_categorical_crossentropy",
                          learning_rate=0.02, batch_size=4)
        x = probe_inputs(task, samples=10)
        y = np.random.default_rng(1).integers(0, 3, 10).astype(np.int64)
        trainer = session.build(task, probe_weights(task), x, y)
        losses = [
            trainer.train_epoch(np.random.default_rng(epoch).permutation(10)) for epoch in range(5)
        ]
        predicted = trainer.predict(x)
        state = [v for s in trainer.optimizer.state.values() for k, v in s.items() if k != "step"]
        found[f"{mode}-{name}"] = {
            "losses": losses,
            "loss": trainer.evaluate(x, y).loss,
            "predicted_dtype": str(predicted.dtype),
            "predicted_finite": bool(np.isfinite(predicted).all()),
            "parameters": sorted({str(p.dtype) for p in trainer.model.parameters()}),
            "adam": sorted({str(v.dtype) for v in state}),
            "buffers": sorted({str(b.dtype) for b in trainer.model.buffers()}),
            "weights": sorted({str(a.dtype) for layer in trainer.weights() for a in layer.values()}),
            "reported": session.runtime.settings["parameters_dtype_actual"],
        }
print(json.dumps(found))
"""


@pytest.mark.parametrize(
    ("precision", "parameters", "statistics"),
    [
        # module.to(torch.bfloat16) casts the batch norm's moving statistics with the rest
        ("bfloat16", "bfloat16", "bfloat16"),
        ("mixed", "float32", "float32"),
    ],
)
def test_bfloat16_and_mixed_train_in_eager_and_compiled_mode(precision, parameters, statistics):
    found = run_child(TRAIN, precision)
    for run, result in found.items():
        losses = result["losses"]
        assert all(math.isfinite(loss) for loss in losses), run
        assert losses[-1] < losses[0], run
        assert result["predicted_dtype"] == "float32" and result["predicted_finite"], run
        assert result["parameters"] == result["adam"] == [f"torch.{parameters}"], run
        assert result["reported"] == parameters, run
        assert result["weights"] == ["float32"], run
        if run.endswith("batch_norm"):
            assert result["buffers"] == [f"torch.{statistics}"], run
    for name in ("mlp", "batch_norm"):  # compiled trains the model eager trains
        eager, compiled = found[f"eager-{name}"], found[f"compiled-{name}"]
        assert compiled["loss"] == pytest.approx(eager["loss"], abs=0.05), name


SCHEDULE = """
import json, sys
import numpy as np
from torch._dynamo.utils import counters
from harness.api.adapter import open_session
from harness.registry.plugins import get_registry
from harness.testing.probes import Probe, probe_task, probe_weights, probe_inputs
from harness.workload.tasks import WarmupCosine

mode = sys.argv[1]
task = probe_task(Probe("regressor", (3,), ({"kind": "dense", "units": 1},)),
                  learning_rate=0.05, batch_size=4)
schedule = WarmupCosine(kind="warmup_cosine", warmup_steps=3, final_fraction=0.1)
task = task.model_copy(
    update={"training": task.training.model_copy(update={"epochs": 3, "schedule": schedule})}
)
x = probe_inputs(task, samples=10)  # batches of 4, 4 and 2: three updates an epoch
y = np.random.default_rng(1).standard_normal(10).astype(np.float32)
weights = probe_weights(task)
session = open_session(get_registry().framework("torch"), device="cpu", threads=1, mode=mode)
trainer = session.build(task, weights, x, y)
batches, rates, graphs = [], [], []
for epoch in range(task.training.epochs):
    order = np.random.default_rng(epoch).permutation(10)
    for start in range(0, 10, 4):  # one batch at a time, to read each update's rate
        batch = order[start : start + 4]
        trainer.train_epoch(batch)
        batches.append(batch.tolist())
        rates.append(float(trainer.optimizer.param_groups[0]["lr"]))
        graphs.append(counters["stats"]["unique_graphs"])
print(json.dumps({
    "x": x.tolist(), "y": y.tolist(), "batches": batches, "rates": rates, "graphs": graphs,
    "initial": {name: a.tolist() for name, a in weights[0].items()},
    "trained": {name: a.tolist() for name, a in trainer.weights()[0].items()},
}))
"""


def adam_regressor(initial, x, y, batches, rates, adam):
    """A linear regressor's weights after the kit's numpy Adam, update ``i`` at ``rates[i]``."""
    initial = [{name: np.array(value, np.float64) for name, value in initial.items()}]
    batches = [np.asarray(batch) for batch in batches]
    return train("regressor", initial, x, y, batches, adam, list(rates))[1][0]


@pytest.mark.parametrize("mode", ["eager", "compiled"])
def test_each_update_takes_the_schedules_learning_rate(mode):
    found = run_child(SCHEDULE, mode)
    regressor = Probe("regressor", (3,), ({"kind": "dense", "units": 1},))
    task = probe_task(regressor, learning_rate=0.05)
    schedule = WarmupCosine(kind="warmup_cosine", warmup_steps=3, final_fraction=0.1)
    training = task.training.model_copy(update={"epochs": 3, "schedule": schedule})
    assert training.total_steps(10) == 9  # the last batch of 2 is an update of each epoch
    expected = [training.learning_rate(step, 10) for step in range(9)]
    assert found["rates"] == expected  # exactly: the reference's floats

    adam = training.optimizer
    x, y = np.array(found["x"], np.float64), np.array(found["y"], np.float64)
    arguments = (found["initial"], x, y, found["batches"])
    scheduled = adam_regressor(*arguments, expected, adam)
    constant = adam_regressor(*arguments, [0.05] * 9, adam)
    for name, trained in found["trained"].items():
        np.testing.assert_allclose(trained, scheduled[name], rtol=1e-5, atol=1e-6, err_msg=name)
        # so that the comparison above could fail: the schedule moves the weights elsewhere
        assert np.abs(scheduled[name] - constant[name]).max() > 1e-3, name
    if mode == "compiled":
        # the learning rate is an input of the compiled step, not a constant it is
        # recompiled for: nothing compiles after the first update
        assert found["graphs"][0] > 0
        assert found["graphs"] == [found["graphs"][0]] * 9
