"""The conformance checks that need the framework: run in a child process, one per framework.

The kit's pytest tests (:mod:`harness.testing.suite`) start this through the runner's worker
(action ``conform``), so each framework is imported into a fresh process with the settings
a real cell gets, and a plugin that crashes the interpreter fails the checks instead of the
test session. The result is one JSON-able dict the tests then assert on.
"""

from __future__ import annotations

import math
import tempfile
import traceback
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from harness.api.adapter import Session, UnsupportedSpec
from harness.checks.agreement import max_relative_difference, weights_difference
from harness.testing import reference_training
from harness.testing.probes import (
    PROBES,
    Probe,
    expected_output,
    probe_inputs,
    probe_task,
    probe_weights,
)
from harness.workload.fairness import parameter_count
from harness.workload.tasks import BatchNorm, Dense, Loss, WarmupCosine, _Spec

#: the training probes: (reference kind, model, loss)
TRAINING_PROBES: tuple[tuple[str, Probe, Loss], ...] = (
    (
        "classifier",
        Probe(
            "training_classifier",
            (6,),
            (
                {"kind": "dense", "units": 5, "activation": "relu"},
                {"kind": "dense", "units": 3, "activation": "softmax"},
            ),
        ),
        "sparse_categorical_crossentropy",
    ),
    (
        "regressor",
        Probe("training_regressor", (4,), ({"kind": "dense", "units": 1},)),
        "mean_squared_error",
    ),
)
TRAINING_STEPS = 6
TRAINING_BATCH = 8

if TYPE_CHECKING:
    from harness.runner.child_spec import ChildSpec
    from harness.runner.worker import Events


def _error(exc: BaseException) -> dict[str, str]:
    return {
        "error_type": type(exc).__name__,
        "error": str(exc).strip().splitlines()[0][:300] if str(exc).strip() else "",
        "traceback": traceback.format_exc()[-3000:],
    }


def check_probe(session: Session, probe: Probe) -> dict[str, Any]:
    """Build one probe model, compare its output with the reference, count, round-trip weights."""
    task = probe_task(probe)
    weights = probe_weights(task)
    x = probe_inputs(task)
    expected = expected_output(task, weights, x)
    report: dict[str, Any] = {
        "expected_shape": list(expected.shape),
        "expected_parameters": parameter_count(task),
    }
    try:
        trainer = session.build(task, weights, x, np.zeros(len(x), np.float32))
    except UnsupportedSpec as exc:
        return report | {"status": "unsupported", "error": str(exc)}
    except Exception as exc:
        return report | {"status": "error", "stage": "build", **_error(exc)}
    for stage, run in (
        ("predict", lambda: _compare_output(trainer, x, expected)),
        ("parameter_count", lambda: {"parameters": int(trainer.parameter_count())}),
        # exactly the arrays given: a relative difference of 0 (layers, names, shapes checked)
        ("weights", lambda: {"weights_difference": weights_difference(weights, trainer.weights())}),
    ):
        try:
            report |= run()
        except Exception as exc:
            return report | {"status": "error", "stage": stage, **_error(exc)}
    return report | {"status": "ok"}


def _compare_output(trainer: Any, x: np.ndarray, expected: np.ndarray) -> dict[str, Any]:
    output = np.asarray(trainer.predict(x))
    result: dict[str, Any] = {"shape": list(output.shape), "dtype": str(output.dtype)}
    if output.shape == expected.shape:
        result["max_abs_difference"] = float(np.max(np.abs(output - expected)))
        result["output_difference"] = max_relative_difference(expected, output)
    return result


#: the schedule the kit trains with (plugin API 4): two warm-up steps, then a cosine to a tenth
SCHEDULE = WarmupCosine(kind="warmup_cosine", warmup_steps=2, final_fraction=0.1)


def check_training(
    session: Session, kind: str, probe: Probe, loss: Loss, schedule: WarmupCosine | None = None
) -> dict[str, Any]:
    """Train the probe one batch at a time next to the numpy reference; compare losses, weights
    and what ``train_epoch`` and ``evaluate`` return. With ``schedule``, every step's learning
    rate is the schedule's (:meth:`harness.workload.tasks.Training.learning_rate`)."""
    task = probe_task(probe, loss=loss, learning_rate=0.01, batch_size=TRAINING_BATCH)
    if schedule is not None:
        training = task.training.model_copy(update={"schedule": schedule})
        task = task.model_copy(update={"training": training})
    weights = probe_weights(task)
    rng = np.random.default_rng(5)
    samples = TRAINING_BATCH * TRAINING_STEPS
    x = rng.standard_normal((samples, *probe.input_shape)).astype(np.float32)
    if kind == "classifier":
        y = rng.integers(0, probe.layers[-1]["units"], samples).astype(np.int64)
    else:
        y = rng.standard_normal(samples).astype(np.float32)
    order = rng.permutation(samples)
    batches = [order[i * TRAINING_BATCH : (i + 1) * TRAINING_BATCH] for i in range(TRAINING_STEPS)]
    rates = [task.training.learning_rate(step, samples) for step in range(TRAINING_STEPS)]
    expected_losses, expected_weights = reference_training.train(
        kind, weights, x, y, batches, task.training.optimizer, rates
    )
    report: dict[str, Any] = {"expected_losses": expected_losses, "learning_rates": rates}
    try:
        trainer = session.build(task, weights, x, y)
        losses = []
        for batch in batches:
            value = trainer.train_epoch(batch)
            report["train_epoch_returns"] = type(value).__name__
            losses.append(float(value))
        report["losses"] = losses
        report["weights_difference"] = weights_difference(expected_weights, trainer.weights())
        evaluation = trainer.evaluate(x, y)
        report["evaluation"] = {
            "loss": float(evaluation.loss),
            "loss_finite": math.isfinite(float(evaluation.loss)),
            "accuracy": None if evaluation.accuracy is None else float(evaluation.accuracy),
        }
    except Exception as exc:
        return report | {"status": "error", **_error(exc)}
    return report | {"status": "ok"}


#: a batch norm first (so its input is the batch itself) with a momentum whose two
#: conventions differ: 0.9 of the old statistics kept (Keras's), or 0.1 (PyTorch's)
BATCH_NORM_PROBE = Probe(
    "batch_norm_statistics",
    (3,),
    ({"kind": "batch_norm", "momentum": 0.9}, {"kind": "dense", "units": 1}),
)


def check_batch_norm_statistics(session: Session) -> dict[str, Any]:
    """Train one batch and compare the batch norm's moving mean and variance with the task's
    update (:func:`harness.workload.reference.moving_statistics`): a framework's own momentum
    convention passed through unconverted, or an unbiased batch variance, shows here."""
    from harness.workload.reference import moving_statistics

    task = probe_task(BATCH_NORM_PROBE, batch_size=TRAINING_BATCH)
    weights = probe_weights(task)
    rng = np.random.default_rng(6)
    x = (rng.standard_normal((TRAINING_BATCH, 3)) * 2 + 1).astype(np.float32)
    y = rng.standard_normal(TRAINING_BATCH).astype(np.float32)
    layer = task.model.layers[0]
    assert isinstance(layer, BatchNorm)
    expected = moving_statistics(layer, weights[0], x)
    try:
        trainer = session.build(task, weights, x, y)
        trainer.train_epoch(np.arange(TRAINING_BATCH))
        got = trainer.weights()[0]
        differences = {
            name: max_relative_difference(expected[name], np.asarray(got[name]))
            for name in expected
        }
    except UnsupportedSpec as exc:
        return {"status": "unsupported", "error": str(exc)}
    except Exception as exc:
        return {"status": "error", **_error(exc)}
    return {"status": "ok", "differences": differences}


class FutureLayer(_Spec):
    """A layer kind no plugin knows."""

    kind: str = "future_layer"


def check_unknown_layer(session: Session) -> dict[str, Any]:
    """Build a model with a layer kind this harness version doesn't have (as a newer harness
    might send): the plugin must raise ``UnsupportedSpec``, not crash or build something else."""
    task = probe_task(Probe("unknown", (6,), ({"kind": "flatten"},)))
    future = FutureLayer()
    model = task.model.model_copy(update={"layers": [future, Dense(kind="dense", units=2)]})
    task = task.model_copy(update={"model": model})
    x = np.zeros((2, 6), np.float32)
    try:
        session.build(
            task,
            [{}, {"kernel": np.zeros((6, 2), np.float32), "bias": np.zeros(2, np.float32)}],
            x,
            np.zeros(2, np.float32),
        )
    except UnsupportedSpec as exc:
        return {"raised": "UnsupportedSpec", "message": str(exc)}
    except Exception as exc:
        return {"raised": type(exc).__name__, "message": str(exc)[:300]}
    return {"raised": None, "message": ""}


#: a product whose float32 result needs more bits than TF32 (10) or bfloat16 (7) keep:
#: (1 + 2**-11)**2 = 1 + 2**-10 + 2**-22 in float32; 1 where the factors are rounded first
FLOAT32_FACTOR = 1 + 2**-11
FLOAT32_PRODUCT = Probe("float32_product", (1,), ({"kind": "dense", "units": 1},))


def check_float32_products(session: Session) -> dict[str, Any]:
    """One dense product of a float32 cell, read back: exact in float32, or rounded (TF32 left
    on by the framework's default, or a reduced-precision policy)."""
    task = probe_task(FLOAT32_PRODUCT)
    weights = [
        {"kernel": np.full((1, 1), FLOAT32_FACTOR, np.float32), "bias": np.zeros(1, np.float32)}
    ]
    x = np.full((1, 1), FLOAT32_FACTOR, np.float32)
    expected = float(np.float32(FLOAT32_FACTOR) * np.float32(FLOAT32_FACTOR))
    try:
        trainer = session.build(task, weights, x, np.zeros(1, np.float32))
        got = float(np.asarray(trainer.predict(x)).reshape(-1)[0])
    except Exception as exc:
        return {"status": "error", **_error(exc)}
    return {"status": "ok", "output": got, "expected": expected, "exact": got == expected}


def check_profiler(session: Session) -> dict[str, Any]:
    """Three steps of the classifier probe under the session's profiler, each marked through
    the step clock as ``harness run --profile`` marks them; the trace's markers and the
    categories its events were given."""
    from harness.api.profiling import CATEGORIES, STEP_MARKER
    from harness.checks.profiling import MarkingClock
    from harness.measure.breakdown import breakdown

    _, probe, loss = TRAINING_PROBES[0]
    task = probe_task(probe, loss=loss, learning_rate=0.01, batch_size=TRAINING_BATCH)
    rng = np.random.default_rng(7)
    samples = TRAINING_BATCH * 5
    x = rng.standard_normal((samples, *probe.input_shape)).astype(np.float32)
    y = rng.integers(0, probe.layers[-1]["units"], samples).astype(np.int64)
    try:
        trainer = session.build(task, probe_weights(task), x, y)
        trainer.train_epoch(np.arange(2 * TRAINING_BATCH))  # compiled and allocated first
        try:
            profiler = session.profiler(Path(tempfile.mkdtemp(prefix="kit-profile-")))
        except NotImplementedError as exc:
            return {"status": "not_profiled", "reason": str(exc)}
        clock = MarkingClock(profiler)
        with profiler:
            trainer.train_epoch(np.arange(2 * TRAINING_BATCH, samples), clock=clock)
            clock.close()
        events = profiler.events()
    except Exception as exc:
        return {"status": "error", **_error(exc)}
    names = [str(e.get("name")) for e in events if e.get("ph") == "X"]
    categories = {profiler.category(e) for e in events if e.get("ph") == "X"} - {None}
    measured = {f"{STEP_MARKER} {n}": seconds for n, seconds in enumerate(clock.samples)}
    steps = breakdown(events, profiler.category, measured)
    return {
        "status": "ok",
        "timed": len(clock.samples),
        "markers": sorted(name for name in names if name.startswith(STEP_MARKER + " ")),
        "unknown_categories": sorted(str(c) for c in categories if c not in CATEGORIES),
        # the share of each marked step in which an operation ran: 0 if none was recognised
        "operation_shares": [
            1 - (step.parts["overhead"] + step.parts["unattributed"]) / step.seconds
            for step in steps
        ],
    }


def run_all(session: Session) -> dict[str, Any]:
    """Every check, each contained: one failing check never hides the others' results."""
    report: dict[str, Any] = {
        "probes": {probe.name: check_probe(session, probe) for probe in PROBES},
        "training": {
            kind: check_training(session, kind, probe, loss)
            for kind, probe, loss in TRAINING_PROBES
        },
        "schedule": check_training(session, *TRAINING_PROBES[0], schedule=SCHEDULE),
        "float32_products": check_float32_products(session),
        "unknown_layer": check_unknown_layer(session),
        "batch_norm_statistics": check_batch_norm_statistics(session),
        "profiler": check_profiler(session),
    }
    try:
        memory = session.peak_device_memory_bytes()
        report["memory"] = {"value": memory, "type": type(memory).__name__}
    except Exception as exc:
        report["memory"] = {"value": None, "type": "error", **_error(exc)}
    return report


# -- in the child process --------------------------------------------------------


def run_conformance(spec: ChildSpec, events: Events) -> None:
    """Run the conformance kit's framework-side checks (for ``harness.testing``)."""
    from harness.runner import worker

    adapter = worker.get_registry().framework(spec.framework)
    devices = adapter.devices()
    state_before = set(vars(adapter))
    prepared = worker.prepare(spec, events)
    if prepared is None:
        return
    report = {"devices": devices, "api_version": getattr(adapter, "api_version", 0)}
    report |= run_all(prepared[1])
    report["adapter_state_added"] = sorted(set(vars(adapter)) - state_before)
    events.send("result", status="ok", kind=None, error=None, metrics=report)
