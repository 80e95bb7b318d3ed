"""The cross-framework agreement check: do the frameworks compute the same training run?

Every framework trains the task from the harness's initial weights on the harness's batches,
with dropout off (its masks are each framework's own random draws), one optimizer step at a
time on the CPU in float32, in its own child process. Each reports its training loss after
every step and its weights at the end, in the harness's layout. Every pair of frameworks is
then compared:

* **loss**: the largest relative difference ``|a - b| / max(|a|, |b|)`` of a step's loss;
* **weights**: the largest difference of any weight after the last step, relative to the
  largest magnitude in its array (:func:`max_relative_difference`).

A pair passes when both are within the task's ``[agreement]`` tolerances. Verdicts are cached
per machine, keyed by a digest of the task, so ``harness run`` can put the latest one on each
result row.

A framework that declines the task (its adapter raises ``UnsupportedSpec``) or isn't installed
trained nothing: it is reported, and left out of the pairs, the verdict and the cache, so it
never costs another framework its ``pass``. The check needs two frameworks that ran.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import tempfile
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import platformdirs

from harness.errors import HarnessError
from harness.paths import read_regular
from harness.store.locking import MAX_CACHE_BYTES, update_json_file
from harness.workload.fairness import parameter_count
from harness.workload.tasks import Task

#: what a row's ``agreement`` field says
PASS, FAIL = "pass", "fail"
#: a trace's status when the framework didn't train: it declined the task, or isn't installed
SKIPPED = "skipped"
#: the exact words of the error for fewer than two frameworks (the docs' catalogue quotes them)
TOO_FEW = "the agreement check needs at least two available frameworks"

if TYPE_CHECKING:
    from harness.runner.child_spec import ChildSpec
    from harness.runner.worker import Events


@dataclass
class Trace:
    """One framework's first steps: per-step losses, final weights, parameter count."""

    framework: str
    version: str | None
    #: ``ok``, ``failed`` (it tried and broke), or ``skipped`` (it didn't train: see ``kind``)
    status: str = "ok"
    error: str | None = None
    losses: list[float] = field(default_factory=list)
    parameters: int | None = None
    weights: list[dict[str, np.ndarray]] | None = None
    #: why it failed or was skipped, as in a result row: ``unsupported``, ``not_installed``, ...
    kind: str | None = None
    #: what it loaded (:attr:`harness.data.datasets.Split.sha256`)
    data_sha256: str | None = None

    @property
    def skipped(self) -> bool:
        """It trained nothing (declined the task, not installed, no CPU): there's no verdict."""
        return self.status == SKIPPED

    @property
    def declined(self) -> bool:
        """Its adapter raised ``UnsupportedSpec``: it can't express the task as written."""
        return self.skipped and self.kind == "unsupported"

    @property
    def note(self) -> str:
        """``declined: <reason>`` for a framework that declined the task; else its error."""
        if self.declined:
            return f"declined: {(self.error or '').removeprefix('unsupported: ')}"
        return self.error or ""

    @property
    def left_out(self) -> str:
        """``jax declined: <reason>`` or ``torch: torch is not installed: <hint>``."""
        return f"{self.framework}{' ' if self.declined else ': '}{self.note}"


def not_installed(framework: str, version: str | None, reason: str) -> Trace:
    """The trace of a framework that can't run here at all: it trains nothing, so skipped."""
    return Trace(framework, version, status=SKIPPED, error=reason, kind="not_installed")


@dataclass(frozen=True)
class PairVerdict:
    a: str
    b: str
    loss_difference: float
    #: the step (1-based) where the loss difference is largest
    loss_step: int
    weights_difference: float | None
    loss_rtol: float
    weights_rtol: float
    #: why the weights could not be compared (different layers, names or shapes)
    problem: str | None = None

    @property
    def passed(self) -> bool:
        weights_ok = self.weights_difference is None or self.weights_difference <= self.weights_rtol
        return self.loss_difference <= self.loss_rtol and weights_ok


@dataclass
class Check:
    task: Task
    steps: int
    traces: list[Trace]
    pairs: list[PairVerdict]
    #: the precision every framework trained in (harness.workload.precision)
    precision: str = "float32"

    @property
    def expected_parameters(self) -> int:
        return parameter_count(self.task)

    @property
    def parameters_agree(self) -> bool:
        counts = {trace.parameters for trace in self.traces if trace.status == "ok"}
        return counts <= {self.expected_parameters, None}

    @property
    def ran(self) -> list[Trace]:
        """The frameworks that tried the steps (and finished them or failed), in order."""
        return [trace for trace in self.traces if not trace.skipped]

    @property
    def data_sha256(self) -> str | None:
        """What the frameworks that trained loaded (the same data for every one)."""
        return next((t.data_sha256 for t in self.ran if t.data_sha256 is not None), None)

    @property
    def skipped(self) -> list[Trace]:
        """The frameworks that trained nothing: left out of every pair and of the verdict."""
        return [trace for trace in self.traces if trace.skipped]

    @property
    def failed_frameworks(self) -> list[Trace]:
        return [trace for trace in self.ran if trace.status != "ok"]

    @property
    def passed(self) -> bool:
        return (
            not self.failed_frameworks
            and self.parameters_agree
            and all(pair.passed for pair in self.pairs)
        )


def relative_loss_difference(a: list[float], b: list[float]) -> tuple[float, int]:
    """The largest ``|a - b| / max(|a|, |b|)`` over the steps both have, and its step (1-based)."""
    steps = min(len(a), len(b))
    if steps == 0:
        return float("inf"), 0
    x, y = np.asarray(a[:steps], np.float64), np.asarray(b[:steps], np.float64)
    scale = np.maximum(np.maximum(np.abs(x), np.abs(y)), np.finfo(np.float64).tiny)
    differences = np.abs(x - y) / scale
    differences[~np.isfinite(differences)] = np.inf
    worst = int(np.argmax(differences))
    return float(differences[worst]), worst + 1


def weights_difference(
    a: list[dict[str, np.ndarray]] | None,
    b: list[dict[str, np.ndarray]] | None,
    not_compared: Iterable[str] = (),
    *,
    layer_scale: bool = False,
) -> float | None:
    """The largest relative difference over every weight array; ``None`` if either is missing.

    :param not_compared: array names left out (in every layer): the task's
        ``agreement.weights_not_compared``.
    :param layer_scale: measure each array's difference against the largest magnitude in its
        layer rather than in itself (a bfloat16 or mixed check: a bias that starts at zero is,
        after a few steps, Adam's steps on gradients that bfloat16 rounds, as large as itself
        in every framework, while still small beside the layer's kernel)
    :raises ValueError: when the two don't hold the same layers, array names and shapes.
    """
    left_out = set(not_compared)
    if a is None or b is None:
        return None
    if len(a) != len(b):
        raise ValueError(f"{len(a)} and {len(b)} layers of weights")
    worst = 0.0
    for index, (layer_a, layer_b) in enumerate(zip(a, b, strict=True)):
        if layer_a.keys() != layer_b.keys():
            raise ValueError(f"layer {index} has arrays {sorted(layer_a)} and {sorted(layer_b)}")
        names = sorted(layer_a.keys() - left_out)
        scale = None
        if layer_scale and names:
            scale = max(float(np.max(np.abs(layer_a[name]), initial=0.0)) for name in names)
        for name in names:
            try:
                difference = max_relative_difference(layer_a[name], layer_b[name], scale)
            except ValueError as exc:
                raise ValueError(f"layer {index} {name}: {exc}") from None
            worst = max(worst, difference)
    return worst


def compare(a: Trace, b: Trace, task: Task, precision: str = "float32") -> PairVerdict:
    loss, step = relative_loss_difference(a.losses, b.losses)
    problem = None
    try:
        weights = weights_difference(
            a.weights,
            b.weights,
            task.agreement.weights_not_compared,
            layer_scale=precision != "float32",
        )
    except ValueError as exc:  # a plugin returned weights in another layout: a failed pair
        weights, problem = float("inf"), f"weights not comparable: {exc}"
    bounds = task.agreement.tolerances(precision)
    return PairVerdict(
        a=a.framework,
        b=b.framework,
        loss_difference=loss,
        loss_step=step,
        weights_difference=weights,
        loss_rtol=bounds.loss_rtol,
        weights_rtol=bounds.weights_rtol,
        problem=problem,
    )


def trace(
    task: Task,
    framework: str,
    version: str | None,
    *,
    steps: int,
    threads: int,
    data_paths: dict[str, str],
    timeout: float,
    folder: Path,
    precision: str = "float32",
) -> Trace:
    """Train ``steps`` steps of ``framework`` in a child process and collect its trace."""
    from harness.runner.child_spec import ChildSpec
    from harness.runner.process import Limits, run_child

    weights_path = folder / f"{framework}.npz"
    spec = ChildSpec(
        entry="harness.checks.agreement:run_agreement",
        task=task.model_dump(mode="json"),
        framework=framework,
        precision=precision,
        threads=threads,
        data_paths=data_paths,
        options={"steps": steps, "weights_path": str(weights_path.resolve())},
    )
    log = folder / f"{framework}.log"
    limits = Limits(timeout)
    outcome = run_child(spec, threads=threads, limits=limits, log_path=log)
    failure = outcome.failure(limits, log)
    if failure is not None:
        return Trace(framework, version, status="failed", error=f"{failure[0]}: {failure[1]}")
    loaded = outcome.data_sha256
    assert outcome.result is not None
    if outcome.result["status"] != "ok":
        return Trace(
            framework,
            version,
            status=outcome.result["status"],
            error=outcome.result["error"],
            kind=outcome.result.get("kind"),
            data_sha256=loaded,
        )
    metrics = outcome.result["metrics"]
    return Trace(
        framework,
        version,
        losses=[float(value) for value in metrics["losses"]],
        parameters=metrics.get("parameters"),
        weights=load_weights(weights_path) if weights_path.exists() else None,
        data_sha256=loaded,
    )


def save_weights(path: Path, weights: list[dict[str, np.ndarray]]) -> None:
    arrays = {
        f"{index}/{name}": value
        for index, layer in enumerate(weights)
        for name, value in layer.items()
    }
    arrays["layers"] = np.array(len(weights))
    np.savez(path, **arrays)  # type: ignore[arg-type]


def load_weights(path: Path) -> list[dict[str, np.ndarray]]:
    with np.load(path) as data:
        weights: list[dict[str, np.ndarray]] = [{} for _ in range(int(data["layers"]))]
        for key in data.files:
            if "/" in key:
                index, name = key.split("/", 1)
                weights[int(index)][name] = data[key]
    return weights


def run_check(
    task: Task,
    frameworks: list[tuple[str, str | None]],
    *,
    steps: int,
    threads: int,
    data_paths: dict[str, str],
    timeout: float = 900,
    on_trace=None,
    unavailable: dict[str, str] | None = None,
    precision: str = "float32",
) -> Check:
    """Trace every framework (``(name, version)`` pairs) and compare every pair that ran.

    :param unavailable: why each framework that can't run here (not installed) can't: it is
        reported in its place, as skipped, and not run.
    """
    task = task.without_dropout()
    traces = []
    with tempfile.TemporaryDirectory(prefix="harness-agreement-") as scratch:
        for name, version in frameworks:
            if unavailable and name in unavailable:
                traces.append(not_installed(name, version, unavailable[name]))
                continue
            result = trace(
                task,
                name,
                version,
                steps=steps,
                threads=threads,
                data_paths=data_paths,
                timeout=timeout,
                folder=Path(scratch),
                precision=precision,
            )
            traces.append(result)
            if on_trace is not None:
                on_trace(result)
    ok = [t for t in traces if t.status == "ok"]
    pairs = [compare(a, b, task, precision) for a, b in itertools.combinations(ok, 2)]
    return Check(task=task, steps=steps, traces=traces, pairs=pairs, precision=precision)


def require_two(task: Task, ready: list[str], left_out: list[Trace]) -> None:
    """Refuse a check with fewer than two frameworks in ``ready`` (those that can run, or ran).

    :param left_out: the frameworks that declined or aren't installed, named in the error.
    :raises HarnessError: one line naming what was left out and why.
    """
    if len(ready) >= 2:
        return
    if not left_out:
        raise HarnessError(TOO_FEW)
    only = f"only {ready[0]} can" if ready else "none can"
    why = "; ".join(trace.left_out for trace in left_out)
    raise HarnessError(f"{TOO_FEW}; {only} run {task.name} ({why})")


def verdicts(check: Check) -> dict[str, dict[str, Any]]:
    """What the cache records per framework: ``pass`` when every pair it was in passed (and it
    counted the task's parameters), ``fail`` when one didn't or it failed to run its steps.

    A framework is recorded only where the check judged it: one that trained nothing (declined
    the task, not installed) gets no verdict, and nor does one whose every partner failed or was
    left out, since nothing was compared with it.
    """
    frameworks: dict[str, dict[str, Any]] = {}
    for item in check.ran:
        involved = [p for p in check.pairs if item.framework in (p.a, p.b)]
        counted_right = item.parameters in (None, check.expected_parameters)
        if item.status == "ok" and counted_right and not involved:
            continue  # compared with nobody: not judged
        passed = item.status == "ok" and counted_right and all(p.passed for p in involved)
        frameworks[item.framework] = {"version": item.version, "status": PASS if passed else FAIL}
    return frameworks


def max_relative_difference(a: np.ndarray, b: np.ndarray, scale: float | None = None) -> float:
    """``max |a - b|`` relative to ``max |a|`` (the scale of the array, so values near zero
    don't dominate), or to ``scale`` when given; 0 for two all-zero arrays."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    if a.shape != b.shape:
        raise ValueError(f"shapes differ: {a.shape} and {b.shape}")
    if not (np.isfinite(a).all() and np.isfinite(b).all()):
        return float("inf")  # a NaN must never read as agreement
    if scale is None:
        scale = float(np.max(np.abs(a))) if a.size else 0.0
    difference = float(np.max(np.abs(a - b))) if a.size else 0.0
    return difference / scale if scale > 0 else difference


# -- the cache that `harness run` reads ----------------------------------------------


def cache_path() -> Path:
    return Path(platformdirs.user_cache_dir("harness")) / "agreement.json"


def task_digest(task: Task, data_sha256: str | None = None, precision: str = "float32") -> str:
    """Identifies what the check trained: a change to the model, data, seed or training
    settings voids a verdict; the task's wording, target, tolerances and epoch count (the
    first steps are the same however many epochs follow) don't.

    :param data_sha256: what was loaded (:attr:`harness.data.datasets.Split.sha256`): data
        that changed under the same dataset name (a plugin's new version) voids it too
    :param precision: a check in bfloat16 or mixed precision is its own entry (float32's
        digests are those of checks from before precisions existed)
    """
    data = task.model_dump(mode="json", exclude={"description", "source", "target", "agreement"})
    del data["training"]["epochs"], data["training"]["eval_batch_size"]
    if data["dataset"].get("train_samples") is None:  # digests from before the field existed
        data["dataset"].pop("train_samples", None)
    if task.dataset_info.provider != "harness":  # a new version of a plugin's data voids it
        data["dataset"]["provider"] = task.dataset_info.provider
    if data_sha256 is not None:
        data["dataset"]["sha256"] = data_sha256
    if precision != "float32":
        data["precision"] = precision
    return hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()[:16]


def _load_cache() -> dict[str, Any]:
    try:
        data = json.loads(read_regular(cache_path(), MAX_CACHE_BYTES).decode("utf-8"))
    except (OSError, ValueError, HarnessError):  # missing, damaged, or not a file
        return {}
    return data if isinstance(data, dict) else {}


def record(check: Check) -> Path:
    """Save the check's verdict for each framework, replacing older verdicts for this task."""
    entry = {
        "task": check.task.name,
        "checked_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "steps": check.steps,
        "precision": check.precision,
        "frameworks": verdicts(check),
        "pairs": [asdict(pair) | {"passed": pair.passed} for pair in check.pairs],
    }
    path = cache_path()
    key = task_digest(check.task, check.data_sha256, check.precision)
    update_json_file(path, lambda data: data.__setitem__(key, entry))
    return path


def status_for(
    task: Task,
    framework: str,
    version: str | None,
    data_sha256: str | None = None,
    precision: str = "float32",
) -> str | None:
    """``"pass (N steps)"``/``"fail (N steps)"`` from the latest check of this exact task,
    data (``data_sha256``, as a row records it) and framework version, or ``None`` when it
    hasn't been checked."""
    entry = _load_cache().get(task_digest(task.without_dropout(), data_sha256, precision))
    if not entry:
        return None
    verdict = entry.get("frameworks", {}).get(framework)
    if not verdict or verdict.get("version") != version:
        return None
    return f"{verdict['status']} ({entry.get('steps')} steps)"


# -- in the child process --------------------------------------------------------


def run_agreement(spec: ChildSpec, events: Events) -> None:
    """Train the first ``steps`` batches one at a time, dropout off, and report every step's
    loss and the final weights (for ``harness check-agreement``). ``spec.options``: ``steps``
    (how many), ``weights_path`` (where the final weights go, an ``.npz``)."""
    from harness.api.adapter import UnsupportedSpec, build_trainer
    from harness.registry.catalog import known_datasets
    from harness.runner import worker
    from harness.workload.fairness import batch_order, initial_weights
    from harness.workload.tasks import validate_task_data

    task = validate_task_data(
        spec.task or {}, "the check's task", known_datasets()
    ).without_dropout()
    prepared = worker.prepare(spec, events)
    if prepared is None:
        return
    adapter, session, runtime_fields = prepared
    split, train, _ = worker.load_data(task, spec)
    events.send("data", sha256=split.sha256)
    try:
        trainer = build_trainer(adapter, session, task, initial_weights(task), train.x, train.y)
    except UnsupportedSpec as exc:
        events.send("result", status="skipped", kind="unsupported", error=f"unsupported: {exc}")
        return
    size, count = task.training.batch_size, len(train.x)
    if count < size:
        raise ValueError(
            f"only {count} training samples, fewer than one batch of {size}: the check compares "
            "full batches"
        )
    losses: list[float] = []
    for epoch in itertools.count():
        order = batch_order(task.seed, epoch, count)
        for start in range(0, count - size + 1, size):  # full batches, as the run's epochs start
            if len(losses) == spec.options["steps"]:
                break
            batch = order[start : start + size]
            losses.append(float(trainer.train_epoch(batch)))
        if len(losses) == spec.options["steps"]:
            break
    if hasattr(trainer, "weights"):
        save_weights(Path(spec.options["weights_path"]), trainer.weights())
    events.send(
        "result",
        status="ok",
        kind=None,
        error=None,
        metrics={"losses": losses, "parameters": worker.plugin_parameter_count(trainer)},
        **runtime_fields,
    )
