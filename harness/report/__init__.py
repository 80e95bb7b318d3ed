"""Reports of a run: ``report.md`` (readable on GitHub) and ``report.html`` (one offline file).

Both are rendered only from the run folder's files. The HTML inlines its CSS and its SVG charts,
loads nothing from the network, runs no script, and escapes every string that came from a task
file or a plugin (Jinja2 autoescaping).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jinja2

from harness import __version__
from harness.compare import CellComparison, compare_runs, environment_differences, unmatched
from harness.report import charts
from harness.runs import Run
from harness.summary import Group, flagged_rows, summarise, summary_line
from harness.tasks import Target

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
    charts: list[charts.Chart]


@dataclass
class Comparison:
    against: str
    cells: list[CellComparison]
    only_a: list[str]
    only_b: list[str]
    environment: dict[str, tuple[Any, Any]]


METRIC_LABELS = {"test_accuracy": "test accuracy", "test_mse": "test MSE"}


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
                charts=charts.task_charts(members, target),
            )
        )
    return result


def build(run: Run, against: Run | None = None, threshold: float = 0.1) -> tuple[Path, Path]:
    """Write ``report.md``, ``report.html`` and the chart files into the run folder."""
    task_sections = sections(run)
    context: dict[str, Any] = {
        "run": run,
        "version": __version__,
        "sections": task_sections,
        "flagged": flagged_rows(run.rows),
        "environment": run.environment,
        "config": run.config,
        "comparison": None,
        "threshold": threshold,
    }
    if against is not None:
        only_a, only_b = unmatched(against, run)
        context["comparison"] = Comparison(
            against=against.run_id,
            cells=compare_runs(against, run, threshold=threshold),
            only_a=only_a,
            only_b=only_b,
            environment=environment_differences(against, run),
        )
    folder = run.dir.path
    chart_dir = folder / CHARTS_DIR
    chart_dir.mkdir(exist_ok=True)
    for section in task_sections:
        for stem, _, svg in section.charts:
            _write(chart_dir / f"{section.name}-{stem}.svg", svg)
    environment = jinja2.Environment(
        loader=jinja2.PackageLoader("harness.report", "templates"),
        autoescape=jinja2.select_autoescape(enabled_extensions=("html",), default=False),
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    environment.filters["md"] = _markdown_cell
    markdown = environment.get_template("report.md").render(**context, charts_dir=CHARTS_DIR)
    html = environment.get_template("report.html").render(**context)
    _write(folder / MARKDOWN_FILE, markdown)
    _write(folder / HTML_FILE, html)
    return folder / MARKDOWN_FILE, folder / HTML_FILE


def _markdown_cell(value: object) -> str:
    """Text safe inside a Markdown table cell: no pipes, no newlines, no raw HTML."""
    text = "" if value is None else str(value)
    text = text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    return text.replace("|", "\\|").replace("\n", " ")


def _write(path: Path, text: str) -> None:
    temporary = path.with_name(f".{path.name}.tmp")
    temporary.write_text(text, encoding="utf-8")
    os.replace(temporary, path)
