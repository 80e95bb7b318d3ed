"""``harness check-agreement``: do the frameworks train the task the same way?"""

from __future__ import annotations

import json
import math
import sys
from typing import Any

import click
from rich.table import Table

from harness.api.adapter import availability_of
from harness.checks import agreement
from harness.commands.common import (
    EXIT_CODES,
    FiniteRange,
    data_dir_option,
    dataset_option,
    framework_option,
    resolve_threads,
    threads_option,
)
from harness.data import datasets
from harness.measure.environment import usable_memory
from harness.present.console import console, styled
from harness.registry.catalog import known_datasets, load_task
from harness.registry.plugins import get_registry
from harness.workload import feasibility
from harness.workload.precision import PRECISIONS
from harness.workload.variants import parse_vary, sweep


@click.command("check-agreement", epilog=EXIT_CODES)
@click.option("--task", "task_name", required=True, metavar="NAME|PATH", help="The task to check.")
@click.option(
    "--steps",
    type=click.IntRange(1, 100_000),
    default=None,
    help="Optimizer steps to compare  [default: the task's agreement.steps, usually 100]",
)
@framework_option
@dataset_option
@threads_option
@click.option(
    "--timeout",
    type=FiniteRange(1, None),
    default=900,
    show_default=True,
    help="Seconds each framework may take before it is killed.",
)
@data_dir_option
@click.option(
    "--precision",
    type=click.Choice(PRECISIONS),
    default="float32",
    show_default=True,
    help="Train every framework in this precision; bfloat16 and mixed are held to their own "
    "tolerances (the task's [agreement.bfloat16] / [agreement.mixed], or the defaults in "
    "docs/measuring.md).",
)
@click.option(
    "--vary",
    multiple=True,
    metavar="KEY=V1,V2,…",
    help="Check every variant of a sweep, as `harness run --vary` makes them, so that each "
    "variant's rows carry its own verdict.",
)
@click.option(
    "--json",
    "as_json",
    is_flag=True,
    help="Print each check's frameworks, pairs and verdict as JSON on stdout (same exit codes); "
    "the tables go to stderr.",
)
def check_agreement(
    task_name, steps, frameworks, dataset, threads, timeout, data_dir, precision, vary, as_json
) -> None:
    """Train the first steps of a task in every framework and compare them, pair by pair.

    Every available framework unless --framework names some (at least two). A framework that
    declines the task or isn't installed is reported and left out of the verdict; at least two
    must remain.

    Every framework starts from the harness's initial weights and trains on the harness's
    batches, one step at a time, on the CPU with dropout off (in float32 unless --precision
    says otherwise). For each pair of
    frameworks the check prints the largest relative difference of a step's training loss and
    of the weights afterwards, against the task's [agreement] tolerances, and that every
    framework counted the task's number of parameters. The verdict is cached, and later
    `harness run` rows of this task carry it in their `agreement` column.
    """
    if as_json:
        console.file = sys.stderr  # stdout carries the JSON alone
    registry = get_registry()
    task = load_task(task_name)
    if dataset is not None:
        task = task.with_dataset(dataset, known_datasets())
    varied = [parse_vary(option) for option in vary]
    task, variants = sweep(task, varied, known_datasets()) if varied else (task, [])
    checks = [(variant.name, variant.task) for variant in variants] or [(task.name, task)]
    paths = datasets.locate(task.dataset_info, data_dir)
    for _, each in checks:  # every variant is checked before any trains
        feasibility.check(each, paths, memory_limit=None, usable=usable_memory())
    settings = (steps, frameworks, threads, timeout, paths, precision)
    results = [_check_one(label, each, registry, settings) for label, each in checks]
    codes = [code for code, _ in results]
    if as_json:
        click.echo(json.dumps([report for _, report in results], indent=2, allow_nan=False))
    if 1 in codes:
        raise SystemExit(1)
    if 5 in codes:
        raise SystemExit(5)


def _check_one(label, task, registry, settings) -> tuple[int, dict[str, Any]]:
    """Check one task (a sweep's variant: ``label`` is its name): the exit code it asks for,
    and what ``--json`` prints of it."""
    steps, frameworks, threads, timeout, paths, precision = settings
    names = list(dict.fromkeys(frameworks)) or sorted(
        name
        for name, entry in registry.frameworks.items()
        if availability_of(entry.adapter).available
    )
    adapters = [registry.framework(name) for name in names]
    availability = {adapter.name: availability_of(adapter) for adapter in adapters}
    absent = {name: found.reason for name, found in availability.items() if not found.available}
    agreement.require_two(
        task,
        [adapter.name for adapter in adapters if adapter.name not in absent],
        [agreement.not_installed(name, None, reason) for name, reason in absent.items()],
    )
    threads = resolve_threads(threads)
    steps = steps or task.agreement.steps

    with console.status(f"training {steps} steps of {label} in each framework") as status:
        check = agreement.run_check(
            task,
            [(adapter.name, adapter.version()) for adapter in adapters],
            steps=steps,
            threads=threads,
            data_paths={role: str(path.resolve()) for role, path in paths.items()},
            timeout=timeout,
            on_trace=lambda trace: status.update(f"{trace.framework}: {trace.status}"),
            unavailable=absent,
            precision=precision,
        )
    # a framework that declined trained nothing: judge only those that ran, and only if two did
    agreement.require_two(task, [trace.framework for trace in check.ran], check.skipped)
    console.print(frameworks_table(check, label))
    if check.pairs:
        console.print(pairs_table(check))
    if task.agreement.note:
        console.print(f"note: {task.agreement.note}")
    if task.agreement.weights_not_compared:
        left_out = ", ".join(task.agreement.weights_not_compared)
        console.print(f"weights not compared (the task's agreement section says why): {left_out}")
    for trace in check.skipped:
        console.print(f"left out of the verdict: {trace.left_out}")
    saved = agreement.record(check)
    if check.failed_frameworks:
        failed = ", ".join(trace.framework for trace in check.failed_frameworks)
        verdict = (("could not be compared", "red"), f": {failed} failed to run the steps")
    elif check.passed:
        verdict = (("agree", "green"), f" over {steps} steps")
    else:
        verdict = (("DISAGREE", "red"), f" over {steps} steps")
    console.print(styled(f"{label}: the frameworks ", *verdict, f" (verdict cached in {saved})"))
    code = 1 if check.failed_frameworks else 0 if check.passed else 5
    return code, check_json(label, check, verdict[0][0].lower(), str(saved))


def check_json(label: str, check: agreement.Check, verdict: str, cache: str) -> dict[str, Any]:
    """One check as ``--json`` prints it."""

    def finite(value: float | None) -> float | None:
        return value if value is not None and math.isfinite(value) else None

    return {
        "task": label,
        "steps": check.steps,
        "precision": check.precision,
        "verdict": verdict,
        "expected_parameters": check.expected_parameters,
        "frameworks": [
            {
                "framework": trace.framework,
                "version": trace.version,
                "status": trace.status,
                "error": trace.error,
                "parameters": trace.parameters,
                "left_out": trace.left_out if trace.skipped else None,
            }
            for trace in check.traces
        ],
        "pairs": [
            {
                "a": pair.a,
                "b": pair.b,
                "loss_difference": finite(pair.loss_difference),
                "loss_step": pair.loss_step,
                "loss_rtol": pair.loss_rtol,
                "weights_difference": finite(pair.weights_difference),
                "weights_rtol": pair.weights_rtol,
                "problem": pair.problem,
                "passed": pair.passed,
            }
            for pair in check.pairs
        ],
        "cache": cache,
    }


def frameworks_table(check: agreement.Check, name: str | None = None) -> Table:
    title = f"{name or check.task.name}: {check.steps} steps from the same weights and batches"
    if check.precision != "float32":
        title += f", in {check.precision}"
    table = Table(title=title)
    for column in (
        "framework",
        "version",
        "parameters",
        "loss at step 1",
        "loss at last step",
        "note",
    ):
        table.add_column(
            column, justify="left" if column in ("framework", "version", "note") else "right"
        )
    for trace in check.traces:
        mismatch = trace.parameters not in (None, check.expected_parameters)
        table.add_row(
            trace.framework,
            trace.version or "",
            styled(
                (f"{trace.parameters:,}" if trace.parameters else "?", "red" if mismatch else "")
            ),
            f"{trace.losses[0]:.6f}" if trace.losses else "",
            f"{trace.losses[-1]:.6f}" if trace.losses else "",
            trace.note
            + (f"the task has {check.expected_parameters:,} parameters" if mismatch else ""),
        )
    return table


def _bound(value: float) -> str:
    """``1e-04``, or ``0.25`` where one significant digit would misstate it (``2e-01``)."""
    short = f"{value:.0e}"
    return short if float(short) == value else f"{value:.2g}"


def pairs_table(check: agreement.Check) -> Table:
    scale = "per array" if check.precision == "float32" else "of the array's layer"
    table = Table(
        caption="relative differences: loss |a-b|/max(|a|,|b|) per step; weights max|a-b| "
        f"/ max|a| {scale}"
    )
    for column in (
        "pair",
        "max loss diff",
        "at step",
        "max weight diff",
        "tolerance (loss / weights)",
        "",
    ):
        table.add_column(column, justify="left" if column in ("pair", "") else "right")
    for pair in check.pairs:
        table.add_row(
            f"{pair.a} vs {pair.b}",
            f"{pair.loss_difference:.2e}",
            str(pair.loss_step),
            "n/a" if pair.weights_difference is None else f"{pair.weights_difference:.2e}",
            f"{_bound(pair.loss_rtol)} / {_bound(pair.weights_rtol)}",
            styled(
                ("pass", "green") if pair.passed else ("FAIL", "red"),
                f" {pair.problem}" if pair.problem else "",
            ),
        )
    return table
