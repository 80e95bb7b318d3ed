"""Reports of a run: ``report.md`` (readable on GitHub) and ``report.html`` (one offline file).

Both are rendered only from the run folder's files. The HTML inlines its CSS and its SVG charts,
loads nothing from the network, runs no script, and escapes every string that came from a task
file or a plugin (Jinja2 autoescaping). The Markdown escapes every value it interpolates too
(each ``{{ }}`` passes through :func:`markdown_text`), and chart file names come from
:func:`harness.paths.safe_name`, so no name from a file reaches outside ``charts/``.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jinja2

from harness import __version__
from harness.analysis import scaling
from harness.analysis.compare import (
    CellComparison,
    NothingToCompare,
    StatusRegression,
    check_comparable,
    compare_runs,
    environment_differences,
    is_busy,
    status_regressions,
    unmatched,
)
from harness.analysis.runs import Run
from harness.analysis.summary import Group, flagged_rows, summarise, summary_line
from harness.paths import safe_name, write_atomically
from harness.present.columns import COLUMNS, headers
from harness.present.report import charts
from harness.workload.tasks import Target
from harness.workload.variants import short_key

MARKDOWN_FILE = "report.md"
HTML_FILE = "report.html"
CHARTS_DIR = "charts"


@dataclass
class TaskSection:
    name: str
    target: str
    metric_label: str
    groups: list[Group]
    lines: list[dict[str, str]]
    #: (file name under charts/, caption, svg text)
    charts: list[charts.Chart]


@dataclass
class Comparison:
    against: str
    cells: list[CellComparison]
    only_a: list[str]
    only_b: list[str]
    environment: dict[str, tuple[Any, Any]]
    #: cells that finished in the earlier run and failed, were skipped or are missing in this one
    lost: list[StatusRegression]
    #: why nothing could be compared (another task, no cell in common), else ``None``
    nothing: str | None = None


@dataclass
class CurveTable:
    """One metric of a sweep as the reports tabulate it: medians, then log-log slopes."""

    label: str
    headers: list[str]
    rows: list[tuple[str, list[str]]]
    slope_headers: list[str]
    slope_rows: list[tuple[str, list[str]]]


@dataclass
class ScalingSection:
    """A sweep's analysis of one varied key, with its tables and charts."""

    name: str
    analysis: scaling.KeyAnalysis
    tables: list[CurveTable]
    charts: list[charts.Chart]
    #: compile break-even per series and value (:func:`harness.analysis.scaling.break_even_rows`)
    break_even: list[tuple[str, list[str]]]
    #: the varied key's values as the tables head their columns
    value_headers: list[str]


def scaling_sections(run: Run) -> list[ScalingSection]:
    """One section per key the run varied over at least two values; none without a sweep."""
    return [
        ScalingSection(
            name=short_key(analysis.key),
            analysis=analysis,
            tables=[curve_table(curves, analysis.values) for curves in analysis.curves],
            charts=[
                (chart_file_name(run.task_name, stem), caption, svg)
                for stem, caption, svg in charts.scaling_charts(analysis)
            ],
            break_even=scaling.break_even_rows(analysis),
            value_headers=[scaling.format_x(x) for x in analysis.values],
        )
        for analysis in scaling.analyse(run.rows)
    ]


def curve_table(curves: scaling.MetricCurves, values: list[float]) -> CurveTable:
    pairs = list(itertools.pairwise(values))
    found = scaling.curve_rows(curves, values)
    rows = [
        (row.label, ["" if m is None else m[0] + (" ✗" if m[1] else "") for m in row.medians])
        for row in found
    ]
    slope_rows = [(row.label, row.slopes) for row in found]
    return CurveTable(
        label=f"{curves.spec.label} ({curves.spec.unit})",
        headers=[scaling.format_x(x) for x in values],
        rows=rows,
        slope_headers=[f"{scaling.format_x(a)}→{scaling.format_x(b)}" for a, b in pairs],
        slope_rows=slope_rows,
    )


METRIC_LABELS = {
    "test_accuracy": "test accuracy",
    "test_mse": "test MSE",
    "test_bits_per_char": "test bits per character",
}


def run_target(run: Run) -> Target:
    """The target of the run's task, as its configuration recorded it."""
    recorded = run.config.get("task", {}).get("target") or {"min": 0.0}
    return Target.model_validate(recorded)


def sections(run: Run) -> list[TaskSection]:
    groups = summarise(run.rows)
    target = run_target(run)
    result = []
    for task in dict.fromkeys(group.task for group in groups):
        members = [group for group in groups if group.task == task]
        result.append(
            TaskSection(
                name=task,
                target=target.describe(),
                metric_label=METRIC_LABELS[target.metric],
                groups=members,
                lines=[summary_line(group, target) for group in members],
                charts=[
                    (chart_file_name(task, stem), caption, svg)
                    for stem, caption, svg in charts.task_charts(members, target)
                ],
            )
        )
    return result


@dataclass
class ProfileSection:
    """Where a profiled step's time goes (``harness run --profile``): a row of shares per
    profiled cell, a sentence per cell and the stacked-bar chart."""

    headers: list[str]
    rows: list[tuple[str, list[str]]]
    sentences: list[str]
    charts: list[charts.Chart]


def profile_section(run: Run) -> ProfileSection | None:
    """The run's profiles as a section; ``None`` for a run made without ``--profile``."""
    from harness.api.profiling import CATEGORIES
    from harness.checks.profiling import read_profiles
    from harness.present.profile import HEADINGS, cell_label, sentence

    profiles = read_profiles(run.dir.path)
    if not profiles:
        return None
    rows = []
    for profile in profiles:
        metrics = profile["metrics"]
        if profile["status"] != "ok" or "shares" not in metrics:
            rows.append((cell_label(profile), [profile["status"]] + [""] * (len(CATEGORIES) + 1)))
            continue
        slowdown = metrics.get("profiler_slowdown")
        rows.append(
            (
                cell_label(profile),
                [f"{metrics['measured_seconds_per_step'] * 1e3:.2f}"]
                + [f"{metrics['shares'].get(name, 0.0):.0%}" for name in CATEGORIES]
                + [f"{slowdown:.2f}" if slowdown else ""],
            )
        )
    chart = (
        "step-breakdown.svg",
        "share of a profiled step by category",
        charts.step_breakdown(profiles),
    )
    return ProfileSection(
        headers=["ms", *(HEADINGS[name] for name in CATEGORIES), "×"],
        rows=rows,
        sentences=[sentence(profile) for profile in profiles],
        charts=[chart],
    )


def build(run: Run, against: Run | None = None, threshold: float = 0.1) -> tuple[Path, Path]:
    """Write ``report.md``, ``report.html`` and the chart files into the run folder."""
    task_sections = sections(run)
    sweep = scaling_sections(run)
    profile = profile_section(run)
    context: dict[str, Any] = {
        "run": run,
        "version": __version__,
        "sections": task_sections,
        "flagged": flagged_rows(run.rows),
        "busy": [row for row in run.rows if is_busy(row)],
        "environment": run.environment,
        "environment_shown": environment_shown(run.environment),
        # figures with spaces in them (``0.52 / 0.61 / 0.80``) stay on one line
        "nowrap": NOWRAP,
        "config": run.config,
        "comparison": None,
        "threshold": threshold,
        "scaling": sweep,
        "profile": profile,
        "agreement": agreement_summary(run.rows),
        # each variant of a sweep has a section of its own, named for it
        "columns": [column for column in COLUMNS if column.key != "variant"],
        "column_headers": headers(run_target(run)),
    }
    if against is not None:
        only_a, only_b = unmatched(against, run)
        try:
            check_comparable(against, run)
            nothing = None
        except NothingToCompare as exc:
            nothing = str(exc)
        context["comparison"] = Comparison(
            against=against.run_id,
            cells=compare_runs(against, run, threshold=threshold),
            only_a=only_a,
            only_b=only_b,
            environment=environment_differences(against, run),
            lost=status_regressions(against, run),
            nothing=nothing,
        )
    folder = run.dir.path
    chart_dir = folder / CHARTS_DIR
    chart_dir.mkdir(exist_ok=True)
    charts_made = [chart for part in task_sections for chart in part.charts]
    charts_made += [chart for part in sweep for chart in part.charts]
    charts_made += profile.charts if profile is not None else []
    for file_name, _, svg in charts_made:
        write_atomically(chart_dir / file_name, svg)
    markdown = _templates(markdown_text).get_template("report.md")
    html = _templates(_html_text).get_template("report.html")
    write_atomically(folder / MARKDOWN_FILE, markdown.render(**context, charts_dir=CHARTS_DIR))
    write_atomically(folder / HTML_FILE, html.render(**context))
    return folder / MARKDOWN_FILE, folder / HTML_FILE


#: summary columns whose figures hold spaces and must not wrap in report.html
NOWRAP = frozenset({"steps", "fit", "first_epoch", "steady_epoch", "to_target", "memory"})


def environment_shown(environment: dict[str, Any]) -> dict[str, Any]:
    """The recorded environment as the reports show it: byte counts in GiB or MiB
    (``memory_bytes`` 25275990016 is ``memory`` 23.5 GiB)."""
    shown: dict[str, Any] = {}
    for key, value in environment.items():
        if key.endswith("_bytes") and _is_count(value):
            shown[key.removesuffix("_bytes")] = format_bytes(value)
        else:
            shown[key] = value
    return shown


def _is_count(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def format_bytes(count: float) -> str:
    """``23.5 GiB`` from 1 GiB up, else ``578 MiB`` (the MiB the results table shows)."""
    if count >= 2**30:
        return f"{count / 2**30:,.1f} GiB"
    return f"{count / 2**20:,.0f} MiB"


def chart_file_name(task: str, stem: str) -> str:
    """``<task>-<stem>.svg``, safe whatever the task's name (it comes from a results file)."""
    return safe_name(f"{task}-{stem}") + ".svg"


def agreement_summary(rows: list[dict[str, Any]]) -> str:
    """The agreement verdicts the rows carry, per framework, for the Environment section."""
    verdicts = {
        f"{row['framework']}: {row['agreement']}"
        for row in rows
        if row.get("agreement") is not None
    }
    if not verdicts:
        return "not checked (harness check-agreement --task TASK checks it)"
    return ", ".join(sorted(verdicts))


def _templates(finalize: Callable[[Any], Any]) -> jinja2.Environment:
    """Every ``{{ value }}`` passes through ``finalize``: the one place values are escaped."""
    return jinja2.Environment(
        loader=jinja2.PackageLoader("harness.present.report", "templates"),
        autoescape=jinja2.select_autoescape(enabled_extensions=("html",), default=False),
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        finalize=finalize,
    )


def markdown_text(value: object) -> str:
    """Text safe inside Markdown (a table cell too): no raw HTML, pipes, newlines, links or code.

    Emphasis characters (``_``, ``*``) are left alone: at worst they change a font, and
    escaping them would make every ``mnist_mlp`` in the raw file read ``mnist\\_mlp``.
    """
    text = "" if value is None else str(value)
    text = text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    text = re.sub(r"([\\`\[\]|])", r"\\\1", text)
    return re.sub(r"\s*[\r\n]+\s*", " ", text)


def _html_text(value: object) -> object:
    """None renders as nothing, not "None"; autoescaping does the rest."""
    return "" if value is None else value
