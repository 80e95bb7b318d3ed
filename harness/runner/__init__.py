"""The runner: every cell (task × framework × device × repeat) in its own child process.

Results are appended to the run folder as each cell finishes. A cell that crashes, hangs or
raises is a ``failed`` row with its reason, a framework that isn't installed a ``skipped`` row
saying how to install it, and the run goes on either way.
"""

from __future__ import annotations

import signal
import socket
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

from harness.api.adapter import availability_of
from harness.paths import safe_name, write_new
from harness.registry.plugins import Registry
from harness.runner.child_spec import ChildSpec
from harness.runner.environments import (
    EnvironmentBuildError,
    IndexOptions,
    ensure_environment,
    environment_name,
)
from harness.runner.process import ChildOutcome, EventHandler, Limits, run_child
from harness.signals import Terminated
from harness.store.results import RunDir
from harness.workload.tasks import Task
from harness.workload.variants import Values, Variant, variant_name

DEVICE_CHOICES = ("cpu", "gpu", "auto")


#: carries out a cell spec and reports back: :func:`run_child` or the inline launcher
class Launcher(Protocol):
    """Runs one child's spec to its end and says what came of it: :func:`run_child` (a
    process of its own) or :func:`harness.runner.inline.run_inline` (this process, for pdb)."""

    def __call__(
        self,
        spec: ChildSpec,
        *,
        threads: int,
        limits: Limits,
        log_path: Path,
        on_event: EventHandler | None = None,
        gpu: bool = False,
        python: str | None = None,
    ) -> ChildOutcome: ...


@dataclass(frozen=True)
class Cell:
    """One unit of work: a task trained by one framework on one device, once."""

    task: Task
    framework: str
    device: str
    repeat: int = 0
    mode: str = "eager"
    #: ``float32``, ``bfloat16`` or ``mixed`` (harness.workload.precision)
    precision: str = "float32"
    #: the ``--vary`` values that made ``task`` (empty when nothing was varied)
    variant: Values = ()
    #: the ``--with`` requirements of the environment it runs in (harness.runner.environments);
    #: empty for harness's own environment
    environment: tuple[str, ...] = ()

    @property
    def task_name(self) -> str:
        """``mnist_mlp``, or a variant's ``mnist_mlp[batch_size=256]``."""
        return variant_name(self.task.name, dict(self.variant))

    @property
    def id(self) -> str:
        # float32 and harness's own environment unnamed, so the ids of earlier runs stay the same
        precision = "" if self.precision == "float32" else f"-{self.precision}"
        framework = self.framework + (f"[{self.environment_name}]" if self.environment else "")
        return f"{self.task_name}-{framework}-{self.mode}{precision}-{self.device}-r{self.repeat}"

    @property
    def environment_name(self) -> str:
        """``jax==0.9.2``: the requirements of the cell's environment; ``""`` for harness's own."""
        return environment_name(self.environment)

    @property
    def file_stem(self) -> str:
        """The id made safe as a file name (a plugin's name can't reach outside the run folder)."""
        return safe_name(self.id)


@dataclass(frozen=True)
class RunSettings:
    """What is the same for every cell of a run."""

    threads: int
    timeout: float
    data_paths: dict[str, str]
    #: peak resident memory a cell may use, in bytes; ``None`` for no limit
    memory_limit: int | None = None
    #: train on only the first N training samples (smoke runs); ``None`` for all of them
    train_subset: int | None = None
    #: pin each cell's process to ``threads`` cores; off where cells share a node they don't
    #: own (the Ray executor), since every cell would pin to the same first cores
    pin_cores: bool = True
    #: where per-cell environments get their packages (``--index-url``, ``--find-links``)
    index: IndexOptions = IndexOptions()


class Observer(Protocol):
    """Told what happens during a run (the CLI draws progress bars from it)."""

    def cell_started(self, cell: Cell) -> None: ...

    def cell_event(self, cell: Cell, event: dict[str, Any]) -> None: ...

    def cell_finished(self, cell: Cell, row: dict[str, Any]) -> None: ...


def plan(
    task: Task,
    frameworks: Iterable[str],
    device: str,
    repeats: int = 1,
    modes: Iterable[str] = ("eager",),
    variants: Sequence[Variant] | None = None,
    precisions: Iterable[str] = ("float32",),
    environments: Sequence[tuple[str, ...]] = ((),),
) -> list[Cell]:
    """The cells of a run, in the order they execute.

    Repeats are the outer loop, so a slow drift of the machine (heat, other load) spreads over
    every framework and mode instead of landing on one; a sweep's variants come next, so every
    repeat covers the whole sweep.

    :param variants: a sweep's tasks (``--vary``); ``None`` runs ``task`` itself
    :param environments: the requirements of each environment every cell runs in (``--with``);
        ``()`` is harness's own
    """
    frameworks, modes, precisions = list(frameworks), list(modes), list(precisions)
    tasks = list(variants) if variants else [Variant(task, ())]
    return [
        Cell(variant.task, framework, device, repeat, mode, precision, variant.values, pins)
        for repeat in range(repeats)
        for variant in tasks
        for framework in frameworks
        for pins in environments
        for mode in modes
        for precision in precisions
    ]


def execute(
    cells: list[Cell],
    settings: RunSettings,
    run_dir: RunDir,
    registry: Registry,
    observer: Observer | None = None,
    *,
    launch: Launcher = run_child,
) -> list[dict[str, Any]]:
    """Run every cell, appending each result to ``run_dir`` as it finishes.

    :param launch: how a cell's work is carried out: :func:`run_child` (a process of its own),
        or :func:`harness.runner.inline.run_inline` (this process, for debugging)
    """
    rows = []
    for cell in cells:
        if observer:
            observer.cell_started(cell)
        row = run_cell(cell, settings, run_dir, registry, observer, launch=launch)
        run_dir.append_result(row)
        rows.append(row)
        if observer:
            observer.cell_finished(cell, row)
    return rows


def new_row(cell: Cell, settings: RunSettings, run_id: str, version: str | None) -> dict[str, Any]:
    """A cell's result row before it has run: ``skipped`` until the cell says otherwise."""
    return {
        "run_id": run_id,
        "cell_id": cell.id,
        "task": cell.task.name,
        "dataset": {
            "name": cell.task.dataset_info.name,
            "provider": cell.task.dataset_info.provider,
        },
        "variant": dict(cell.variant) or None,
        "framework": cell.framework,
        "environment": {"name": cell.environment_name, "requirements": list(cell.environment)},
        "framework_version": version,
        "mode": cell.mode,
        "precision": cell.precision,
        "device": cell.device,
        "device_name": None,
        "host": socket.gethostname(),
        "repeat": cell.repeat,
        "seed": cell.task.seed,
        "threads": settings.threads,
        "started_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "status": "skipped",
        "kind": "not_installed",
        "error": None,
        "met_target": None,
        "metrics": {},
        "settings": {},
    }


def cell_spec(cell: Cell, settings: RunSettings, **entry: Any) -> ChildSpec:
    """What a child needs to train ``cell``; ``entry`` (``entry=``, ``options=``) for a child
    that runs other code over the same cell (the profiled pass)."""
    return ChildSpec(
        task=cell.task.model_dump(mode="json"),
        framework=cell.framework,
        mode=cell.mode,
        precision=cell.precision,
        device=cell.device,
        threads=settings.threads,
        data_paths=settings.data_paths,
        train_subset=settings.train_subset,
        pin_cores=settings.pin_cores,
        **entry,
    )


def run_cell(
    cell: Cell,
    settings: RunSettings,
    run_dir: RunDir,
    registry: Registry,
    observer: Observer | None = None,
    *,
    launch: Launcher = run_child,
) -> dict[str, Any]:
    """Run one cell and return its result row (never raises for a failure of the cell).

    :raises KeyboardInterrupt: (:class:`~harness.signals.Terminated` for SIGTERM) when the
        cell's process was stopped from outside; the run stops as if it had been, and the
        cell, having no row, is run again by ``--resume``
    """
    adapter = registry.framework(cell.framework)
    row = new_row(cell, settings, run_dir.run_id, None if cell.environment else adapter.version())
    python = None
    if cell.environment:
        # the framework may be installed only there: the child checks it is available
        try:
            built = ensure_environment(cell.environment, settings.index)
        except EnvironmentBuildError as exc:
            row.update(status="failed", kind="environment", error=str(exc))
            return row
        python = str(built.python)
        row["environment"]["seconds_to_ready"] = round(built.seconds, 3)
    else:
        availability = availability_of(adapter)
        if not availability.available:
            row["error"] = availability.reason
            return row

    log_path = run_dir.logs / f"{cell.file_stem}.log"
    limits = Limits(timeout=settings.timeout, memory_bytes=settings.memory_limit)
    spec = cell_spec(cell, settings)
    outcome = launch(
        spec,
        threads=settings.threads,
        limits=limits,
        log_path=log_path,
        gpu=cell.device in ("gpu", "auto"),
        on_event=(lambda event: observer.cell_event(cell, event)) if observer else None,
        python=python,
    )
    if outcome.stopped_from_outside:
        # as if the run itself had been stopped: no row, so ``--resume`` runs the cell again
        raise Terminated() if outcome.returncode == -signal.SIGTERM else KeyboardInterrupt()
    row["log"] = str(log_path.relative_to(run_dir.path))
    _record_circumstances(row, outcome)
    failure = outcome.failure(limits, log_path)
    if failure is not None:
        _record_failure(row, failure, outcome, cell, run_dir)
    else:
        _record_result(row, outcome, cell)
    return row


def _record_circumstances(row: dict[str, Any], outcome: ChildOutcome) -> None:
    """What every cell that ran reports, failed or not: its time, the noise and energy around
    it, what it loaded, and its device and settings."""
    row["wall_seconds"] = outcome.wall_seconds
    if outcome.noise is not None:
        row["noise"] = outcome.noise
    if outcome.energy is not None:
        row["energy"] = outcome.energy
    if outcome.data_sha256 is not None:
        row["dataset"]["sha256"] = outcome.data_sha256
    runtime = next((e for e in outcome.events if e.get("event") == "runtime"), None)
    for source in (runtime, outcome.result):
        if source:
            row["device"] = source.get("device", row["device"])
            row["device_name"] = source.get("device_name", row["device_name"])
            row["framework_version"] = source.get("framework_version", row["framework_version"])
            if "packages" in source:
                row["environment"].update(
                    packages=source["packages"], lock_sha256=source["lock_sha256"]
                )
            row["settings"] = source.get("settings", row["settings"])
            if "precision_manifest" in source:
                row["precision_manifest"] = source["precision_manifest"]


def _record_failure(
    row: dict[str, Any],
    failure: tuple[str, str],
    outcome: ChildOutcome,
    cell: Cell,
    run_dir: RunDir,
) -> None:
    """A cell that crashed, timed out, ran out of memory or raised: its kind and reason, the
    traceback beside the log, and the epochs it finished."""
    row["status"] = "failed"
    row["kind"], row["error"] = failure
    if outcome.error is not None and outcome.error.get("traceback"):
        traceback_path = run_dir.logs / f"{cell.file_stem}.traceback.txt"
        write_new(traceback_path, outcome.error["traceback"])
        row["traceback"] = str(traceback_path.relative_to(run_dir.path))
    # keep what was measured before the failure
    epochs = [e for e in outcome.events if e.get("event") == "epoch"]
    if epochs:
        row["metrics"] = {"epoch_seconds": [e["seconds"] for e in epochs]}


def _record_result(row: dict[str, Any], outcome: ChildOutcome, cell: Cell) -> None:
    """What the cell reported, with what the runner measured from outside and the target's
    verdict. (Agreement verdicts and utilisation are joined in when rows are read, by
    :mod:`harness.analysis.annotate`: a check or calibration made later applies to this run too.)"""
    assert outcome.result is not None
    row["status"] = outcome.result["status"]
    row["kind"] = outcome.result.get("kind")
    row["error"] = outcome.result.get("error")
    row["metrics"] = outcome.result.get("metrics", {})
    if row["status"] != "ok":
        return
    metrics = row["metrics"]
    if row["device"] == "gpu":
        metrics["peak_device_memory_nvml_bytes"] = outcome.peak_gpu_bytes
    joules = (outcome.energy or {}).get("joules")
    if joules is not None:
        metrics["energy_joules"] = joules
        trained = metrics.get("train_samples", 0) * metrics.get("epochs", 0)
        metrics["joules_per_sample"] = joules / trained if trained else None
    target = cell.task.target
    quality = metrics.get(target.metric)
    row["met_target"] = target.met(quality)
    if not row["met_target"]:
        # finished, but not good enough: still `ok`, kept apart from "met its target"
        row["kind"] = "target_missed"
        row["error"] = (
            f"{target.metric} {target.describe(quality)}: target missed"
            if quality is not None
            else f"no {target.metric} was measured"
        )
