"""``harness run --profile``: one profiled pass per cell, after its timed repeats.

In a process of its own, like a timed cell, the pass builds the cell's model and trains three
short epochs of ``steps`` steps each: one to warm up (compilation happens there; an epoch of
the same length, so a scanned epoch's program is the one compiled), one timed by the harness's
clock alone, then one under the framework's profiler (the session's
:meth:`~harness.api.Session.profiler`), each step marked. It writes the trace (Chrome trace
event format) and sends each step's breakdown (:mod:`harness.measure.breakdown`) and the
profiler's cost: the profiled steps' median against the unprofiled ones'. Nothing of it
reaches the timing rows: those come from the cell's own processes, which never profile.
"""

from __future__ import annotations

import json
import socket
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from harness.api.adapter import StepClock
from harness.api.profiling import EPOCH_MARKER, STEP_MARKER, StepProfiler
from harness.errors import HarnessError
from harness.measure.breakdown import breakdown, summarise
from harness.paths import read_regular, safe_name

if TYPE_CHECKING:
    from harness.runner import Cell, Launcher, RunSettings
    from harness.runner.child_spec import ChildSpec
    from harness.runner.worker import Events
    from harness.store.results import RunDir

#: the steps of each of the pass's three epochs: warm-up, unprofiled, profiled
PROFILED_STEPS = 10

ENTRY = "harness.checks.profiling:run_profile"


class MarkingClock(StepClock):
    """A step clock that wants every step and marks each in the profiler's trace: the marker
    is entered before the trainer's own clock starts and left after it stops."""

    def __init__(self, profiler: StepProfiler) -> None:
        super().__init__(every=1)
        self.profiler = profiler
        self._open: Any = None

    def wants(self, step: int) -> bool:
        self.close()
        self._open = self.profiler.step(step)
        self._open.__enter__()
        return True

    def record(self, seconds: float) -> None:
        super().record(seconds)
        self.close()

    def close(self) -> None:
        if self._open is not None:
            self._open.__exit__(None, None, None)
            self._open = None


def cycled(order: np.ndarray, count: int) -> np.ndarray:
    """The first ``count`` indices of ``order`` repeated as often as needed (a small subset)."""
    return np.resize(order, count)


def run_profile(spec: ChildSpec, events: Events) -> None:
    """The profiled pass of one cell (see the module). ``spec.options``: ``trace_path`` (where
    the Chrome trace goes) and ``steps``."""
    from harness.registry.catalog import known_datasets
    from harness.runner import worker
    from harness.workload.fairness import batch_order
    from harness.workload.tasks import validate_task_data

    task = validate_task_data(spec.task or {}, "the cell's task", known_datasets())
    prepared = worker.prepare(spec, events)
    if prepared is None:
        return
    adapter, session, runtime_fields = prepared
    _, train, _ = worker.load_data(task, spec)
    if spec.train_subset:
        train = type(train)(train.x[: spec.train_subset], train.y[: spec.train_subset])
    try:
        trainer, _ = worker.build_checked(task, adapter, session, train, events, runtime_fields)
    except worker._Stop:
        return
    steps = int(spec.options.get("steps", PROFILED_STEPS))
    size = task.training.batch_size
    order = cycled(batch_order(task.seed, 0, len(train.x)), 3 * steps * size)
    warmup, unprofiled, profiled = np.split(order, 3)
    trainer.train_epoch(warmup)
    events.send("fit")  # the runner samples the machine's noise from here to the result
    plain = StepClock(every=1)
    began = time.perf_counter()
    trainer.train_epoch(unprofiled, clock=plain)
    plain_epoch = time.perf_counter() - began
    try:
        profiler = session.profiler(Path(tempfile.mkdtemp(prefix="profile-")))
    except NotImplementedError as exc:
        reason = str(exc) or f"{adapter.name} offers no profiler (Session.profiler)"
        events.send("result", status="skipped", kind="not_profiled", error=reason, **runtime_fields)
        return
    marking = MarkingClock(profiler)
    with profiler:
        with profiler.region(EPOCH_MARKER):
            began = time.perf_counter()
            trainer.train_epoch(profiled, clock=marking)
            epoch_seconds = time.perf_counter() - began
        marking.close()
    trace = profiler.events()
    metrics = profile_metrics(
        trace, profiler, (plain.samples, plain_epoch), (marking.samples, epoch_seconds), steps
    )
    write_trace(Path(spec.options["trace_path"]), trace, profiler.name)
    events.send("result", status="ok", kind=None, error=None, metrics=metrics, **runtime_fields)


def profile_metrics(
    trace: list[dict[str, Any]],
    profiler: StepProfiler,
    plain: tuple[list[float], float],
    profiled: tuple[list[float], float],
    steps: int,
) -> dict[str, Any]:
    """The breakdown of the marked steps, or of the marked epoch where the trainer timed no
    single step (a scanned epoch: its shares are the epoch's, its seconds per step the epoch's
    divided by its steps). ``plain`` and ``profiled``: each epoch's timed steps and its whole
    seconds."""
    (plain_steps, plain_epoch), (profiled_steps, profiled_epoch) = plain, profiled
    if profiled_steps:
        measured = {f"{STEP_MARKER} {n}": seconds for n, seconds in enumerate(profiled_steps)}
        per_region = 1
    else:
        measured, per_region = {EPOCH_MARKER: profiled_epoch}, steps
    regions = breakdown(trace, profiler.category, measured)
    summary = summarise(regions, steps_per_region=per_region)
    # the median timed step where the trainer timed its steps, else the epoch's mean step
    unprofiled = statistics.median(plain_steps) if plain_steps else plain_epoch / steps
    step = statistics.median(profiled_steps) if profiled_steps else profiled_epoch / steps
    return {
        "profiler": profiler.name,
        "marked": "steps" if profiled_steps else "epoch",
        "steps": steps,
        "unprofiled_step_seconds": unprofiled,
        "profiled_step_seconds": step,
        # how much the profiler slowed the steps it watched
        "profiler_slowdown": step / unprofiled if unprofiled > 0 else None,
        **summary,
    }


def write_trace(path: Path, trace: list[dict[str, Any]], profiler: str) -> None:
    """The trace as a Chrome trace event file, which Perfetto UI and ``chrome://tracing`` open."""
    path.parent.mkdir(parents=True, exist_ok=True)
    document = {
        "traceEvents": trace,
        "displayTimeUnit": "ms",
        "otherData": {"profiler": profiler, "markers": [STEP_MARKER + " N", EPOCH_MARKER]},
    }
    path.write_text(json.dumps(document))


# -- in the runner's process -------------------------------------------------------

PROFILES_FILE = "profiles.json"
MAX_PROFILES_BYTES = 16 * 2**20


def profile_id(cell: Cell) -> str:
    """The cell's id without its repeat: one profile stands for all of a cell's repeats."""
    return cell.id.removesuffix(f"-r{cell.repeat}")


def profile_cells(
    cells: list[Cell],
    settings: RunSettings,
    run_dir: RunDir,
    *,
    launch: Launcher | None = None,
    on_cell: Callable[[str], None] | None = None,
) -> list[dict[str, Any]]:
    """One profiled pass per distinct cell (repeats share one), each in a child process;
    writes ``profiles.json`` and the traces under ``profiles/``; returns the records."""
    from harness.runner.process import run_child

    records, seen = [], set()
    for cell in cells:
        name = profile_id(cell)
        if name in seen:
            continue
        seen.add(name)
        if on_cell:
            on_cell(name)
        records.append(profile_cell(cell, name, settings, run_dir, launch or run_child))
        run_dir.write_json(PROFILES_FILE, {"profiles": records})
    return records


def profile_cell(
    cell: Cell, name: str, settings: RunSettings, run_dir: RunDir, launch: Launcher
) -> dict[str, Any]:
    from harness.runner import cell_spec
    from harness.runner.environments import ensure_environment
    from harness.runner.process import Limits

    trace = Path("profiles") / f"{safe_name(name)}.trace.json"
    log_path = run_dir.logs / f"{safe_name(name)}.profile.log"
    spec = cell_spec(cell, settings, entry=ENTRY, options={"trace_path": str(run_dir.path / trace)})
    limits = Limits(timeout=settings.timeout, memory_bytes=settings.memory_limit)
    # in the cell's own --with environment (built already: the cell trained in it)
    python = (
        str(ensure_environment(cell.environment, settings.index).python)
        if cell.environment
        else None
    )
    outcome = launch(
        spec, threads=settings.threads, limits=limits, log_path=log_path,
        gpu=cell.device in ("gpu", "auto"), python=python,
    )  # fmt: skip
    record: dict[str, Any] = {
        "cell": name,
        "task": cell.task_name,
        "environment": cell.environment_name,
        # where it was profiled: with --executor ray, here, wherever the timed cells ran
        "host": socket.gethostname(),
        "framework": cell.framework,
        "mode": cell.mode,
        "precision": cell.precision,
        "device": cell.device,
        "status": "failed",
        "error": None,
        "trace": None,
        "noise": outcome.noise,
        "metrics": {},
    }
    failure = outcome.failure(limits, log_path)
    result = outcome.result or {}
    if failure is not None:
        record["error"] = failure[1]
    elif result.get("status") != "ok":
        record.update(status=result.get("status", "failed"), error=result.get("error"))
    else:
        record.update(status="ok", trace=str(trace), metrics=result.get("metrics", {}))
    return record


def read_profiles(run_dir: Path) -> list[dict[str, Any]]:
    """The run's profile records (``[]`` for a run made without ``--profile``).

    :raises HarnessError: for a file that is no profile record
    """
    path = run_dir / PROFILES_FILE
    if not path.exists():
        return []
    try:
        data = json.loads(read_regular(path, MAX_PROFILES_BYTES).decode("utf-8"))
    except (OSError, UnicodeDecodeError, ValueError, HarnessError) as exc:
        raise HarnessError(f"{path}: unreadable profiles ({exc})") from None
    profiles = data.get("profiles") if isinstance(data, dict) else None
    if not isinstance(profiles, list):
        raise HarnessError(f"{path}: not a harness profiles file (no list of profiles)")
    for number, record in enumerate(profiles, start=1):
        problem = _record_problem(record)
        if problem is not None:
            raise HarnessError(f"{path}: profile {number} is damaged: {problem}")
    return profiles


#: the text fields every profile record has
_TEXT_FIELDS = ("cell", "task", "framework", "mode", "precision", "device", "status")


def _record_problem(record: object) -> str | None:
    """What is wrong with a profile record as read back, or ``None``: every field a reader
    uses, with its type (a finished profile's figures finite numbers)."""
    if not isinstance(record, dict):
        return "not an object"
    for name in _TEXT_FIELDS:
        if not isinstance(record.get(name), str):
            return f"{name} is not text"
    metrics = record.get("metrics")
    if not isinstance(metrics, dict):
        return "metrics is not an object"
    if record["status"] != "ok":
        return None
    for name in ("shares", "seconds_per_step"):
        values = metrics.get(name)
        if not isinstance(values, dict) or not all(_finite(v) for v in values.values()):
            return f"metrics.{name} is not an object of numbers"
    if not _finite(metrics.get("measured_seconds_per_step")):
        return "metrics.measured_seconds_per_step is not a number"
    if not isinstance(record.get("trace"), str):
        return "trace is not text"
    return None


def _finite(value: object) -> bool:
    return (
        isinstance(value, int | float)
        and not isinstance(value, bool)
        and abs(value) < 1e18  # NaN and infinities fail this too
    )
