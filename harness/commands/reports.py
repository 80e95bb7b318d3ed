"""The commands that read finished runs: ``harness report``, ``harness runs``, ``harness compare``."""

from __future__ import annotations

from pathlib import Path

import click
from rich.markup import escape
from rich.table import Table

from harness import report as reports
from harness.compare import compare_runs, environment_differences, unmatched
from harness.console import console, errors, styled
from harness.locking import run_folder_lock
from harness.runs import Run, UnreadableRun, latest_run, open_run, scan_runs

RESULTS_OPTION = click.option(
    "--results",
    type=click.Path(path_type=Path),
    default=Path("results"),
    show_default=True,
    help="The folder that holds the run folders.",
)
THRESHOLD_OPTION = click.option(
    "--threshold",
    type=click.FloatRange(0, 10),
    default=0.1,
    show_default=True,
    help="Smallest relative change that counts (0.1 = 10 %).",
)


def _run(path: Path | None, results: Path) -> Run:
    return open_run(path) if path is not None else latest_run(results)


@click.command("report")
@click.argument("run_dir", required=False, type=click.Path(path_type=Path))
@click.option(
    "--against",
    type=click.Path(path_type=Path),
    default=None,
    metavar="RUN_DIR",
    help="Also compare with this earlier run, in the report.",
)
@RESULTS_OPTION
@THRESHOLD_OPTION
def report_command(run_dir, against, results, threshold) -> None:
    """Write report.md and report.html into RUN_DIR (default: the latest run)."""
    run = _run(run_dir, results)
    earlier = open_run(against) if against else None
    with run_folder_lock(run.dir.path, "harness report"):
        markdown, html = reports.build(run, earlier, threshold)
    console.print(f"report: {markdown}\n        {html}")


@click.command("runs")
@RESULTS_OPTION
def runs_command(results) -> None:
    """List the runs in the results folder, oldest first."""
    table = Table(title=f"runs in {results}")
    unreadable: list[UnreadableRun] = []
    for column in ("run", "date", "task", "frameworks", "modes", "cells", "host"):
        table.add_column(column)
    for run in scan_runs(results):
        if isinstance(run, UnreadableRun):
            table.add_row(run.run_id, "", "", "", "", styled(("unreadable", "red")), "")
            unreadable.append(run)
            continue
        statuses = [row["status"] for row in run.rows]
        cells = f"{statuses.count('ok')} ok" + "".join(
            f", {statuses.count(s)} {s}" for s in ("failed", "skipped") if s in statuses
        )
        table.add_row(
            run.run_id,
            (run.environment.get("recorded_at") or "")[:16].replace("T", " "),
            run.task_name,
            ", ".join(run.config.get("frameworks", [])),
            ", ".join(run.config.get("modes", ["eager"])),
            cells,
            str(run.environment.get("hostname", "")),
        )
    console.print(table)
    for run in unreadable:
        errors.print(f"unreadable: {run.reason}")


@click.command("compare")
@click.argument("run_a", type=click.Path(path_type=Path))
@click.argument("run_b", type=click.Path(path_type=Path))
@THRESHOLD_OPTION
@click.option(
    "--fail-on-regression",
    is_flag=True,
    help="Exit with code 4 when any cell regressed beyond the threshold (for CI).",
)
def compare_command(run_a, run_b, threshold, fail_on_regression) -> None:
    """Compare RUN_B with RUN_A, cell by cell: ratio B/A of the medians and a verdict per metric.

    A change is a regression (or an improvement) when it is at least the threshold and at least
    90 % of the pairs of repeats agree on its direction; Mann-Whitney U p-values are shown when
    both runs have two or more repeats. Exit codes: 0, or 4 with --fail-on-regression when a
    cell regressed.
    """
    first, second = open_run(run_a), open_run(run_b)
    comparisons = compare_runs(first, second, threshold=threshold)
    table = Table(title=f"{second.run_id} / {first.run_id}")
    for column in ("cell", "metric", "A", "B", "B/A", "B worse in", "p", "verdict"):
        table.add_column(
            column, justify="right" if column in ("A", "B", "B/A", "B worse in", "p") else "left"
        )
    style = {"regression": "bold red", "improvement": "green", "inconclusive": "yellow"}
    for cell in comparisons:
        for metric in cell.metrics:
            a, b = sorted(metric.a)[len(metric.a) // 2], sorted(metric.b)[len(metric.b) // 2]
            table.add_row(
                escape(f"{cell.task}/{cell.framework}/{cell.mode}/{cell.device}"),
                metric.label,
                f"{a:.4g}",
                f"{b:.4g}",
                f"{metric.ratio:.3f}",
                f"{metric.worse_share:.0%}",
                "" if metric.p_value is None else f"{metric.p_value:.3f}",
                f"[{style[metric.verdict]}]{metric.verdict}[/]"
                if metric.verdict in style
                else metric.verdict,
            )
    console.print(table)
    only_a, only_b = unmatched(first, second)
    for label, cells in ((f"only in {first.run_id}", only_a), (f"only in {second.run_id}", only_b)):
        if cells:
            console.print(f"{label}: {escape(', '.join(cells))}", highlight=False)
    differences = environment_differences(first, second)
    if differences:
        console.print("environment differences:", highlight=False)
        for key, (a, b) in differences.items():
            console.print(f"  {escape(key)}: {escape(str(a))} → {escape(str(b))}", highlight=False)
    else:
        console.print("environments: no differences", highlight=False)
    regressions = [(cell, m) for cell in comparisons for m in cell.regressions]
    if regressions:
        console.print(f"[bold red]{len(regressions)} regression(s)[/] beyond {threshold:.0%}")
        if fail_on_regression:
            raise SystemExit(4)
