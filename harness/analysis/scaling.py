"""How each framework's cost grows with the work: a sweep's curves, fits and crossovers.

For every key a sweep varied (``--vary``) over at least two values, each framework and mode is
a series of points, one per value, each holding the repeats that finished:

- a sweep over the *amount of work* (``dataset.train_samples``, ``training.epochs``) fits the
  fit time (and, with the samples per epoch, the first and the steady epochs) as a line
  against the samples trained: the intercept is the fixed cost (tracing, compilation,
  warm-up), the slope the marginal cost per sample, each with a 95 % confidence interval from
  every repeat's point, and the R² of the fit;
- a sweep over anything else (batch size, width) follows steady throughput, step time,
  achieved FLOP/s and peak memory, with the log-log slope between neighbouring points (1: in
  proportion; 0: flat);
- for every pair of series, the order at each value is judged with the statistics
  ``harness compare`` uses (:func:`harness.analysis.compare.compare_samples`): a difference inside the
  noise is a tie, so a crossing only counts where both sides of it are real.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from scipy import stats

from harness.analysis.compare import compare_samples
from harness.analysis.summary import BreakEven, environment_of, mode_label, summarise
from harness.workload.variants import short_key, variant_label

#: keys whose values are an amount of work: fixed and marginal cost are fitted for them
WORK_KEYS = ("dataset.train_samples", "training.epochs")
#: the change two series must differ by to be ordered, as ``harness compare``'s default
THRESHOLD = 0.1


@dataclass(frozen=True)
class MetricSpec:
    name: str
    label: str
    unit: str
    higher_is_better: bool
    #: how a value is shown: its value times ``scale``
    scale: float = 1.0
    #: the comparative in a crossover sentence (``faster``, ``leaner``)
    better: str = "better"


SIZE_METRICS = (
    MetricSpec(
        "steady_samples_per_second", "steady throughput", "samples/s", True, better="faster"
    ),
    MetricSpec("step_seconds_mean", "mean step time", "ms", False, 1e3, "faster"),
    MetricSpec("achieved_flops_per_second", "achieved FLOP rate", "GFLOP/s", True, 1e-9, "faster"),
    MetricSpec("peak_rss_bytes", "peak RSS", "MiB", False, 1 / 2**20, "leaner"),
)
#: steady throughput needs two epochs; a one-epoch sweep (the cheap shortcut) has this instead
WHOLE_FIT_THROUGHPUT = MetricSpec(
    "samples_per_second", "throughput (first epoch included)", "samples/s", True, better="faster"
)
WORK_METRICS = (
    MetricSpec("fit_seconds", "fit time", "s", False, better="faster"),
    MetricSpec("peak_rss_bytes", "peak RSS", "MiB", False, 1 / 2**20, "leaner"),
)
#: (metric, what its x is, label) for the fixed/marginal fits
FIT_PARTS = (
    ("fit_seconds", "samples trained", "fit"),
    ("first_epoch_seconds", "samples per epoch", "first epoch"),
    ("steady_epoch_seconds", "samples per epoch", "steady epoch"),
)


@dataclass(frozen=True)
class Point:
    x: float
    #: one value per repeat that finished
    values: tuple[float, ...]
    #: some repeat finished below the task's target
    missed_target: bool = False

    @property
    def median(self) -> float:
        return float(np.median(self.values))


@dataclass(frozen=True)
class Series:
    """One framework and mode (and the values of any other varied key) across the sweep."""

    label: str
    points: tuple[Point, ...]
    framework: str = ""
    mode: str = ""

    def slopes(self) -> list[tuple[float, float, float | None]]:
        """``(x0, x1, log-log slope)`` between neighbouring points; ``None`` where a median
        is not positive (no logarithm)."""
        found: list[tuple[float, float, float | None]] = []
        for a, b in itertools.pairwise(self.points):
            ratio = b.median / a.median if a.median > 0 and b.median > 0 else 0.0
            if 0 < ratio < math.inf and 0 < b.x / a.x < math.inf and b.x != a.x:
                slope = math.log(ratio) / math.log(b.x / a.x)
                found.append((a.x, b.x, slope))
            else:
                found.append((a.x, b.x, None))
        return found


@dataclass(frozen=True)
class LinearFit:
    """``y = intercept + slope * x`` by least squares, with 95 % confidence half-widths."""

    intercept: float
    slope: float
    #: half-widths of the 95 % intervals; ``None`` with no residual degree of freedom
    intercept_ci: float | None
    slope_ci: float | None
    r_squared: float
    points: int


def linear_fit(xs: Sequence[float], ys: Sequence[float]) -> LinearFit | None:
    """The least-squares line through ``(xs, ys)``; ``None`` without two distinct x values.

    Every repeat is a point of its own, so the intervals carry the spread over repeats as well
    as any bend of the curve away from a line.
    """
    x, y = np.asarray(xs, dtype=float), np.asarray(ys, dtype=float)
    if len(x) < 2 or np.ptp(x) == 0:
        return None
    x_mean, y_mean = x.mean(), y.mean()
    sxx = float(((x - x_mean) ** 2).sum())
    slope = float(((x - x_mean) * (y - y_mean)).sum() / sxx)
    intercept = float(y_mean - slope * x_mean)
    residuals = y - (intercept + slope * x)
    sse, sst = float((residuals**2).sum()), float(((y - y_mean) ** 2).sum())
    r_squared = 1.0 - sse / sst if sst > 0 else 1.0
    freedom = len(x) - 2
    if freedom < 1:
        return LinearFit(intercept, slope, None, None, r_squared, len(x))
    variance = sse / freedom
    t = float(stats.t.ppf(0.975, freedom))
    slope_ci = t * math.sqrt(variance / sxx)
    intercept_ci = t * math.sqrt(variance * (1 / len(x) + x_mean**2 / sxx))
    return LinearFit(intercept, slope, intercept_ci, slope_ci, r_squared, len(x))


@dataclass(frozen=True)
class CostFit:
    """A series' fixed and marginal cost for one part of the training time."""

    series: str
    part: str
    x_label: str
    fit: LinearFit


@dataclass(frozen=True)
class Segment:
    """A run of neighbouring values over which a pair keeps one order: ``1`` the first
    series is better, ``-1`` the second, ``0`` tied (inside the noise)."""

    order: int
    first: float
    last: float


@dataclass(frozen=True)
class Crossover:
    """How the order of two series goes across the sweep, and where it changes."""

    a: str
    b: str
    segments: tuple[Segment, ...]
    sentence: str

    @property
    def crosses(self) -> bool:
        """Each is better somewhere: a real change of order, not one inside the noise."""
        orders = {segment.order for segment in self.segments}
        return {1, -1} <= orders

    @property
    def changes(self) -> bool:
        """The order is not the same at every value (a crossing, or a tie somewhere)."""
        return len(self.segments) > 1

    def crossings(self) -> list[tuple[float, float]]:
        """The neighbouring values between which one series overtakes the other."""
        signed = [s for s in self.segments if s.order]
        return [
            (before.last, after.first)
            for before, after in itertools.pairwise(signed)
            if before.order != after.order
        ]


def order_at(a: Point, b: Point, spec: MetricSpec, threshold: float = THRESHOLD) -> int:
    """``1`` when ``a`` is better than ``b`` at this value, ``-1`` when worse, ``0`` a tie:
    less apart than ``threshold``, or repeats that don't agree on the direction."""
    if np.median(a.values) == 0 or np.median(b.values) == 0:
        return 0
    _, _, _, verdict = compare_samples(
        list(a.values),
        list(b.values),
        lower_is_better=not spec.higher_is_better,
        threshold=threshold,
    )
    return {"regression": 1, "improvement": -1}.get(verdict, 0)  # verdicts speak of b


def crossover(
    a: Series, b: Series, spec: MetricSpec, key: str, threshold: float = THRESHOLD
) -> Crossover | None:
    """The order of ``a`` and ``b`` at every value both have; ``None`` with no value in common."""
    theirs = {point.x: point for point in b.points}
    orders = [
        (point.x, order_at(point, theirs[point.x], spec, threshold))
        for point in a.points
        if point.x in theirs
    ]
    if not orders:
        return None
    segments: list[Segment] = []
    for x, order in orders:
        if segments and segments[-1].order == order:
            segments[-1] = Segment(order, segments[-1].first, x)
        else:
            segments.append(Segment(order, x, x))
    return Crossover(a.label, b.label, tuple(segments), _sentence(a, b, segments, spec, key))


def _sentence(a: Series, b: Series, segments: list[Segment], spec: MetricSpec, key: str) -> str:
    """``torch (eager) is faster than jax (eager) up to batch_size 128; tied at 256; jax (eager)
    is faster from batch_size 512 up``."""
    name = short_key(key)
    parts = []
    for index, segment in enumerate(segments):
        if len(segments) == 1:
            where = f"at every {name}"
        elif segment.first == segment.last:
            where = f"at {name} {format_x(segment.first)}"
        elif index == 0:
            where = f"up to {name} {format_x(segment.last)}"
        elif index == len(segments) - 1:
            where = f"from {name} {format_x(segment.first)} up"
        else:
            where = f"from {name} {format_x(segment.first)} to {format_x(segment.last)}"
        if segment.order == 0:
            parts.append(
                f"{a.label} and {b.label} are tied {where}" if index == 0 else f"tied {where}"
            )
        else:
            better, worse = (a, b) if segment.order > 0 else (b, a)
            parts.append(f"{better.label} is {spec.better} than {worse.label} {where}")
    return "; ".join(parts)


def format_value(spec: MetricSpec, value: float) -> str:
    """A metric's value in its unit, with as many digits as its size needs."""
    shown = value * spec.scale
    if abs(shown) >= 100:
        return f"{shown:,.0f}"
    return f"{shown:.1f}" if abs(shown) >= 10 else f"{shown:.2f}"


def format_short(value: float) -> str:
    """A varied value in few characters, for narrow headers: ``5k``, ``1024``, ``0.001``."""
    if float(value).is_integer() and value >= 1000 and value % 1000 == 0:
        return f"{value / 1000:g}k"
    return f"{value:.0f}" if float(value).is_integer() else f"{value:g}"


def format_x(value: float) -> str:
    """A varied value as the reports show it: ``1,024``, ``0.001``."""
    return f"{value:,.0f}" if float(value).is_integer() else f"{value:g}"


# -- a sweep's rows, analysed ---------------------------------------------------


@dataclass
class MetricCurves:
    spec: MetricSpec
    series: list[Series]


@dataclass(frozen=True)
class CurveRow:
    """One series of a curve as the terminal and the reports tabulate it."""

    label: str
    #: per varied value: the median formatted in the metric's unit and whether a repeat missed
    #: the task's target; ``None`` where the series has no point
    medians: list[tuple[str, bool] | None]
    #: per pair of neighbouring values: the log-log slope (``+0.98``), ``""`` where unknown
    slopes: list[str]


def curve_rows(curves: MetricCurves, values: list[float]) -> list[CurveRow]:
    """Each series' medians and slopes at ``values``, formatted once for every renderer."""
    rows = []
    for series in curves.series:
        by_x = {point.x: point for point in series.points}
        medians = [
            (format_value(curves.spec, by_x[x].median), by_x[x].missed_target)
            if x in by_x
            else None
            for x in values
        ]
        found = {(a, b): slope for a, b, slope in series.slopes()}
        slopes = [
            "" if found.get(pair) is None else f"{found[pair]:+.2f}"
            for pair in itertools.pairwise(values)
        ]
        rows.append(CurveRow(series.label, medians, slopes))
    return rows


@dataclass
class KeyAnalysis:
    """Everything the reports show for one varied key."""

    key: str
    values: list[float]
    work: bool
    curves: list[MetricCurves]
    #: the pairs' orders on the headline metric (the first of ``curves``)
    crossovers: list[Crossover] = field(default_factory=list)
    fits: list[CostFit] = field(default_factory=list)
    #: where a compiled mode repays its first epoch against eager, at each value
    break_evens: list[BreakEvenCurve] = field(default_factory=list)

    @property
    def headline(self) -> MetricCurves:
        return self.curves[0]

    @property
    def single_repeats(self) -> bool:
        """Some point of the headline metric has one repeat: its order rests on the threshold
        alone, since one repeat can't show how much the figure varies."""
        return any(len(p.values) < 2 for s in self.headline.series for p in s.points)


@dataclass(frozen=True)
class BreakEvenCurve:
    """A compiled series' break-even against eager (:class:`~harness.analysis.summary.BreakEven`)
    at each value of the varied key where both modes finished."""

    series: str
    points: tuple[tuple[float, BreakEven], ...]


def break_even_rows(analysis: KeyAnalysis) -> list[tuple[str, list[str]]]:
    """Each break-even curve as a table row: its series, then ``steps / samples`` per value."""
    rows = []
    for curve in analysis.break_evens:
        found = dict(curve.points)
        cells = [found[x].describe() if x in found else "" for x in analysis.values]
        rows.append((curve.series, cells))
    return rows


def break_even_curves(rows: list[dict[str, Any]], key: str) -> list[BreakEvenCurve]:
    """For each framework (and precision, device, other varied keys) run in both modes, the
    compiled mode's break-even at each value of ``key``, from the rows' medians."""
    curves: dict[str, list[tuple[float, BreakEven]]] = {}
    # rows that say which cell they are (a row read from a run folder always does)
    cells = [row for row in rows if {"task", "framework", "device"} <= row.keys()]
    for group in summarise(cells):
        x = _x(group.rows[0], key)
        if group.break_even is None or x is None:
            continue
        others = {k: v for k, v in group.rows[0]["variant"].items() if k != key}
        label = f"{group.label} ({mode_label(group.mode, group.precision)})"
        label += f" {variant_label(others)}" if others else ""
        curves.setdefault(label, []).append((x, group.break_even))
    return [
        BreakEvenCurve(label, tuple(sorted(points, key=lambda p: p[0])))
        for label, points in curves.items()
    ]


def is_label(key: str) -> bool:
    """Whether a varied key's values name things rather than measure an amount (``seed``)."""
    return key.rsplit(".", 1)[-1] in LABEL_KEYS


#: keys whose numbers are labels: a log-log slope or a fit over them means nothing
LABEL_KEYS = frozenset({"seed", "name", "kind", "activation", "padding", "loss"})


def analyse(rows: list[dict[str, Any]], threshold: float = THRESHOLD) -> list[KeyAnalysis]:
    """One analysis per varied key with at least two numeric values among the finished rows,
    for keys whose values measure an amount (a seed is a label, not an amount: no curve)."""
    done = [_with_mean_step(row) for row in rows if row["status"] == "ok" and row.get("variant")]
    keys = [
        key
        for key in dict.fromkeys(key for row in done for key in row["variant"])
        if not is_label(key)
    ]
    found = []
    for key in keys:
        values = sorted(x for x in {_x(row, key) for row in done} if x is not None)
        if len(values) < 2:
            continue
        found.append(_analyse_key(done, key, values, threshold))
    return found


def _with_mean_step(row: dict[str, Any]) -> dict[str, Any]:
    """The row with ``step_seconds_mean``: a steady epoch (else the mean epoch) over its steps.

    Sampled step percentiles need 17 steps an epoch (every 32nd step is timed, from the
    16th), which a sweep's large batches on few samples don't have; the mean always exists.
    """
    metrics = row["metrics"]
    batch = row["variant"].get("training.batch_size") or metrics.get("batch_size")
    samples = metrics.get("train_samples")
    epoch = metrics.get("steady_epoch_seconds")
    if epoch is None and _finite(metrics.get("fit_seconds")) and metrics.get("epochs"):
        epoch = metrics["fit_seconds"] / metrics["epochs"]
    if not (_finite(batch) and _finite(samples) and _finite(epoch)) or batch <= 0:
        return row
    steps = math.ceil(samples / batch)
    return {**row, "metrics": {**metrics, "step_seconds_mean": epoch / steps}}


def _x(row: dict[str, Any], key: str) -> float | None:
    value = row["variant"].get(key)
    if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
        return None  # a text value, or one a logarithmic axis can't show
    return float(value)


def _analyse_key(
    rows: list[dict[str, Any]], key: str, values: list[float], threshold: float
) -> KeyAnalysis:
    work = key in WORK_KEYS
    specs = WORK_METRICS if work else SIZE_METRICS
    if not work and any(row["metrics"].get(specs[0].name) is None for row in rows):
        specs = (WHOLE_FIT_THROUGHPUT, *specs[1:])
    grouped = _by_series(rows, key)
    curves = []
    for spec in specs:
        series = [_series(label, members, key, spec.name) for label, members in grouped.items()]
        series = [each for each in series if each.points]
        if series:
            curves.append(MetricCurves(spec, series))
    analysis = KeyAnalysis(key, values, work, curves)
    if curves:
        headline = curves[0]
        for a, b in itertools.combinations(headline.series, 2):
            found = crossover(a, b, headline.spec, key, threshold)
            if found is not None:
                analysis.crossovers.append(found)
    if work:
        analysis.fits = cost_fits(grouped)
    analysis.break_evens = break_even_curves(rows, key)
    return analysis


def _by_series(rows: list[dict[str, Any]], key: str) -> dict[str, list[dict[str, Any]]]:
    """Rows per framework and mode, and per the values of the other varied keys."""
    grouped: dict[str, list[dict[str, Any]]] = {}
    for row in rows:
        others = {k: v for k, v in row["variant"].items() if k != key}
        label = f"{row['framework']} ({mode_label(row.get('mode', 'eager'), row.get('precision'))})"
        if environment_of(row):  # a --with environment's rows are a series of their own
            label += f" [{environment_of(row)}]"
        if row.get("device") not in (None, "cpu"):
            label += f" {row['device']}"
        if others:
            label += f" {variant_label(others)}"
        grouped.setdefault(label, []).append(row)
    return grouped


def _series(label: str, rows: list[dict[str, Any]], key: str, metric: str) -> Series:
    by_x: dict[float, list[dict[str, Any]]] = {}
    for row in rows:
        x = _x(row, key)
        if x is not None and _finite(row["metrics"].get(metric)):
            by_x.setdefault(x, []).append(row)
    points = tuple(
        Point(
            x,
            tuple(float(row["metrics"][metric]) for row in members),
            any(row.get("met_target") is False for row in members),
        )
        for x, members in sorted(by_x.items())
    )
    return Series(label, points, rows[0]["framework"], rows[0].get("mode", "eager"))


def _finite(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def cost_fits(grouped: dict[str, list[dict[str, Any]]]) -> list[CostFit]:
    """Each series' fixed and marginal cost, per part of the training time that was measured."""
    fits = []
    for label, rows in grouped.items():
        one_epoch = all(row["metrics"].get("epochs") == 1 for row in rows)
        for metric, x_label, part in FIT_PARTS:
            if one_epoch and metric == "first_epoch_seconds":
                continue  # the fit itself: the same line again
            xs, ys = [], []
            for row in rows:
                metrics = row["metrics"]
                samples = metrics.get("train_samples")
                if not _finite(samples) or not _finite(metrics.get(metric)):
                    continue
                if metric == "fit_seconds":
                    samples *= metrics.get("epochs") or 1
                xs.append(float(samples))
                ys.append(float(metrics[metric]))
            fit = linear_fit(xs, ys)
            if fit is not None:
                fits.append(CostFit(label, part, x_label, fit))
    return fits


def to_json(analyses: list[KeyAnalysis]) -> list[dict[str, Any]]:
    """The analyses as plain data, for ``harness show --scaling --json``."""
    return [
        {
            "key": analysis.key,
            "values": analysis.values,
            "work": analysis.work,
            "metrics": [_curves_json(curves) for curves in analysis.curves],
            "crossovers": [
                _crossover_json(found, analysis.headline.spec.name) for found in analysis.crossovers
            ],
            "fits": [_fit_json(cost) for cost in analysis.fits],
            "break_even": [
                {
                    "series": curve.series,
                    "points": [
                        {"x": x, "steps": found.steps, "samples": found.samples}
                        for x, found in curve.points
                    ],
                }
                for curve in analysis.break_evens
            ],
        }
        for analysis in analyses
    ]


def _curves_json(curves: MetricCurves) -> dict[str, Any]:
    return {
        "metric": curves.spec.name,
        "label": curves.spec.label,
        "higher_is_better": curves.spec.higher_is_better,
        "series": [
            {
                "label": series.label,
                "points": [
                    {
                        "x": point.x,
                        "values": list(point.values),
                        "median": point.median,
                        "missed_target": point.missed_target,
                    }
                    for point in series.points
                ],
                "loglog_slopes": [
                    {"from": x0, "to": x1, "slope": slope} for x0, x1, slope in series.slopes()
                ],
            }
            for series in curves.series
        ],
    }


def _crossover_json(found: Crossover, metric: str) -> dict[str, Any]:
    return {
        "a": found.a,
        "b": found.b,
        "metric": metric,
        "crosses": found.crosses,
        "crossings": [list(pair) for pair in found.crossings()],
        "segments": [{"order": s.order, "from": s.first, "to": s.last} for s in found.segments],
        "sentence": found.sentence,
    }


def _fit_json(cost: CostFit) -> dict[str, Any]:
    return {
        "series": cost.series,
        "part": cost.part,
        "x": cost.x_label,
        "fixed_seconds": cost.fit.intercept,
        "fixed_ci": cost.fit.intercept_ci,
        "marginal_seconds_per_sample": cost.fit.slope,
        "marginal_ci": cost.fit.slope_ci,
        "r_squared": cost.fit.r_squared,
        "points": cost.fit.points,
    }
