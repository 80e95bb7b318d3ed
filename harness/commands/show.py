"""``harness show``: a finished run's tables (or its rows as JSON), read-only."""

from __future__ import annotations

import json
from pathlib import Path

import click

from harness.commands.common import RESULTS_OPTION
from harness.console import console, print_table, problems_table, results_table
from harness.report import run_target
from harness.runs import Run, latest_run, open_run


@click.command("show")
@click.argument("run_dir", required=False, type=click.Path(path_type=Path))
@RESULTS_OPTION
@click.option(
    "--json",
    "as_json",
    is_flag=True,
    help="Print the run's result rows as a JSON array (schema: docs/results.schema.json).",
)
@click.option("--wide", is_flag=True, help="Show every column, however wide the table gets.")
def show_command(run_dir: Path | None, results: Path, as_json: bool, wide: bool) -> None:
    """Print a finished run's tables; writes nothing.

    RUN_DIR defaults to the latest readable run under --results.
    """
    run = open_run(run_dir) if run_dir is not None else latest_run(results)
    if as_json:
        click.echo(json.dumps(run.rows, indent=2, allow_nan=False))
        return
    print_table(results_table(run.rows, run_target(run), title=run_title(run), wide=wide))
    problems = problems_table(run.rows)
    if problems is not None:
        console.print(problems)
    console.print(f"run: {run.dir.path}")


def run_title(run: Run) -> str:
    return f"{run.task_name} (target {run_target(run).describe()})"
