"""The child process of one cell: pin threads, load data, build, train, evaluate, report.

Started by :mod:`harness.runner.process` (see ``worker_command`` there), which has already made
it die with the runner; not meant to be run by hand. Reads the cell spec as JSON on stdin and
writes JSON events, one per line, to the file descriptor given by ``--events-fd``: ``runtime``
(what the adapter set up), ``epoch`` (after each epoch), then ``result`` or ``error``.
"""

from __future__ import annotations

import argparse
import importlib
import json
import math
import os
import resource
import sys
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any, Protocol

from harness.api.adapter import (
    Evaluation,
    Session,
    StepClock,
    UnsupportedSpec,
    availability_of,
    build_trainer,
    open_session,
)
from harness.data import datasets, series
from harness.measure.environment import package_lock
from harness.measure.training_log import TrainingLog
from harness.registry.catalog import known_datasets
from harness.registry.plugins import get_registry
from harness.runner.child_spec import TRAIN, ChildSpec
from harness.workload.fairness import batch_order, count_parameters, initial_weights
from harness.workload.flops import training_flops
from harness.workload.tasks import Task, validate_task_data


class Events(Protocol):
    """Where a child's code sends what happened: ``send("result", status="ok", ...)``."""

    def send(self, event: str, **fields: Any) -> None: ...


class _Events:
    """Events written as JSON lines to the runner's pipe."""

    def __init__(self, stream: IO[str]) -> None:
        self._stream = stream

    def send(self, event: str, **fields: Any) -> None:
        self._stream.write(json.dumps({"event": event, **fields}) + "\n")
        self._stream.flush()


def pin_threads(threads: int) -> list[int]:
    """Restrict this process to ``threads`` cores (Linux), so every framework gets as many."""
    if not hasattr(os, "sched_getaffinity"):
        return []
    cores = sorted(os.sched_getaffinity(0))
    if threads < len(cores):
        cores = cores[:threads]
        os.sched_setaffinity(0, cores)
    return cores


def _refusal(adapter: Any, spec: ChildSpec) -> tuple[str, str] | None:
    """``(kind, reason)`` of a skipped row when the framework can't run this cell at all."""
    availability = availability_of(adapter)
    if not availability.available:  # in a --with environment, only the child can tell
        return "not_installed", availability.reason
    if spec.mode not in adapter.modes:
        modes = ", ".join(adapter.modes)
        return "unsupported", f"{adapter.name} has no {spec.mode!r} mode (it has: {modes})"
    precisions = getattr(adapter, "precisions", ("float32",))
    if spec.precision not in precisions:
        return "unsupported", (
            f"{adapter.name} has no {spec.precision!r} precision (it has: {', '.join(precisions)})"
        )
    return None


def prepare(spec: ChildSpec, events: Events) -> tuple[Any, Session, dict[str, Any]] | None:
    """Pin threads, pick the device, set the adapter up for this cell: the adapter, its session
    and the runtime fields of the row; ``None`` when the cell can't run here."""
    cores: list[int] | str = pin_threads(spec.threads) if spec.pin_cores else "not pinned"
    adapter = get_registry().framework(spec.framework)
    refusal = _refusal(adapter, spec)
    if refusal is not None:
        events.send("result", status="skipped", kind=refusal[0], error=refusal[1])
        return None
    mode = spec.mode
    available = adapter.devices()
    device = spec.device
    if device == "auto":
        device = "gpu" if "gpu" in available else "cpu"
    if device not in available:
        events.send(
            "result",
            status="skipped",
            kind="no_device",
            device=device,
            error=f"no {device.upper()} visible to {adapter.name} (it sees: {', '.join(available)})",
        )
        return None
    session = open_session(
        adapter, device=device, threads=spec.threads, mode=mode, precision=spec.precision
    )
    runtime = session.runtime
    packages, lock_sha256 = package_lock()
    runtime_fields = {
        # read here, in the cell's own environment, which --with may have given other versions
        "framework_version": adapter.version(),
        "packages": packages,
        "lock_sha256": lock_sha256,
        "device": runtime.device,
        "device_name": runtime.device_name,
        # what the products computed in, as the framework reports it (an adapter older than
        # plugin API 4 reports nothing: its float32 cell says "not reported")
        "precision_manifest": dict(getattr(runtime, "precision", None) or {})
        or {"reported": False},
        "settings": {
            "mode": mode,
            **runtime.settings,
            "threads": spec.threads,
            "cpu_affinity": cores,
            # how idle OpenMP threads wait (PyTorch's pool): spinning ones collapse when
            # other processes take the cores (docs/measuring.md)
            "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY", "unset (spin, then sleep)"),
        },
    }
    events.send("runtime", **runtime_fields)
    return adapter, session, runtime_fields


def load_data(
    task: Task, spec: ChildSpec
) -> tuple[datasets.Split, datasets.Arrays, datasets.Arrays]:
    """The task's data, preprocessed and shaped for its model: the split, and its training
    part cut into the samples trained on and the held-out validation samples."""
    split = datasets.shaped_for(
        task,
        datasets.load(
            task.dataset_info,
            {role: Path(path) for role, path in spec.data_paths.items()},
            divide_by=task.preprocessing.divide_by,
            seed=task.seed,
        ),
    )
    train, validation = datasets.hold_out(split.train, task.training.validation_samples)
    wanted = task.dataset.train_samples
    if wanted is not None:  # the first N of those left after the hold-out
        train = datasets.Arrays(train.x[:wanted], train.y[:wanted])
    return split, train, validation


class _Stop(Exception):
    """A cell that ends early with a result already sent (skipped, mismatched, diverged)."""


def run_cell(spec: ChildSpec, events: Events) -> None:
    """One training cell: set up, load, build, fit, evaluate; sends its ``result`` event."""
    task = validate_task_data(spec.task or {}, "the cell's task", known_datasets())
    started = time.perf_counter()
    prepared = prepare(spec, events)
    if prepared is None:
        return
    adapter, session, runtime_fields = prepared
    timings = {"setup_seconds": time.perf_counter() - started}  # framework import included

    started = time.perf_counter()
    split, train, validation = load_data(task, spec)
    events.send("data", sha256=split.sha256)
    if spec.train_subset:
        train = datasets.Arrays(train.x[: spec.train_subset], train.y[: spec.train_subset])
    timings["data_seconds"] = time.perf_counter() - started

    try:
        started = time.perf_counter()
        trainer, parameters = build_checked(task, adapter, session, train, events, runtime_fields)
        timings["build_seconds"] = time.perf_counter() - started
        log, clock = fit(task, trainer, train, validation, events, runtime_fields)
    except _Stop:
        return

    started = time.perf_counter()
    evaluation = trainer.evaluate(split.test.x, split.test.y)
    timings["eval_seconds"] = time.perf_counter() - started
    metrics = {
        task.target.metric: quality(task, evaluation),
        "test_loss": float(evaluation.loss),
        **token_accuracy(task, evaluation),
        "parameters": parameters,
        **baselines(task, train, split.test),
        **log.metrics(len(train.x), clock.samples),
        "training_flops": training_flops(task, len(train.x)) * task.training.epochs,
        **timings,
        "startup_seconds": timings["setup_seconds"] + timings["build_seconds"],
        "train_samples": len(train.x),
        "validation_samples": len(validation.x),
        "test_samples": len(split.test.x),
        "epochs": task.training.epochs,
        "batch_size": task.training.batch_size,
        "peak_rss_bytes": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,
        "peak_device_memory_bytes": session.peak_device_memory_bytes(),
    }
    metrics["achieved_flops_per_second"] = (
        metrics["training_flops"] / metrics["fit_seconds"] if metrics["fit_seconds"] > 0 else None
    )
    # what build() resolved (e.g. Keras's jit_compile)
    runtime_fields["settings"].update(session.runtime.settings)
    events.send("result", status="ok", kind=None, error=None, metrics=metrics, **runtime_fields)


def build_checked(
    task: Task,
    adapter: Any,
    session: Session,
    train: datasets.Arrays,
    events: Events,
    runtime_fields: dict[str, Any],
) -> tuple[Any, int]:
    """The session's trainer for the task and the task's parameter count; a declined task or
    a model of another size is the cell's result (:class:`_Stop`)."""
    weights = initial_weights(task)
    try:
        trainer = build_trainer(adapter, session, task, weights, train.x, train.y)
    except UnsupportedSpec as exc:
        events.send(
            "result", status="skipped", kind="unsupported", error=f"unsupported: {exc}",
            **runtime_fields,
        )  # fmt: skip
        raise _Stop from None
    counted, expected = plugin_parameter_count(trainer), count_parameters(weights)
    if counted is not None and counted != expected:
        events.send(
            "result",
            status="failed",
            kind="parameter_mismatch",
            error=f"{adapter.name} built a model with {counted:,} trainable parameters; the task "
            f"has {expected:,}: the plugin does not build the model the task describes",
            **runtime_fields,
        )
        raise _Stop
    return trainer, expected


def fit(
    task: Task,
    trainer: Any,
    train: datasets.Arrays,
    validation: datasets.Arrays,
    events: Events,
    runtime_fields: dict[str, Any],
) -> tuple[TrainingLog, StepClock]:
    """Train every epoch, each timed, each followed by the validation split (not timed as
    training); a diverged loss is the cell's result (:class:`_Stop`)."""
    log = TrainingLog(target=task.target)
    clock = StepClock()
    events.send("fit")  # the runner watches the machine from here to the result
    for epoch in range(task.training.epochs):
        order = batch_order(task.seed, epoch, len(train.x))
        steps_before = len(clock.samples)
        started = time.perf_counter()
        loss = float(trainer.train_epoch(order, clock=clock))
        seconds = time.perf_counter() - started
        if epoch == 0:
            log.first_epoch_steps = len(clock.samples) - steps_before
        if not math.isfinite(loss):
            # stop at once: the remaining epochs would only burn time on NaNs
            log.add_epoch(seconds, loss, None, 0.0)
            events.send(
                "result",
                status="failed",
                kind="diverged",
                error=f"diverged: mean training loss of epoch {epoch + 1} is {loss}",
                metrics={
                    "epoch_seconds": log.epoch_seconds,
                    "train_losses": [str(v) for v in log.train_losses],
                },
                **runtime_fields,
            )
            raise _Stop
        score, eval_seconds = None, 0.0
        if len(validation.x):
            started = time.perf_counter()
            score = quality(task, trainer.evaluate(validation.x, validation.y))
            eval_seconds = time.perf_counter() - started
        log.add_epoch(seconds, loss, score, eval_seconds)
        events.send(
            "epoch",
            epoch=epoch + 1,
            seconds=seconds,
            train_loss=loss,
            **{f"validation_{task.target.validation_metric}": score},
        )
    return log, clock


def quality(task: Task, evaluation: Evaluation) -> float:
    """The figure the task's target is judged on: accuracy, or the loss (mean squared error)."""
    if task.target.metric == "test_accuracy":
        return float(evaluation.accuracy)  # type: ignore[arg-type]
    if task.target.metric == "test_bits_per_char":
        return float(evaluation.loss) / math.log(2)  # the mean loss per token, from nats
    return float(evaluation.loss)


def token_accuracy(task: Task, evaluation: Evaluation) -> dict[str, float]:
    """A language model's accuracy (the share of steps whose likeliest token is the next one),
    recorded beside its bits per character."""
    if task.target.metric != "test_bits_per_char" or evaluation.accuracy is None:
        return {}
    return {"test_accuracy": float(evaluation.accuracy)}


def plugin_parameter_count(trainer: Any) -> int | None:
    """The plugin's own parameter count, or ``None`` from a plugin that can't count."""
    counter = getattr(trainer, "parameter_count", None)
    return int(counter()) if counter is not None else None


def baselines(task: Task, train: datasets.Arrays, test: datasets.Arrays) -> dict[str, float]:
    """The classic forecasting baselines, computed by the harness (regression tasks only)."""
    if task.training.loss != "mean_squared_error":
        return {}
    return {
        "naive_forecast_mse": series.naive_forecast_mse(test.x, test.y),
        "linear_forecast_mse": series.linear_forecast_mse(train.x, train.y, test.x, test.y),
    }


def failure_kind(exc: BaseException) -> str:
    """The failure kind of an exception raised while a cell ran."""
    if isinstance(exc, ImportError):
        return "import_error"
    name, text = type(exc).__name__, str(exc)
    if (
        isinstance(exc, MemoryError)
        or "OutOfMemory" in name  # torch.cuda.OutOfMemoryError
        or "ResourceExhausted" in name  # tf.errors.ResourceExhaustedError
        or "RESOURCE_EXHAUSTED" in text  # XLA, as raised by JAX
        or "out of memory" in text.lower()
    ):
        return "oom"
    return "exception"


def entry_for(spec: ChildSpec) -> Callable[[ChildSpec, Events], None]:
    """The function that carries out ``spec``: a training cell, unless ``spec.entry`` names
    another (``"harness.checks.agreement:run_agreement"``). Each check owns its child code and
    hands its entry here, so the worker knows how to run an entry, not what each check does."""
    if spec.entry == TRAIN:
        return run_cell
    module, _, function = spec.entry.partition(":")
    if not module.startswith("harness.") or not function.isidentifier():
        raise ValueError(f"not an entry of harness: {spec.entry!r}")
    return getattr(importlib.import_module(module), function)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="harness cell worker")
    parser.add_argument("--events-fd", type=int, required=True)
    args = parser.parse_args(argv)
    events = _Events(os.fdopen(args.events_fd, "w", buffering=1))
    spec = ChildSpec.from_json(sys.stdin.read())
    try:
        entry_for(spec)(spec, events)
    except Exception as exc:
        report_exception(exc, events, sys.stderr)
        return 1
    return 0


def report_exception(exc: Exception, events: Any, log: IO[str]) -> None:
    """Log the traceback of the exception being handled and send it as the ``error`` event."""
    tb = traceback.format_exc()
    print(tb, file=log)
    message = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    events.send(
        "error",
        kind=failure_kind(exc),
        type=type(exc).__name__,
        message=message[:500],
        traceback=tb,
    )


if __name__ == "__main__":
    sys.exit(main())
