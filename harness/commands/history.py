"""``harness history``: every run under a results folder, followed over time and versions."""

from __future__ import annotations

import json
from pathlib import Path

import click

from harness.analysis.history import DEFAULT_THRESHOLD, history
from harness.present.console import console
from harness.present.history import history_json, series_table, summary_line, write_page


@click.command("history")
@click.option(
    "--results",
    "folders",
    type=click.Path(path_type=Path),
    multiple=True,
    metavar="DIR",
    help="A folder of run folders; repeat it to read several.  [default: results]",
)
@click.option("--task", default=None, metavar="NAME", help="Only this task's series.")
@click.option("--framework", default=None, metavar="NAME", help="Only this framework's series.")
@click.option(
    "--threshold",
    type=click.FloatRange(0, 10),
    default=DEFAULT_THRESHOLD,
    show_default=True,
    help="Smallest change of the median time per epoch that counts, as a fraction.",
)
@click.option(
    "--html",
    type=click.Path(path_type=Path, dir_okay=False),
    default=None,
    metavar="PATH",
    help="Also write a self-contained page with a chart per series.",
)
@click.option("--json", "as_json", is_flag=True, help="Print the series as one JSON object.")
@click.option(
    "--fail-on-regression",
    is_flag=True,
    help="Exit with code 4 when a series' newest change point is a regression (for CI).",
)
def history_command(folders, task, framework, threshold, html, as_json, fail_on_regression) -> None:
    """Show each cell's time per epoch over every run and version, with its change points.

    A series is one task, framework, mode, precision and device on one host; its points are the
    runs under the folders, oldest first (and, in a run made with --with, each environment).
    Busy repeats never count. A change point is a move of at least the threshold between
    neighbouring points on which at least 90 % of the pairs of repeats agree: the rules of
    `harness compare` (docs/versions.md). Exit codes: 0; 4 with --fail-on-regression when a
    series is slower since its last change point.
    """
    all_series = history(
        folders or [Path("results")], task=task, framework=framework, threshold=threshold
    )
    if html is not None:
        write_page(all_series, html, threshold)
    if as_json:
        click.echo(json.dumps(history_json(all_series, threshold), indent=2, allow_nan=False))
    else:
        for series in all_series:
            console.print(series_table(series))
            console.print()
        console.print(summary_line(all_series), highlight=False)
        if html is not None:
            console.print(f"page: {html}", highlight=False)
    if fail_on_regression and any(series.regressed for series in all_series):
        raise SystemExit(4)
