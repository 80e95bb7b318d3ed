"""The report's plots, drawn with matplotlib as standalone SVG.

Text is drawn as paths (matplotlib's default ``svg.fonttype``), so a chart needs no font and
no network, and a label that came from a task file can't become markup in the page.
"""

from __future__ import annotations

import io
import re
from collections.abc import Callable
from typing import Any

import matplotlib

matplotlib.use("Agg")  # no display: render to files only

import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

from harness.analysis.scaling import KeyAnalysis, MetricCurves, format_x  # noqa: E402
from harness.analysis.summary import Group, mode_label  # noqa: E402
from harness.paths import safe_name  # noqa: E402
from harness.workload.tasks import Target  # noqa: E402
from harness.workload.variants import short_key  # noqa: E402

Chart = tuple[str, str, str]  # (file stem, caption, svg text)


def _label(group: Group) -> str:
    return f"{group.label} ({mode_label(group.mode, group.precision)})"


def _svg(figure: Figure) -> str:
    buffer = io.StringIO()
    figure.savefig(buffer, format="svg", bbox_inches="tight", metadata={"Date": None})
    plt.close(figure)
    text = buffer.getvalue()
    text = text[text.index("<svg") :]  # drop the XML prolog and doctype: the SVG goes inline
    # matplotlib keeps each label's text in an XML comment; labels can come from plugins, and
    # the glyphs are drawn as paths anyway
    text = re.sub(r"<!--.*?-->", "", text, flags=re.DOTALL)
    return re.sub(r"<metadata>.*?</metadata>", "", text, flags=re.DOTALL)  # RDF, not needed inline


def quality_over_time(groups: list[Group], target: Target) -> str:
    """Validation accuracy (or mean squared error) after each epoch against cumulative training
    time, per repeat."""
    figure, axes = plt.subplots(figsize=(7, 4))
    for index, group in enumerate(groups):
        color = f"C{index % 10}"
        for repeat, row in enumerate(group.done):
            metrics = row["metrics"]
            # runs made before regression tasks existed call the scores validation_accuracies
            accuracies = (
                metrics.get("validation_scores") or metrics.get("validation_accuracies") or []
            )
            if not accuracies or accuracies[0] is None:
                continue
            elapsed, times = 0.0, []
            for seconds in metrics["epoch_seconds"]:
                elapsed += seconds
                times.append(elapsed)
            axes.plot(
                times,
                accuracies,
                marker="o",
                color=color,
                label=_label(group) if repeat == 0 else None,
                alpha=0.9 if repeat == 0 else 0.4,
            )
    axes.axhline(
        target.threshold,
        color="grey",
        linestyle="--",
        linewidth=1,
        label=f"target {target.threshold:g}",
    )
    axes.set_xlabel("training time (s, evaluation excluded)")
    axes.set_ylabel(f"validation {target.validation_metric}")
    if not target.higher_is_better:
        axes.set_yscale("log")
    axes.grid(alpha=0.3)
    axes.legend(fontsize="small")
    return _svg(figure)


def epoch_times(groups: list[Group]) -> str:
    """Median seconds of each epoch over the repeats: the first epoch's compilation shows."""
    figure, axes = plt.subplots(figsize=(7, 4))
    for index, group in enumerate(groups):
        per_epoch = [row["metrics"]["epoch_seconds"] for row in group.done]
        if not per_epoch:
            continue
        epochs = min(len(seconds) for seconds in per_epoch)
        medians = [sorted(s[e] for s in per_epoch)[len(per_epoch) // 2] for e in range(epochs)]
        axes.plot(
            range(1, epochs + 1), medians, marker="o", color=f"C{index % 10}", label=_label(group)
        )
    axes.set_xlabel("epoch")
    axes.set_ylabel("seconds")
    axes.set_ylim(bottom=0)
    axes.grid(alpha=0.3)
    axes.legend(fontsize="small")
    return _svg(figure)


def _bars(groups: list[Group], value: Callable[[Group], float | None], xlabel: str) -> str:
    shown = [(g, v) for g in groups if (v := value(g)) is not None]
    figure, axes = plt.subplots(figsize=(7, 0.5 + 0.45 * max(len(shown), 1)))
    labels = [_label(g) for g, _ in shown]
    values = [v for _, v in shown]
    axes.barh(labels, values, color=[f"C{i % 10}" for i in range(len(shown))])
    axes.invert_yaxis()
    for position, amount in enumerate(values):
        axes.annotate(f" {amount:,.0f}", (amount, position), va="center", fontsize="small")
    axes.set_xlabel(xlabel)
    axes.grid(axis="x", alpha=0.3)
    return _svg(figure)


def peak_memory(groups: list[Group]) -> str:
    def mebibytes(group: Group) -> float | None:
        value = group.median("peak_rss_bytes")
        return None if value is None else value / 2**20

    return _bars(groups, mebibytes, "peak RSS of the cell's process (MiB, median)")


def throughput(groups: list[Group]) -> str:
    return _bars(
        groups, lambda g: g.median("samples_per_second"), "training samples per second (median)"
    )


def task_charts(groups: list[Group], target: Target) -> list[Chart]:
    """Every chart for one task's groups, as (file stem, caption, svg)."""
    if not any(group.done for group in groups):
        return []
    return [
        (
            "to-target",
            f"Validation {target.validation_metric} against training time "
            "(the time-to-target picture)",
            quality_over_time(groups, target),
        ),
        ("epochs", "Time per epoch (median over repeats)", epoch_times(groups)),
        ("memory", "Peak memory", peak_memory(groups)),
        ("throughput", "Throughput", throughput(groups)),
    ]


#: how a point where a repeat missed the task's target is marked
RINGED: dict[str, Any] = {
    "s": 140,
    "facecolors": "none",
    "edgecolors": "red",
    "linewidths": 1.5,
    "zorder": 3,
}


def scaling_charts(analysis: KeyAnalysis) -> list[Chart]:
    """One log-log chart per metric of a sweep, as (file stem, caption, svg)."""
    name = short_key(analysis.key)
    return [
        (
            f"scaling-{safe_name(analysis.key)}-{curves.spec.name}",
            f"{curves.spec.label} ({curves.spec.unit}) against {name}, log-log",
            scaling_chart(curves, name),
        )
        for curves in analysis.curves
    ]


def scaling_chart(curves: MetricCurves, x_label: str) -> str:
    """Medians over repeats, one line per framework (colour) and mode (dashed: compiled);
    the points where a repeat finished below the target ringed in red."""
    figure, axes = plt.subplots(figsize=(7, 4))
    colours = {
        framework: f"C{i % 10}"
        for i, framework in enumerate(dict.fromkeys(series.framework for series in curves.series))
    }
    missed_any = False
    for series in curves.series:
        xs = [point.x for point in series.points]
        ys = [point.median * curves.spec.scale for point in series.points]
        axes.plot(
            xs,
            ys,
            marker="o",
            color=colours[series.framework],
            linestyle="--" if series.mode == "compiled" else "-",
            label=series.label,
        )
        missed = [
            (x, y) for point, x, y in zip(series.points, xs, ys, strict=True) if point.missed_target
        ]
        if missed:
            axes.scatter(*zip(*missed, strict=True), **RINGED)
            missed_any = True
    if missed_any:  # last in the legend, once
        axes.scatter([], [], label="a repeat below the target", **RINGED)
    axes.set_xscale("log")
    axes.set_yscale("log")
    values = sorted({point.x for series in curves.series for point in series.points})
    axes.set_xticks(values, [format_x(x) for x in values])
    axes.minorticks_off()
    axes.set_xlabel(x_label)
    axes.set_ylabel(f"{curves.spec.label} ({curves.spec.unit})")
    axes.grid(alpha=0.3, which="both")
    axes.legend(fontsize="small")
    return _svg(figure)


def step_breakdown(profiles: list[dict[str, Any]]) -> str:
    """One stacked bar per profiled cell: each category's share of its profiled step, the
    step's milliseconds at the end (``harness run --profile``)."""
    from harness.api.profiling import CATEGORIES
    from harness.present.profile import HEADINGS, cell_label

    shown = [p for p in profiles if p["status"] == "ok" and "shares" in p["metrics"]]
    figure, axes = plt.subplots(figsize=(7, 0.9 + 0.45 * max(len(shown), 1)))
    labels = [cell_label(p) for p in shown]
    left = [0.0] * len(shown)
    for index, name in enumerate(CATEGORIES):
        widths = [100 * float(p["metrics"]["shares"].get(name, 0.0)) for p in shown]
        # overhead hatched grey, unattributed white: the two shares outside any operation
        color = {"overhead": "0.55", "unattributed": "white"}.get(name, f"C{index}")
        axes.barh(labels, widths, left=left, color=color, edgecolor="0.3", linewidth=0.4,
                  hatch="//" if name == "overhead" else None, label=HEADINGS[name])  # fmt: skip
        left = [a + b for a, b in zip(left, widths, strict=True)]
    for position, profile in enumerate(shown):
        step = profile["metrics"]["measured_seconds_per_step"] * 1e3
        axes.annotate(f" {step:.2f} ms", (100, position), va="center", fontsize="small")
    axes.invert_yaxis()
    axes.set_xlim(0, 118)
    axes.set_xticks(range(0, 101, 20))
    axes.set_xlabel("share of a profiled step (%)")
    # below the axis label, the same distance for any number of bars (axes fractions shrink)
    below = 0.45 / (0.45 * max(len(shown), 1))
    axes.legend(fontsize="small", ncols=4, loc="upper center", bbox_to_anchor=(0.5, -below))
    return _svg(figure)


def history_chart(series: Any) -> str:
    """One series of ``harness history``: each point's repeats and median, oldest on the left,
    a change point marked where it starts (red triangle up: slower; green down: faster)."""
    points = series.points
    figure, axes = plt.subplots(figsize=(7, 3.2))
    positions = range(len(points))
    for position, point in zip(positions, points, strict=True):
        axes.scatter([position] * len(point.seconds), point.seconds, s=12, color="0.55")
    medians = [(i, p.median) for i, p in zip(positions, points, strict=True) if p.median]
    axes.plot([i for i, _ in medians], [m for _, m in medians], color="C0", marker="o")
    for change in series.changes:
        at = points.index(change.after)
        slower = change.verdict == "regression"
        axes.scatter([at], [change.after.median], s=120, zorder=3,
                     marker="^" if slower else "v", color="C3" if slower else "C2")  # fmt: skip
    axes.set_xticks(list(positions))
    labels = [f"{p.started_at[5:16].replace('T', ' ')}\n{p.version}" for p in points]
    axes.set_xticklabels(labels, fontsize="x-small", rotation=30, ha="right")
    axes.set_ylabel("s / epoch")
    axes.set_ylim(bottom=0)
    return _svg(figure)
