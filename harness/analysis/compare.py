"""Comparing two runs cell by cell, with a verdict that noise can't fool easily.

Cells are matched by task, framework, mode, precision and device. For each metric the comparison gives
the ratio of medians B/A, the share of (A, B) pairs of repeats in which B is worse, and, with at
least two repeats on each side, the two-sided Mann-Whitney U p-value. A change smaller than the
threshold is ``no change``; a larger one is a ``regression`` or an ``improvement`` only when
the repeats agree on its direction (B worse in at least 90 % of pairs, or better in at least
90 %); otherwise it is ``inconclusive``: run more repeats.

A cell that finished in A but failed, was skipped or is missing in B is a regression too (a
:class:`StatusRegression`), whatever its metrics: a build that breaks a cell must not pass a CI
gate. Two runs with no cell in common, or a baseline with no finished cell, can't be compared
at all: :func:`check_comparable` raises :class:`NothingToCompare` for them.

A time that changed while other processes were taking the machine's CPU (a repeat whose
``noise`` verdict is ``busy``, in either run) says nothing about the code: such a change is
``inconclusive: busy machine``, never a regression or an improvement.
"""

from __future__ import annotations

import bisect
import statistics
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from scipy.stats import mannwhitneyu

from harness.analysis.runs import Run
from harness.errors import HarnessError
from harness.workload.variants import row_name

#: metric name -> (label, lower is better)
METRICS: dict[str, tuple[str, bool]] = {
    "fit_seconds": ("fit time", True),
    "steady_epoch_seconds": ("steady epoch time", True),
    "step_seconds_p50": ("step p50", True),
    "step_seconds_p99": ("step p99", True),
    "peak_rss_bytes": ("peak RSS", True),
    "test_accuracy": ("test accuracy", False),
    "test_mse": ("test MSE", True),
    "test_bits_per_char": ("test bits per character", True),
}
#: metrics that other processes' use of the CPU changes (a busy repeat spoils them)
TIME_METRICS = frozenset(
    {"fit_seconds", "steady_epoch_seconds", "step_seconds_p50", "step_seconds_p99"}
)
BUSY_VERDICT = "inconclusive: busy machine"
#: share of pairs that must agree on a change's direction for a verdict
AGREEMENT = 0.9
#: environment keys that differ between any two runs and say nothing about the machine
_VOLATILE = {"recorded_at", "command"}

CellKey = tuple[str, str, str, str, str]


class NothingToCompare(HarnessError):
    """The runs share no cell, or the baseline has no finished cell: the comparison would check
    nothing, and a CI gate must not read that as a pass."""

    exit_code = 6


@dataclass(frozen=True)
class MetricComparison:
    metric: str
    label: str
    a: list[float]
    b: list[float]
    ratio: float
    worse_share: float
    p_value: float | None
    verdict: str


@dataclass(frozen=True)
class CellComparison:
    task: str
    framework: str
    mode: str
    precision: str
    device: str
    metrics: list[MetricComparison]
    #: repeats of the cell whose machine was busy while they trained, in A and in B
    busy_a: int = 0
    busy_b: int = 0

    @property
    def cell(self) -> str:
        return cell_label(self.task, self.framework, self.mode, self.precision, self.device)

    @property
    def regressions(self) -> list[MetricComparison]:
        return [m for m in self.metrics if m.verdict == "regression"]

    @property
    def spoiled(self) -> list[MetricComparison]:
        """Changes of time that a busy machine makes impossible to call."""
        return [m for m in self.metrics if m.verdict == BUSY_VERDICT]


@dataclass(frozen=True)
class StatusRegression:
    """A cell that finished in A and, in B, failed, was skipped or is missing: in every repeat,
    or in a larger share of its repeats than in A."""

    task: str
    framework: str
    mode: str
    precision: str
    device: str
    #: repeats that finished (``ok``), and all repeats, in each run
    a_ok: int
    a_total: int
    b_ok: int
    b_total: int
    #: what happened in B: ``failed (crash): crashed: killed by SIGSEGV``, or why it is missing
    reason: str

    @property
    def cell(self) -> str:
        return cell_label(self.task, self.framework, self.mode, self.precision, self.device)

    @property
    def a_state(self) -> str:
        return f"{self.a_ok}/{self.a_total} ok"

    @property
    def b_state(self) -> str:
        return f"{self.b_ok}/{self.b_total} ok" if self.b_total else "missing"


def compare_samples(
    a: Sequence[float], b: Sequence[float], *, lower_is_better: bool, threshold: float
) -> tuple[float, float, float | None, str]:
    """``(ratio B/A of medians, share of pairs where B is worse, p-value or None, verdict)``."""
    ratio = statistics.median(b) / statistics.median(a)
    worse_share = _worse_share(a, b, lower_is_better=lower_is_better)
    p_value = None
    if len(a) >= 2 and len(b) >= 2:
        p_value = float(mannwhitneyu(b, a, alternative="two-sided").pvalue)
    change = ratio - 1 if lower_is_better else 1 - ratio  # positive: B is worse
    if abs(change) < threshold:
        verdict = "no change"
    elif change > 0 and worse_share >= AGREEMENT:
        verdict = "regression"
    elif change < 0 and worse_share <= 1 - AGREEMENT:
        verdict = "improvement"
    else:
        verdict = "inconclusive"
    return ratio, worse_share, p_value, verdict


def _worse_share(a: Sequence[float], b: Sequence[float], *, lower_is_better: bool) -> float:
    """The share of pairs (one repeat of A, one of B) in which B is worse, a tie counting
    half: counted over sorted A in O(n log n), never by building every pair."""
    ordered = sorted(a)
    worse = 0.0
    for y in b:
        below, up_to = bisect.bisect_left(ordered, y), bisect.bisect_right(ordered, y)
        beaten = below if lower_is_better else len(ordered) - up_to  # pairs where y is worse
        worse += beaten + 0.5 * (up_to - below)
    return worse / (len(ordered) * len(b))


def cell_label(task: str, framework: str, mode: str, precision: str, device: str) -> str:
    """``mnist_mlp/torch/eager/cpu``; a precision other than float32 after the mode."""
    return "/".join(
        (task, framework, mode, *([precision] if precision != "float32" else []), device)
    )


def _key(row: dict[str, Any]) -> CellKey:
    # a --with environment's cells are other cells than harness's own environment's
    environment = (row.get("environment") or {}).get("name")
    return (
        row_name(row),
        row["framework"] + (f"[{environment}]" if environment else ""),
        row.get("mode", "eager"),
        row.get("precision", "float32"),
        row["device"],
    )


def _cells(run: Run) -> dict[CellKey, list[dict[str, Any]]]:
    """The metrics of every repeat that finished, per cell."""
    cells: dict[CellKey, list[dict[str, Any]]] = {}
    for row in run.rows:
        if row.get("status") == "ok":
            cells.setdefault(_key(row), []).append(row["metrics"])
    return cells


def is_busy(row: dict[str, Any]) -> bool:
    """Whether other processes took the CPU while this repeat trained (``harness.measure.noise``)."""
    return (row.get("noise") or {}).get("verdict") == "busy"


def _busy(run: Run) -> dict[CellKey, int]:
    """How many finished repeats of each cell trained on a busy machine."""
    busy: dict[CellKey, int] = {}
    for row in run.rows:
        if row.get("status") == "ok" and is_busy(row):
            busy[_key(row)] = busy.get(_key(row), 0) + 1
    return busy


def _rows(run: Run) -> dict[CellKey, list[dict[str, Any]]]:
    """Every repeat's row, whatever its status, per cell."""
    rows: dict[CellKey, list[dict[str, Any]]] = {}
    for row in run.rows:
        rows.setdefault(_key(row), []).append(row)
    return rows


def compare_runs(run_a: Run, run_b: Run, *, threshold: float = 0.1) -> list[CellComparison]:
    """Every cell that finished in both runs, compared metric by metric."""
    cells_a, cells_b = _cells(run_a), _cells(run_b)
    busy_a, busy_b = _busy(run_a), _busy(run_b)
    comparisons = []
    for key in sorted(cells_a.keys() & cells_b.keys()):
        spoiled = bool(busy_a.get(key) or busy_b.get(key))
        metrics = []
        for name, (label, lower_is_better) in METRICS.items():
            a = [m[name] for m in cells_a[key] if m.get(name) is not None]
            b = [m[name] for m in cells_b[key] if m.get(name) is not None]
            if not a or not b or statistics.median(a) == 0:
                continue
            ratio, worse_share, p_value, verdict = compare_samples(
                a, b, lower_is_better=lower_is_better, threshold=threshold
            )
            if spoiled and name in TIME_METRICS and verdict != "no change":
                verdict = BUSY_VERDICT
            metrics.append(
                MetricComparison(name, label, a, b, ratio, worse_share, p_value, verdict)
            )
        comparisons.append(
            CellComparison(*key, metrics, busy_a=busy_a.get(key, 0), busy_b=busy_b.get(key, 0))
        )
    return comparisons


def unmatched(run_a: Run, run_b: Run) -> tuple[list[str], list[str]]:
    """Cells (as ``task/framework/mode/device``, :func:`cell_label`) that finished only in A, and only in B."""
    cells_a, cells_b = _cells(run_a), _cells(run_b)
    return (
        [cell_label(*key) for key in sorted(cells_a.keys() - cells_b.keys())],
        [cell_label(*key) for key in sorted(cells_b.keys() - cells_a.keys())],
    )


def status_regressions(run_a: Run, run_b: Run) -> list[StatusRegression]:
    """Cells that finished in A and failed, were skipped or are missing in B.

    A cell counts when it has no finished repeat in B, or finished in a smaller share of its
    repeats than in A (1 of 3 after 3 of 3); a cell that never finished in A is not one.
    """
    rows_a, rows_b = _rows(run_a), _rows(run_b)
    found = []
    for key in sorted(rows_a):
        a = rows_a[key]
        b = rows_b.get(key, [])
        a_ok = sum(row["status"] == "ok" for row in a)
        b_ok = sum(row["status"] == "ok" for row in b)
        if not a_ok or (b and b_ok / len(b) >= a_ok / len(a)):
            continue
        found.append(StatusRegression(*key, a_ok, len(a), b_ok, len(b), _what_happened(b)))
    return found


def _what_happened(rows: list[dict[str, Any]]) -> str:
    """``failed (crash): crashed: killed by SIGSEGV``, once per distinct reason, on one line."""
    if not rows:
        return "no result for this cell (not asked for, or the run was cut short)"
    reasons = []
    for row in rows:
        if row["status"] == "ok":
            continue
        kind = f" ({row['kind']})" if row.get("kind") else ""
        error = " ".join(str(row.get("error") or "no reason given").split())
        reasons.append(f"{row['status']}{kind}: {error}")
    return "; ".join(dict.fromkeys(reasons))


def check_comparable(run_a: Run, run_b: Run) -> None:
    """Refuse a comparison that would check nothing, rather than let it read as a pass.

    :raises NothingToCompare: when the runs have no cell (task, framework, mode and device) in
        common, whatever its status, or when no cell of ``run_a`` finished.
    """
    rows_a, rows_b = _rows(run_a), _rows(run_b)
    if not rows_a.keys() & rows_b.keys():
        where, advice = _how_they_differ(run_a, rows_a, run_b, rows_b)
        raise NothingToCompare(
            f"runs {run_a.run_id} and {run_b.run_id} have no cell in common ({where}); {advice}"
        )
    if not _cells(run_a):
        raise NothingToCompare(
            f"no cell of run {run_a.run_id} finished, so there is nothing to compare "
            f"{run_b.run_id} with; compare against a run whose cells finished"
        )


#: (singular, plural, advice) for each part of a cell's key, in the order they are looked at
_KEY_PARTS = (
    ("task", "tasks", "compare runs of the same task"),
    ("framework", "frameworks", "compare runs that share a framework"),
    ("mode", "modes", "compare runs that share a mode"),
    ("precision", "precisions", "compare runs that share a precision"),
    ("device", "devices", "compare runs on the same device"),
)


def _how_they_differ(
    run_a: Run, rows_a: dict[CellKey, Any], run_b: Run, rows_b: dict[CellKey, Any]
) -> tuple[str, str]:
    """``("a: task mnist_mlp; b: task mnist_cnn", "compare runs of the same task")``."""
    if not rows_a or not rows_b:
        sides = [
            f"{run.run_id}: " + ("no results" if not rows else f"{len(rows)} cell(s)")
            for run, rows in ((run_a, rows_a), (run_b, rows_b))
        ]
        return "; ".join(sides), "compare runs that both have results"
    for index, (one, many, advice) in enumerate(_KEY_PARTS):
        values_a = sorted({key[index] for key in rows_a})
        values_b = sorted({key[index] for key in rows_b})
        if not set(values_a) & set(values_b):
            sides = [
                f"{run.run_id}: {one if len(values) == 1 else many} {', '.join(values)}"
                for run, values in ((run_a, values_a), (run_b, values_b))
            ]
            return "; ".join(sides), advice
    sides = [
        f"{run.run_id}: cells {', '.join(cell_label(*key) for key in sorted(rows))}"
        for run, rows in ((run_a, rows_a), (run_b, rows_b))
    ]
    return "; ".join(sides), "compare runs that share a task, framework, mode, precision and device"


def environment_differences(run_a: Run, run_b: Run) -> dict[str, tuple[Any, Any]]:
    """Environment entries whose values differ between the runs (framework versions included)."""
    a, b = run_a.environment, run_b.environment
    differences = {}
    for key in sorted((a.keys() | b.keys()) - _VOLATILE):
        if isinstance(a.get(key), dict) or isinstance(b.get(key), dict):
            inner_a, inner_b = a.get(key) or {}, b.get(key) or {}
            for inner in sorted(inner_a.keys() | inner_b.keys()):
                if inner_a.get(inner) != inner_b.get(inner):
                    differences[f"{key}.{inner}"] = (inner_a.get(inner), inner_b.get(inner))
        elif a.get(key) != b.get(key):
            differences[key] = (a.get(key), b.get(key))
    return differences
