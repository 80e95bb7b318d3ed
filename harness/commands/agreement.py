"""``harness check-agreement``: do the frameworks train the task the same way?"""

from __future__ import annotations

import click
from rich.table import Table

from harness import agreement, feasibility
from harness.commands.common import (
    EXIT_CODES,
    FiniteRange,
    data_dir_option,
    dataset_option,
    framework_option,
    resolve_threads,
    threads_option,
)
from harness.console import console, styled
from harness.data import datasets
from harness.plugins import get_registry
from harness.tasks import load_task


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
def check_agreement(task_name, steps, frameworks, dataset, threads, timeout, data_dir) -> None:
    """Train the first steps of a task in every framework and compare them, pair by pair.

    Every available framework unless --framework names some (at least two). A framework that
    declines the task or isn't installed is reported and left out of the verdict; at least two
    must remain.

    Every framework starts from the harness's initial weights and trains on the harness's
    batches, one step at a time, on the CPU in float32 with dropout off. For each pair of
    frameworks the check prints the largest relative difference of a step's training loss and
    of the weights afterwards, against the task's [agreement] tolerances, and that every
    framework counted the task's number of parameters. The verdict is cached, and later
    `harness run` rows of this task carry it in their `agreement` column.
    """
    registry = get_registry()
    task = load_task(task_name)
    if dataset is not None:
        task = task.with_dataset(dataset)
    names = list(dict.fromkeys(frameworks)) or sorted(
        name
        for name, entry in registry.frameworks.items()
        if entry.adapter.availability().available
    )
    adapters = [registry.framework(name) for name in names]
    availability = {adapter.name: adapter.availability() for adapter in adapters}
    absent = {name: found.reason for name, found in availability.items() if not found.available}
    agreement.require_two(
        task,
        [adapter.name for adapter in adapters if adapter.name not in absent],
        [agreement.not_installed(name, None, reason) for name, reason in absent.items()],
    )
    threads = resolve_threads(threads)
    steps = steps or task.agreement.steps
    paths = datasets.locate(task.dataset.name, data_dir)
    feasibility.check(task, paths, memory_limit=None)

    with console.status(f"training {steps} steps of {task.name} in each framework") as status:
        check = agreement.run_check(
            task,
            [(adapter.name, adapter.version()) for adapter in adapters],
            steps=steps,
            threads=threads,
            data_paths={role: str(path.resolve()) for role, path in paths.items()},
            timeout=timeout,
            on_trace=lambda trace: status.update(f"{trace.framework}: {trace.status}"),
            unavailable=absent,
        )
    # a framework that declined trained nothing: judge only those that ran, and only if two did
    agreement.require_two(task, [trace.framework for trace in check.ran], check.skipped)
    console.print(frameworks_table(check))
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
    console.print(
        styled(f"{task.name}: the frameworks ", *verdict, f" (verdict cached in {saved})")
    )
    if check.failed_frameworks:
        raise SystemExit(1)
    if not check.passed:
        raise SystemExit(5)


def frameworks_table(check: agreement.Check) -> Table:
    table = Table(title=f"{check.task.name}: {check.steps} steps from the same weights and batches")
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


def pairs_table(check: agreement.Check) -> Table:
    table = Table(
        caption="relative differences: loss |a-b|/max(|a|,|b|) per step; weights max|a-b| "
        "/ max|a| per array"
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
            f"{pair.loss_rtol:.0e} / {pair.weights_rtol:.0e}",
            styled(
                ("pass", "green") if pair.passed else ("FAIL", "red"),
                f" {pair.problem}" if pair.problem else "",
            ),
        )
    return table
