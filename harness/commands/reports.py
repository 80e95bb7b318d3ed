"""The commands that read finished runs: ``harness report``, ``harness runs``, ``harness compare``."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import click
from rich.table import Table

from harness.analysis.compare import (
    BUSY_VERDICT,
    check_comparable,
    compare_runs,
    environment_differences,
    status_regressions,
    unmatched,
)
from harness.analysis.runs import (
    Run,
    UnreadableRun,
    environment_part,
    latest_run,
    open_run,
    scan_runs,
)
from harness.commands.common import RESULTS_OPTION, FiniteRange
from harness.present import report as reports
from harness.present.console import console, errors, styled
from harness.store.locking import run_folder_lock

THRESHOLD_OPTION = click.option(
    "--threshold",
    type=FiniteRange(0, 10),
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
@click.option("--json", "as_json", is_flag=True, help="Print the list as a JSON array.")
def runs_command(results, as_json) -> None:
    """List the runs in the results folder, oldest first."""
    found = [run_summary(run) for run in scan_runs(results)]
    if as_json:
        click.echo(json.dumps(found, indent=2))
        return
    table = Table(title=f"runs in {results}")
    for column in ("run", "date", "task", "frameworks", "modes", "cells", "host"):
        table.add_column(column, no_wrap=column == "run")
    for run in found:
        if not run["readable"]:
            table.add_row(run["run_id"], "", "", "", "", styled(("unreadable", "red")), "")
            continue
        cells = ", ".join(f"{count} {status}" for status, count in run["cells"].items() if count)
        table.add_row(
            run["run_id"],
            (run["recorded_at"] or "")[:16].replace("T", " "),
            run["task"],
            ", ".join(run["frameworks"]),
            ", ".join(run["modes"]),
            cells,
            run["host"],
        )
    console.print(table)
    for run in found:
        if not run["readable"]:
            errors.print(f"unreadable: {run['reason']}")


def run_summary(run: Run | UnreadableRun) -> dict[str, Any]:
    """What `harness runs` says of one run folder (its --json form too)."""
    if isinstance(run, UnreadableRun):
        return {
            "run_id": run.run_id,
            "path": str(run.path),
            "readable": False,
            "reason": run.reason,
        }
    statuses = [row["status"] for row in run.rows]
    return {
        "run_id": run.run_id,
        "path": str(run.dir.path),
        "readable": True,
        "recorded_at": run.environment.get("recorded_at"),
        "task": run.task_name,
        "frameworks": run.config["frameworks"],
        "modes": run.config["modes"],
        "cells": {status: statuses.count(status) for status in ("ok", "failed", "skipped")},
        "host": str(run.environment.get("hostname", "")),
    }


@click.command("compare")
@click.argument("run_a", type=click.Path(path_type=Path))
@click.argument("run_b", type=click.Path(path_type=Path), required=False)
@click.option(
    "--between",
    nargs=2,
    default=None,
    metavar="ENV_A ENV_B",
    help="Compare two --with environments of RUN_A with each other (give no RUN_B): their "
    "names as rows record them (jax==0.9.2; base for harness's own environment).",
)
@THRESHOLD_OPTION
@click.option(
    "--fail-on-regression",
    is_flag=True,
    help="Exit with code 4 when a cell regressed: worse beyond the threshold, or failed, "
    "skipped or missing where RUN_A finished it (for CI); with code 7 when nothing regressed "
    "but a change of time could not be judged because a machine was busy.",
)
@click.option(
    "--json", "as_json", is_flag=True, help="Print the comparison as JSON (same exit codes)."
)
def compare_command(run_a, run_b, between, threshold, fail_on_regression, as_json) -> None:
    """Compare RUN_B with RUN_A, cell by cell: ratio B/A of the medians and a verdict per metric.

    A change is a regression (or an improvement) when it is at least the threshold and at least
    90 % of the pairs of repeats agree on its direction; Mann-Whitney U p-values are shown when
    both runs have two or more repeats. A cell that finished in RUN_A but failed, was skipped or
    is missing in RUN_B is a regression too. A change of time in a cell whose machine was busy
    (in either run) is "inconclusive: busy machine", never a regression: rerun it on a quiet
    machine (see `harness doctor`). Exit codes: 0; 4 with --fail-on-regression when a
    cell regressed; 6 when the runs have no cell in common (another task, other frameworks) or
    no cell of RUN_A finished, so nothing could be compared; 7 with --fail-on-regression when
    no cell regressed but at least one change of time was "inconclusive: busy machine", so the
    gate judged less than it was asked to (--json exits with the same codes).

    With --between ENV_A ENV_B, the two are the parts of RUN_A that ran in two --with
    environments (harness run --with), under the same rules.
    """
    first, second = _runs_to_compare(run_a, run_b, between)
    check_comparable(first, second)
    comparisons = compare_runs(first, second, threshold=threshold)
    lost = status_regressions(first, second)
    if as_json:
        payload = comparison_json(first, second, comparisons, lost, threshold)
        click.echo(json.dumps(payload, indent=2, allow_nan=False))
        _gate(fail_on_regression, payload["regressions"], payload["inconclusive_busy"])
        return
    console.print(comparison_table(first, second, comparisons, lost))
    for gone in lost:
        console.print(
            styled(
                ("regression", VERDICT_STYLES["regression"]),
                f": {gone.cell}: {gone.a_state} in {first.run_id}, {gone.b_state} in "
                f"{second.run_id}: {gone.reason}",
            )
        )
    # cells that finished only in A are regressions, listed above; those only in B are new
    _, only_b = unmatched(first, second)
    if only_b:
        console.print(f"only in {second.run_id}: {', '.join(only_b)}")
    differences = environment_differences(first, second)
    if differences:
        console.print("environment differences:")
        for key, (a, b) in differences.items():
            console.print(f"  {key}: {_or_absent(a)} → {_or_absent(b)}")
    else:
        console.print("environments: no differences")
    print_busy_cells(first, second, comparisons, fail_on_regression)
    _print_profile_changes(first, second)
    slower = [(cell, m) for cell in comparisons for m in cell.regressions]
    if lost or slower:
        parts = [f"{len(lost)} cell(s) failed, skipped or missing"] if lost else []
        parts += [f"{len(slower)} metric(s) worse beyond {threshold:.0%}"] if slower else []
        count = f"{len(lost) + len(slower)} regression(s)"
        console.print(styled((count, "bold red"), f": {'; '.join(parts)}"))
    _gate(fail_on_regression, len(lost) + len(slower), sum(len(c.spoiled) for c in comparisons))


def _runs_to_compare(run_a: Path, run_b: Path | None, between) -> tuple[Run, Run]:
    """The two runs ``compare`` reads: two folders, or two environments of one (``--between``)."""
    if between and run_b is not None:
        raise click.UsageError("--between compares two environments of RUN_A: give no RUN_B")
    if between:
        run = open_run(run_a)
        return environment_part(run, between[0]), environment_part(run, between[1])
    if run_b is None:
        raise click.UsageError("give RUN_B, or --between ENV_A ENV_B to compare within RUN_A")
    return open_run(run_a), open_run(run_b)


def _print_profile_changes(first: Run, second: Run) -> None:
    """Where two profiled runs' steps differ (both made with ``--profile``): a line a cell."""
    from harness.analysis.profiles import profile_changes

    changes = profile_changes(first.dir.path, second.dir.path)
    if changes:
        console.print("step breakdown (one profiled pass each, not judged):")
        for change in changes:
            console.print(f"  {change.sentence()}", highlight=False)


#: --fail-on-regression: a cell regressed
REGRESSION_EXIT = 4
#: --fail-on-regression: nothing regressed, but a busy machine left a change of time unjudged
UNJUDGED_EXIT = 7


def _gate(fail_on_regression: bool, regressions: int, inconclusive_busy: int) -> None:
    """The CI gate's exit: 4 on a regression; 7 when none, but a busy machine left some
    change of time unjudged (a gate that passed would have judged nothing there)."""
    if not fail_on_regression:
        return
    if regressions:
        raise SystemExit(REGRESSION_EXIT)
    if inconclusive_busy:
        raise SystemExit(UNJUDGED_EXIT)


VERDICT_STYLES = {
    "regression": "bold red",
    "improvement": "green",
    "inconclusive": "yellow",
    BUSY_VERDICT: "yellow",
}


def comparison_table(first: Run, second: Run, comparisons, lost) -> Table:
    """One line per cell and metric, and one per cell lost since RUN_A."""
    style = VERDICT_STYLES
    table = Table(title=f"{second.run_id} / {first.run_id}")
    for column in ("cell", "metric", "A", "B", "B/A", "B worse in", "p", "verdict"):
        table.add_column(
            column, justify="right" if column in ("A", "B", "B/A", "B worse in", "p") else "left"
        )
    for gone in lost:
        verdict = styled(("regression", style["regression"]))
        table.add_row(gone.cell, "cells ok", gone.a_state, gone.b_state, "", "", "", verdict)
    for cell in comparisons:
        for metric in cell.metrics:
            a, b = sorted(metric.a)[len(metric.a) // 2], sorted(metric.b)[len(metric.b) // 2]
            table.add_row(
                cell.cell,
                metric.label,
                f"{a:.4g}",
                f"{b:.4g}",
                f"{metric.ratio:.3f}",
                f"{metric.worse_share:.0%}",
                "" if metric.p_value is None else f"{metric.p_value:.3f}",
                styled((metric.verdict, style.get(metric.verdict, ""))),
            )
    return table


def print_busy_cells(first: Run, second: Run, comparisons, fail_on_regression: bool) -> None:
    """Say which cells' changes of time a busy machine made impossible to call."""
    spoiled = [cell for cell in comparisons if cell.spoiled]
    if spoiled:
        cells = ", ".join(c.cell for c in spoiled)
        busy = sum(c.busy_a for c in spoiled), sum(c.busy_b for c in spoiled)
        console.print(
            styled(
                (BUSY_VERDICT, "yellow"),
                f": {cells}: other processes took the CPU in {busy[0]} repeat(s) of "
                f"{first.run_id} and {busy[1]} of {second.run_id}; their times changed, but "
                "that says nothing of the code"
                + (
                    " (not counted as regressions by --fail-on-regression; without a "
                    "regression it exits 7: not judged)"
                    if fail_on_regression
                    else ""
                ),
            )
        )


def comparison_json(first, second, comparisons, lost, threshold: float) -> dict[str, Any]:
    """What ``harness compare`` prints, as one JSON object."""
    from harness.analysis.profiles import profile_changes

    _, only_b = unmatched(first, second)
    cells = [
        {
            "task": cell.task,
            "framework": cell.framework,
            "mode": cell.mode,
            "precision": cell.precision,
            "device": cell.device,
            "busy_repeats": {"a": cell.busy_a, "b": cell.busy_b},
            "metrics": [
                {
                    "metric": metric.metric,
                    "label": metric.label,
                    "a": metric.a,
                    "b": metric.b,
                    "ratio": _finite(metric.ratio),
                    "b_worse_share": metric.worse_share,
                    "p_value": _finite(metric.p_value),
                    "verdict": metric.verdict,
                }
                for metric in cell.metrics
            ],
        }
        for cell in comparisons
    ]
    slower = sum(len(cell.regressions) for cell in comparisons)
    return {
        "run_a": first.run_id,
        "run_b": second.run_id,
        "threshold": threshold,
        "cells": cells,
        "lost": [
            {"cell": gone.cell, "a": gone.a_state, "b": gone.b_state, "reason": gone.reason}
            for gone in lost
        ],
        "only_in_b": only_b,
        "environment_differences": {
            key: list(values) for key, values in environment_differences(first, second).items()
        },
        "profile_changes": [
            {
                "cell": change.cell,
                "step_seconds": {"a": change.step_a, "b": change.step_b},
                "moved_most": change.category,
                "seconds_per_step": {"a": change.a, "b": change.b},
            }
            for change in profile_changes(first.dir.path, second.dir.path)
        ],
        "regressions": len(lost) + slower,
        "inconclusive_busy": sum(len(cell.spoiled) for cell in comparisons),
    }


def _finite(value: float | None) -> float | None:
    """``value``, or ``None`` where JSON has no number for it (NaN, infinity)."""
    return value if value is not None and math.isfinite(value) else None


def _or_absent(value: Any) -> Any:
    """An environment entry as printed: one side's lock may lack a package the other has."""
    return "absent" if value is None else value
