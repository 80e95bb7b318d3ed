"""Comparing two runs cell by cell, with a verdict that noise can't fool easily.

Cells are matched by task, framework, mode and device. For each metric the comparison gives
the ratio of medians B/A, the share of (A, B) pairs of repeats in which B is worse, and, with at
least two repeats on each side, the two-sided Mann-Whitney U p-value. A change smaller than the
threshold is ``no change``; a larger one is a ``regression`` or an ``improvement`` only when
the repeats agree on its direction (B worse in at least 90 % of pairs, or better in at least
90 %); otherwise it is ``inconclusive``: run more repeats.
"""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from scipy.stats import mannwhitneyu

from harness.runs import Run

#: metric name -> (label, lower is better)
METRICS: dict[str, tuple[str, bool]] = {
    "fit_seconds": ("fit time", True),
    "steady_epoch_seconds": ("steady epoch time", True),
    "step_seconds_p50": ("step p50", True),
    "step_seconds_p99": ("step p99", True),
    "peak_rss_bytes": ("peak RSS", True),
    "test_accuracy": ("test accuracy", False),
    "test_mse": ("test MSE", True),
}
#: share of pairs that must agree on a change's direction for a verdict
AGREEMENT = 0.9
#: environment keys that differ between any two runs and say nothing about the machine
_VOLATILE = {"recorded_at", "command"}


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
    device: str
    metrics: list[MetricComparison]

    @property
    def regressions(self) -> list[MetricComparison]:
        return [m for m in self.metrics if m.verdict == "regression"]


def compare_samples(
    a: Sequence[float], b: Sequence[float], *, lower_is_better: bool, threshold: float
) -> tuple[float, float, float | None, str]:
    """``(ratio B/A of medians, share of pairs where B is worse, p-value or None, verdict)``."""
    ratio = statistics.median(b) / statistics.median(a)
    pairs = [(x, y) for x in a for y in b]
    worse = sum(
        1.0 if (y > x if lower_is_better else y < x) else 0.5 if y == x else 0.0 for x, y in pairs
    )
    worse_share = worse / len(pairs)
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


def _cells(run: Run) -> dict[tuple[str, str, str, str], list[dict[str, Any]]]:
    cells: dict[tuple[str, str, str, str], list[dict[str, Any]]] = {}
    for row in run.rows:
        if row.get("status") == "ok":
            key = (row["task"], row["framework"], row.get("mode", "eager"), row["device"])
            cells.setdefault(key, []).append(row["metrics"])
    return cells


def compare_runs(run_a: Run, run_b: Run, *, threshold: float = 0.1) -> list[CellComparison]:
    """Every cell that finished in both runs, compared metric by metric."""
    cells_a, cells_b = _cells(run_a), _cells(run_b)
    comparisons = []
    for key in sorted(cells_a.keys() & cells_b.keys()):
        metrics = []
        for name, (label, lower_is_better) in METRICS.items():
            a = [m[name] for m in cells_a[key] if m.get(name) is not None]
            b = [m[name] for m in cells_b[key] if m.get(name) is not None]
            if not a or not b or statistics.median(a) == 0:
                continue
            ratio, worse_share, p_value, verdict = compare_samples(
                a, b, lower_is_better=lower_is_better, threshold=threshold
            )
            metrics.append(
                MetricComparison(name, label, a, b, ratio, worse_share, p_value, verdict)
            )
        comparisons.append(CellComparison(*key, metrics))
    return comparisons


def unmatched(run_a: Run, run_b: Run) -> tuple[list[str], list[str]]:
    """Cells (as ``task/framework/mode/device``) that finished only in A, and only in B."""
    cells_a, cells_b = _cells(run_a), _cells(run_b)
    return (
        ["/".join(key) for key in sorted(cells_a.keys() - cells_b.keys())],
        ["/".join(key) for key in sorted(cells_b.keys() - cells_a.keys())],
    )


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
