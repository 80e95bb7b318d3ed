"""``harness show``: a finished run's tables (or its rows as JSON), read-only."""

from __future__ import annotations

import json
from pathlib import Path

import click

from harness.analysis.runs import Run, latest_run, open_run
from harness.commands.common import RESULTS_OPTION
from harness.present.console import (
    console,
    print_scaling,
    print_table,
    problems_table,
    results_table,
)
from harness.present.report import run_target


@click.command("show")
@click.argument("run_dir", required=False, type=click.Path(path_type=Path))
@RESULTS_OPTION
@click.option(
    "--json",
    "as_json",
    is_flag=True,
    help="Print the run's result rows as a JSON array (schema: docs/results.schema.json).",
)
@click.option(
    "--scaling",
    is_flag=True,
    help="Only a sweep's scaling section (run with --vary): curves, log-log slopes, "
    "crossovers, fixed and marginal cost; with --json, as a JSON array (one object per "
    "varied key) instead of the rows.",
)
@click.option(
    "--profile",
    is_flag=True,
    help="Only the per-step breakdown of a run made with --profile: each profiled cell's "
    "step split into categories; with --json, the profile records as a JSON array.",
)
@click.option("--wide", is_flag=True, help="Show every column, however wide the table gets.")
def show_command(
    run_dir: Path | None, results: Path, as_json: bool, scaling: bool, profile: bool, wide: bool
) -> None:
    """Print a finished run's tables; writes nothing.

    RUN_DIR defaults to the latest readable run under --results. A sweep's run (--vary) also
    shows its scaling section.
    """
    run = open_run(run_dir) if run_dir is not None else latest_run(results)
    if profile:
        return _show_profiles(run, as_json)
    if scaling:
        from harness.analysis.scaling import analyse, to_json

        analyses = analyse(run.rows)
        if as_json:
            click.echo(json.dumps(to_json(analyses), indent=2, allow_nan=False))
        elif not analyses:
            console.print(f"run {run.run_id} varied nothing over two or more values (--vary)")
        else:
            print_scaling(run.rows)
        return
    if as_json:
        click.echo(json.dumps(run.rows, indent=2, allow_nan=False))
        return
    print_table(results_table(run.rows, run_target(run), title=run_title(run), wide=wide))
    problems = problems_table(run.rows)
    if problems is not None:
        console.print(problems)
    print_scaling(run.rows)
    console.print(f"run: {run.dir.path}")


def run_title(run: Run) -> str:
    return f"{run.task_name} (target {run_target(run).describe()})"


def _show_profiles(run: Run, as_json: bool) -> None:
    from harness.checks.profiling import read_profiles
    from harness.present.profile import breakdown_table, sentence

    profiles = read_profiles(run.dir.path)
    if as_json:
        click.echo(json.dumps(profiles, indent=2, allow_nan=False))
        return
    if not profiles:
        console.print(f"run {run.run_id} was not profiled (harness run --profile)", highlight=False)
        return
    print_table(breakdown_table(profiles))
    for record in profiles:
        console.print(sentence(record), highlight=False)
