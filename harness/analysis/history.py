"""A results folder over time: each cell's headline figures run after run, and where they changed.

A *series* is one task × framework × mode × precision × device on one host. Its *points* are
the runs, in the order they started, and within a run its ``--with`` environments, so one run of
two JAX releases is two points. A point's figure is the median time per epoch of its repeats
(steady epochs; the fit's mean epoch where a row has none), and its quality the median of the
task's metric.

Busy repeats never count: a repeat whose machine was busy (its ``noise`` verdict) is left out of
its point, and a point with nothing else is shown but takes no part in finding changes.

Change points are found by the rules ``harness compare`` uses, between neighbouring points
(:func:`harness.analysis.compare.compare_samples`): a change is one where the median moved by
at least the threshold (10 %) and at least 90 % of the pairs of repeats (one from each point)
agree on its direction. With one repeat a point, that is one pair, so a single noisy run can
make a change; ``--repeats 3`` or more makes the verdict sturdier, as in ``compare``.
"""

from __future__ import annotations

import statistics
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harness.analysis.compare import compare_samples, is_busy
from harness.analysis.runs import Run, list_runs
from harness.analysis.summary import cell_key, environment_of

#: task, framework, mode, precision, device, host
SeriesKey = tuple[str, str, str, str, str, str]
#: what a change must be, at least, as a share of the earlier point's median
DEFAULT_THRESHOLD = 0.1


@dataclass(frozen=True)
class Point:
    """One run's (and one environment's) repeats of a series."""

    run_id: str
    started_at: str
    version: str
    environment: str
    #: seconds per epoch of each quiet repeat that finished
    seconds: tuple[float, ...]
    #: repeats left out because the machine was busy
    busy: int
    quality: float | None

    @property
    def median(self) -> float | None:
        return statistics.median(self.seconds) if self.seconds else None


@dataclass(frozen=True)
class Change:
    """A change point: ``after`` differs from ``before``, the quiet point just ahead of it."""

    before: Point
    after: Point
    #: median of ``after`` / median of ``before``
    ratio: float
    #: ``regression`` (slower) or ``improvement``
    verdict: str


@dataclass
class Series:
    task: str
    framework: str
    mode: str
    precision: str
    device: str
    host: str
    quality_metric: str | None
    points: list[Point] = field(default_factory=list)
    changes: list[Change] = field(default_factory=list)

    @property
    def label(self) -> str:
        precision = "" if self.precision == "float32" else f"/{self.precision}"
        return f"{self.task}/{self.framework}/{self.mode}{precision}/{self.device}"

    @property
    def regressed(self) -> bool:
        """Its newest change is a regression: it is slower now than before it."""
        return bool(self.changes) and self.changes[-1].verdict == "regression"


def epoch_seconds(metrics: dict[str, Any]) -> float | None:
    """The figure a point is made of: the steady epoch's time, else the fit's mean epoch."""
    steady = metrics.get("steady_epoch_seconds")
    if steady is not None:
        return float(steady)
    fit, epochs = metrics.get("fit_seconds"), metrics.get("epochs")
    return float(fit) / epochs if fit is not None and epochs else None


def history(
    folders: Iterable[str | Path],
    *,
    task: str | None = None,
    framework: str | None = None,
    threshold: float = DEFAULT_THRESHOLD,
) -> list[Series]:
    """Every series in the runs under ``folders``, oldest point first, with its change points."""
    runs = sorted(
        (run for folder in folders for run in list_runs(folder)),
        key=lambda run: (_started(run), run.run_id),
    )
    series: dict[SeriesKey, Series] = {}
    for run in runs:
        for (key, _), rows in _points_of(run, task, framework).items():
            metric = (run.config.get("task", {}).get("target") or {}).get("metric")
            found = series.setdefault(key, Series(*key, quality_metric=metric))
            found.points.append(_point(run, rows, metric))
    for each in series.values():
        each.changes = find_changes(each.points, threshold)
    return list(series.values())


def find_changes(points: Sequence[Point], threshold: float = DEFAULT_THRESHOLD) -> list[Change]:
    """The change points between neighbouring quiet points (those with a figure)."""
    quiet = [point for point in points if point.seconds]
    changes = []
    for before, after in zip(quiet, quiet[1:], strict=False):
        ratio, _, _, verdict = compare_samples(
            before.seconds, after.seconds, lower_is_better=True, threshold=threshold
        )
        if verdict in ("regression", "improvement"):
            changes.append(Change(before, after, ratio, verdict))
    return changes


def _started(run: Run) -> str:
    times = [row.get("started_at") or "" for row in run.rows]
    return min(times, default="") or str(run.environment.get("recorded_at") or "")


def _points_of(
    run: Run, task: str | None, framework: str | None
) -> dict[tuple[SeriesKey, str], list[dict[str, Any]]]:
    """The run's finished rows by series and environment: one point each (a failed or skipped
    cell has no figure to follow; ``harness show`` lists it)."""
    grouped: dict[tuple[SeriesKey, str], list[dict[str, Any]]] = {}
    for row in run.rows:
        if row.get("status") != "ok":
            continue
        if task is not None and row.get("task") != task:
            continue
        if framework is not None and row.get("framework") != framework:
            continue
        grouped.setdefault((cell_key(row), environment_of(row)), []).append(row)
    return grouped


def _point(run: Run, rows: list[dict[str, Any]], metric: str | None) -> Point:
    done = [row for row in rows if row.get("status") == "ok"]
    quiet = [row for row in done if not is_busy(row)]
    seconds = tuple(
        value for row in quiet if (value := epoch_seconds(row.get("metrics") or {})) is not None
    )
    qualities = [
        row["metrics"][metric] for row in done if metric and row["metrics"].get(metric) is not None
    ]
    return Point(
        run_id=run.run_id,
        started_at=min(row.get("started_at") or "" for row in rows),
        version=next((r["framework_version"] for r in rows if r.get("framework_version")), ""),
        environment=environment_of(rows[0]),
        seconds=seconds,
        busy=len(done) - len(quiet),
        quality=statistics.median(qualities) if qualities else None,
    )
