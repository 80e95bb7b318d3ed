"""The child process of one cell: pin threads, load data, build, train, evaluate, report.

Started by :mod:`harness.runner.process`; not meant to be run by hand. Reads the cell spec as
JSON on stdin and writes JSON events, one per line, to the file descriptor given by
``--events-fd``: ``runtime`` (what the adapter set up), ``epoch`` (after each epoch), then
``result`` or ``error``.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import resource
import signal
import statistics
import sys
import time
import traceback
from pathlib import Path
from typing import IO, Any

from harness.adapter import UnsupportedSpec
from harness.data import datasets
from harness.fairness import batch_order, initial_weights
from harness.plugins import get_registry
from harness.tasks import Task


class _Events:
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


def run_cell(spec: dict[str, Any], events: _Events) -> None:
    cores = pin_threads(spec["threads"])
    task = Task.model_validate(spec["task"])
    adapter = get_registry().framework(spec["framework"])

    started = time.perf_counter()
    available = adapter.devices()
    device = spec["device"]
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
        return
    runtime = adapter.setup(device=device, threads=spec["threads"])
    setup_seconds = time.perf_counter() - started
    runtime_fields = {
        "device": runtime.device,
        "device_name": runtime.device_name,
        "settings": {**runtime.settings, "threads": spec["threads"], "cpu_affinity": cores},
    }
    events.send("runtime", **runtime_fields)

    started = time.perf_counter()
    split = datasets.load(
        task.dataset.name,
        {role: Path(path) for role, path in spec["data_paths"].items()},
        divide_by=task.preprocessing.divide_by,
    )
    x_train, y_train = split.train.x, split.train.y
    if spec.get("train_subset"):
        x_train, y_train = x_train[: spec["train_subset"]], y_train[: spec["train_subset"]]
    data_seconds = time.perf_counter() - started

    started = time.perf_counter()
    try:
        trainer = adapter.build(task, initial_weights(task), x_train, y_train)
    except UnsupportedSpec as exc:
        events.send(
            "result",
            status="skipped",
            kind="unsupported",
            error=f"unsupported: {exc}",
            **runtime_fields,
        )
        return
    build_seconds = time.perf_counter() - started

    epoch_seconds: list[float] = []
    train_losses: list[float] = []
    for epoch in range(task.training.epochs):
        order = batch_order(task.seed, epoch, len(x_train))
        started = time.perf_counter()
        loss = float(trainer.train_epoch(order))
        epoch_seconds.append(time.perf_counter() - started)
        train_losses.append(loss)
        if not math.isfinite(loss):
            # stop at once: the remaining epochs would only burn time on NaNs
            events.send(
                "result",
                status="failed",
                kind="diverged",
                error=f"diverged: mean training loss of epoch {epoch + 1} is {loss}",
                metrics={
                    "epoch_seconds": epoch_seconds,
                    "train_losses": [str(v) for v in train_losses],
                },
                **runtime_fields,
            )
            return
        events.send("epoch", epoch=epoch + 1, seconds=epoch_seconds[-1], train_loss=loss)

    started = time.perf_counter()
    evaluation = trainer.evaluate(split.test.x, split.test.y)
    eval_seconds = time.perf_counter() - started

    fit_seconds = sum(epoch_seconds)
    samples = len(x_train) * task.training.epochs
    steady = epoch_seconds[1:]
    metrics = {
        "test_accuracy": float(evaluation.accuracy),
        "test_loss": float(evaluation.loss),
        "train_loss": train_losses[-1],
        "train_losses": train_losses,
        "fit_seconds": fit_seconds,
        "epoch_seconds": epoch_seconds,
        # how much longer the first epoch took than a steady one: tracing, compilation, warm-up
        "first_epoch_extra_seconds": (
            epoch_seconds[0] - statistics.median(steady) if steady else None
        ),
        "samples_per_second": samples / fit_seconds if fit_seconds > 0 else None,
        "steady_samples_per_second": (len(x_train) / statistics.median(steady) if steady else None),
        "setup_seconds": setup_seconds,
        "data_seconds": data_seconds,
        "build_seconds": build_seconds,
        "eval_seconds": eval_seconds,
        "train_samples": len(x_train),
        "test_samples": len(split.test.x),
        "epochs": task.training.epochs,
        "peak_rss_bytes": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,
        "peak_device_memory_bytes": adapter.peak_device_memory_bytes(),
    }
    events.send("result", status="ok", kind=None, error=None, metrics=metrics, **runtime_fields)


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


def die_with_parent() -> None:
    """Ask Linux to kill this process if the runner dies, so no cell outlives its run."""
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        pr_set_pdeathsig = 1
        libc.prctl(pr_set_pdeathsig, signal.SIGKILL)
    except (OSError, AttributeError):  # not Linux: the runner's timeout still applies
        pass


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m harness.runner.worker")
    parser.add_argument("--events-fd", type=int, required=True)
    args = parser.parse_args(argv)
    die_with_parent()
    events = _Events(os.fdopen(args.events_fd, "w", buffering=1))
    spec = json.loads(sys.stdin.read())
    try:
        run_cell(spec, events)
    except Exception as exc:
        tb = traceback.format_exc()
        print(tb, file=sys.stderr)
        message = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        events.send(
            "error",
            kind=failure_kind(exc),
            type=type(exc).__name__,
            message=message[:500],
            traceback=tb,
        )
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
