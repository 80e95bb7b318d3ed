"""Precision (plugin API 4) and the learning-rate schedule through the Keras-using plugins.

``float32`` computes a dense product exactly in float32 and ``bfloat16`` / ``mixed`` round it to
bfloat16; each reduced precision trains, keeping its variables in the dtype it says, with
float32 outputs; and a warm-up + cosine schedule gives every update the reference's learning
rate. Keras's dtype policy is global and fixed at its first import of a backend, so each
framework, mode and precision runs in a child process of its own; each child reports all its
checks at once.
"""

from __future__ import annotations

import functools
import json

import numpy as np
import pytest

from harness.api.adapter import availability_of
from harness.registry.plugins import get_registry
from harness.testing.probes import Probe, probe_inputs, probe_task, probe_weights
from harness.testing.reference_training import train
from harness.workload.precision import parameter_dtype
from harness.workload.tasks import Task, WarmupCosine
from tests.test_keras_support import run_python

#: 1 + 2**-11 needs 12 significant bits: float32 keeps it, bfloat16 (8 bits) rounds it to 1
ONE_PLUS = 1 + 2**-11
#: its square in float32 (exact: 23 bits hold it); bfloat16 gives 1
SQUARE = 1 + 2**-10 + 2**-22

LINEAR = Probe("linear", (1,), ({"kind": "dense", "units": 1},))
CLASSIFIER = Probe(
    "classifier",
    (5,),
    (
        {"kind": "dense", "units": 8, "activation": "relu"},
        {"kind": "dense", "units": 3, "activation": "softmax"},
    ),
)
REGRESSOR = Probe("regressor", (3,), ({"kind": "dense", "units": 1},))
#: the schedule's run: 10 samples in batches of 4 (4, 4, 2), 3 epochs: 9 updates, 3 of warm-up
SAMPLES, BATCH, EPOCHS = 10, 4, 3
SCHEDULE = WarmupCosine(kind="warmup_cosine", warmup_steps=3, final_fraction=0.1)

CHILD = """
    import json, os
    import numpy as np
    from harness.api.adapter import build_trainer, open_session
    from harness.registry.plugins import get_registry
    from harness.testing.probes import probe_task, probe_weights
    from tests.test_keras_precision import (
        CLASSIFIER, LINEAR, ONE_PLUS, classifier_data, regression_data, scheduled_task,
    )

    framework, mode, precision = (os.environ[f"PRECISION_{n}"] for n in ("FW", "MODE", "PREC"))
    adapter = get_registry().framework(framework)
    session = open_session(adapter, device="cpu", threads=1, mode=mode, precision=precision)
    report = {"manifest": session.runtime.precision}

    # one product: the kernel times the input, each 1 + 2**-11
    task = probe_task(LINEAR, batch_size=1)
    weights = [{"kernel": np.full((1, 1), ONE_PLUS, np.float32), "bias": np.zeros(1, np.float32)}]
    x = np.full((1, 1), ONE_PLUS, np.float32)
    product = build_trainer(adapter, session, task, weights, x, np.zeros(1, np.float32)).predict(x)
    report["product"] = [str(product.dtype), float(product[0, 0])]

    # a small classifier trains
    task = probe_task(CLASSIFIER, loss="sparse_categorical_crossentropy", learning_rate=0.01)
    x, y = classifier_data(task)
    trainer = build_trainer(adapter, session, task, probe_weights(task), x, y)
    rng = np.random.default_rng(1)
    report["losses"] = [float(trainer.train_epoch(rng.permutation(len(x)))) for _ in range(10)]
    report["predicted"] = str(trainer.predict(x).dtype)
    report["weights"] = sorted({str(a.dtype) for layer in trainer.weights() for a in layer.values()})
    model = trainer.model
    report["output"] = str(model.outputs[0].dtype)
    report["variables"] = sorted({str(v.dtype) for v in model.trainable_weights})
    slots = model.optimizer.momentums + model.optimizer.velocities
    report["slots"] = sorted({str(v.dtype) for v in slots})

    # the schedule, in float32: the weights after every update, to compare with the reference
    if precision == "float32":
        task = scheduled_task()
        x, y, orders = regression_data()
        trainer = build_trainer(adapter, session, task, probe_weights(task), x, y)
        for order in orders:
            trainer.train_epoch(order)
        report["scheduled"] = [{k: v.tolist() for k, v in l.items()} for l in trainer.weights()]
        report["iterations"] = int(trainer.model.optimizer.iterations)
    print("REPORT " + json.dumps(report))
"""

CELLS = [
    (framework, mode, precision)
    for framework, mode in (
        ("tensorflow", "eager"),
        ("tensorflow", "compiled"),
        ("keras_jax", "eager"),
        ("keras_torch", "eager"),
    )
    for precision in ("float32", "bfloat16", "mixed")
]


def classifier_data(task: Task) -> tuple[np.ndarray, np.ndarray]:
    x = probe_inputs(task, samples=16)
    return x, (x[:, 0] > 0).astype(np.int64) + (x[:, 1] > 0)


def regression_data() -> tuple[np.ndarray, np.ndarray, list[np.ndarray]]:
    rng = np.random.default_rng(5)
    x = rng.standard_normal((SAMPLES, *REGRESSOR.input_shape)).astype(np.float32)
    y = (x @ np.array([1.5, -2.0, 0.5]) + 0.3).astype(np.float32)
    return x, y, [rng.permutation(SAMPLES) for _ in range(EPOCHS)]


def scheduled_task() -> Task:
    task = probe_task(REGRESSOR, learning_rate=0.05, batch_size=BATCH)
    training = task.training.model_copy(update={"epochs": EPOCHS, "schedule": SCHEDULE})
    return task.model_copy(update={"training": training})


@functools.cache
def child_report(framework: str, mode: str, precision: str) -> dict:
    availability = availability_of(get_registry().framework(framework))
    if not availability.available:
        pytest.skip(availability.reason)
    child = run_python(CHILD, PRECISION_FW=framework, PRECISION_MODE=mode, PRECISION_PREC=precision)
    assert child.returncode == 0, child.stderr[-3000:]
    [line] = [line for line in child.stdout.splitlines() if line.startswith("REPORT ")]
    return json.loads(line.removeprefix("REPORT "))


@pytest.mark.parametrize(("framework", "mode", "precision"), CELLS)
def test_float32_products_are_exact_and_bfloat16_ones_are_rounded(framework, mode, precision):
    report = child_report(framework, mode, precision)
    manifest = report["manifest"]
    assert manifest["precision"] == precision
    assert manifest["tf32"] is False
    dtype, product = report["product"]
    assert dtype == "float32"
    if precision == "float32":
        assert manifest["compute"] == "float32"
        assert manifest["keras_dtype_policy"] == "float32"
        assert product == SQUARE
    else:
        assert manifest["compute"] == "bfloat16"
        assert (
            manifest["keras_dtype_policy"]
            == {"bfloat16": "bfloat16", "mixed": "mixed_bfloat16"}[precision]
        )
        assert product == 1.0  # both factors rounded to 1 before the product


@pytest.mark.parametrize(("framework", "mode", "precision"), CELLS)
def test_each_precision_trains_with_its_variables_in_the_dtype_it_says(framework, mode, precision):
    report = child_report(framework, mode, precision)
    losses = report["losses"]
    assert np.isfinite(losses).all()
    assert losses[-1] < 0.75 * losses[0], losses
    # the loss is computed on a float32 output; what the harness reads back is float32
    assert report["output"] == "float32"
    assert report["predicted"] == "float32"
    assert report["weights"] == ["float32"]
    # variables and Adam's moments: bfloat16 for bfloat16, float32 for mixed and float32
    assert report["variables"] == [parameter_dtype(precision)]
    assert report["slots"] == [parameter_dtype(precision)]


def reference_adam(task: Task, x, y, orders) -> list[dict[str, np.ndarray]]:
    """The regressor trained in float64 by the kit's numpy Adam, update ``s`` at
    ``task.training.learning_rate(s, len(x))``."""
    training = task.training
    size = training.batch_size
    batches = [order[i : i + size] for order in orders for i in range(0, len(order), size)]
    rates = [training.learning_rate(step, len(x)) for step in range(len(batches))]
    initial = probe_weights(task)
    return train("regressor", initial, x, y, batches, training.optimizer, rates)[1]


@pytest.mark.parametrize(
    ("framework", "mode"), sorted({(f, m) for f, m, p in CELLS if p == "float32"})
)
def test_every_update_takes_the_schedules_learning_rate(framework, mode):
    report = child_report(framework, mode, "float32")
    task = scheduled_task()
    x, y, orders = regression_data()
    assert report["iterations"] == task.training.total_steps(SAMPLES) == 9
    expected = reference_adam(task, x.astype(np.float64), y.astype(np.float64), orders)[0]
    # the task's constant learning rate: how far off a schedule that is ignored lands
    constant = task.model_copy(
        update={"training": task.training.model_copy(update={"schedule": None})}
    )
    unscheduled = reference_adam(constant, x.astype(np.float64), y.astype(np.float64), orders)[0]
    # float32's rounding, which Adam's m / sqrt(v) magnifies while the gradient is small, keeps
    # the weights within about 2e-6 of the float64 reference
    for name, value in report["scheduled"][0].items():
        assert np.asarray(value) == pytest.approx(expected[name], abs=1e-5), name
        assert np.abs(unscheduled[name] - expected[name]).max() > 1e-3
