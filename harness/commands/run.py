"""``harness run``: train a task with one or more frameworks, then tabulate and report."""

from __future__ import annotations

import json
import shlex
import socket
import sys
from pathlib import Path
from typing import Any

import click
from click.core import ParameterSource
from pydantic import ValidationError

from harness import benchmark
from harness.api.adapter import MODES
from harness.commands.common import (
    EXIT_CODES,
    FiniteRange,
    MemorySize,
    data_dir_option,
    dataset_option,
    device_option,
    framework_option,
    require_gpu_if_asked,
    resolve_threads,
    threads_option,
)
from harness.errors import HarnessError
from harness.present.console import (
    RunProgress,
    console,
    errors,
    print_scaling,
    print_table,
    print_warning,
    problems_table,
    results_table,
    styled,
)
from harness.registry.catalog import known_datasets, load_task
from harness.registry.plugins import get_registry
from harness.runner import Cell
from harness.runner.environments import (
    EnvironmentBuildError,
    IndexOptions,
    ensure_environment,
    environment_name,
)
from harness.runner.executors import EXECUTOR_NAMES
from harness.store.locking import run_folder_lock
from harness.store.results import RUN_FILE, RunDir
from harness.store.schema import MAX_REPEATS, first_problem
from harness.workload.precision import PRECISIONS
from harness.workload.tasks import Task
from harness.workload.variants import parse_vary

CONFIG_OPTIONS = (
    "dataset",
    "mode",
    "precision",
    "task_name",
    "frameworks",
    "all_frameworks",
    "device",
    "epochs",
    "threads",
    "repeats",
    "timeout",
    "memory_limit",
    "train_subset",
    "out",
    "data_dir",
    "executor",
    "ray_address",
    "vary",
    "with_requirements",
    "index_url",
    "find_links",
    "offline",
)


@click.command(epilog=EXIT_CODES)
@click.option(
    "--task",
    "task_name",
    metavar="NAME|PATH",
    help="A built-in task (see `harness list`) or the path of a .toml task file.",
)
@framework_option
@click.option("--all-frameworks", is_flag=True, help="Run every registered framework.")
@device_option("Where to train; auto prefers a GPU when the framework sees one.")
@click.option(
    "--mode",
    type=click.Choice([*MODES, "all"]),
    default="eager",
    show_default=True,
    help="eager: each framework's default execution; compiled: torch.compile, Keras "
    "jit_compile=True, a whole JAX epoch in lax.scan; all: both, each its own row.",
)
@click.option(
    "--precision",
    type=click.Choice([*PRECISIONS, "all"]),
    default="float32",
    show_default=True,
    help="float32: every product in IEEE float32 (TF32 off in every framework); bfloat16: "
    "parameters and compute in bfloat16; mixed: float32 parameters, bfloat16 compute "
    "(autocast, Keras mixed_bfloat16); all: each its own row. Rows record what each "
    "framework computed in (docs/measuring.md, Precision).",
)
@dataset_option
@click.option(
    "--epochs",
    type=click.IntRange(1, 10_000),
    default=None,
    help="Override the task's epoch count.",
)
@threads_option
@click.option(
    "--repeats",
    type=click.IntRange(1, MAX_REPEATS),
    default=1,
    show_default=True,
    help="Run each cell this many times, each in a fresh process.",
)
@click.option(
    "--timeout",
    type=FiniteRange(1, None),
    default=3600,
    show_default=True,
    help="Seconds a cell may run before it is killed and recorded as failed (timeout).",
)
@click.option(
    "--memory-limit",
    type=MemorySize(),
    default=None,
    metavar="SIZE",
    help="Resident memory a cell may use, e.g. 4G or 512M; past it the cell is killed "
    "and recorded as failed (oom).  [default: no limit]",
)
@click.option(
    "--train-subset",
    type=click.IntRange(1, None),
    default=None,
    metavar="N",
    help="Train on the first N training samples only (quick smoke runs).",
)
@click.option(
    "--out",
    type=click.Path(path_type=Path),
    default=Path("results"),
    show_default=True,
    help="Folder that receives the run folder.",
)
@data_dir_option
@click.option(
    "--executor",
    type=click.Choice(EXECUTOR_NAMES),
    default="local",
    show_default=True,
    help="local: cells one after another on this machine, each in a process of its own; ray: "
    "every cell a Ray task on a cluster (pip install 'harness[ray]'); inline: every cell in "
    "this process, to debug a plugin under pdb (no isolation or limits: never to measure).",
)
@click.option(
    "--ray-address",
    default=None,
    metavar="HOST:PORT",
    help="The Ray cluster's head node for --executor ray  [default: start a local Ray]",
)
@click.option(
    "--resume",
    type=click.Path(path_type=Path),
    default=None,
    metavar="RUN_DIR",
    help="Finish an interrupted run: run only its cells that have no complete result, "
    "with the configuration recorded in RUN_DIR (give no other run options).",
)
@click.option(
    "--vary",
    multiple=True,
    metavar="KEY=V1,V2,…",
    help="Sweep: run the task once per value of KEY, a dotted path into the task "
    "(training.batch_size, dataset.train_samples, model.layers[1].units); repeat the option "
    "for the product of several. Each variant is validated before anything runs, named for "
    "its values (mnist_mlp[batch_size=256]), and analysed for scaling and crossovers.",
)
@click.option(
    "--with",
    "with_requirements",
    multiple=True,
    metavar="REQUIREMENT",
    help="Run every cell in an environment built for this pin, in pip's syntax (jax==0.9.2); "
    "repeat it: pins of one package are alternatives (--with jax==0.9.2 --with jax==0.10.2 "
    "runs each cell twice), pins of different packages combine. Built with uv over harness's "
    "own environment, cached by what they hold and reused offline (docs/versions.md).",
)
@click.option(
    "--index-url",
    default=None,
    metavar="URL",
    help="The package index --with environments install from  [default: uv's, PyPI]",
)
@click.option(
    "--find-links",
    multiple=True,
    metavar="DIR|URL",
    help="Also look for --with packages here (a folder of wheels); repeatable.",
)
@click.option(
    "--offline",
    is_flag=True,
    help="Build --with environments from uv's cache and --find-links only, never the network.",
)
@click.option(
    "--profile",
    is_flag=True,
    help="After the timed cells, profile each once more with its framework's profiler (a "
    "process of its own, never a timed one): a trace per cell under profiles/ (opens in "
    "Perfetto UI) and each step split into matmul, other compute, optimizer, copies, "
    "compilation and overhead.",
)
@click.option("--no-report", is_flag=True, help="Don't write report.md and report.html at the end.")
@click.option(
    "--wide", is_flag=True, help="Show every column of the results table, however wide it gets."
)
@click.option(
    "--json",
    "as_json",
    is_flag=True,
    help="Print the result rows as JSON lines on stdout at the end (schema: "
    "docs/results.schema.json); progress and tables go to stderr.",
)
@click.pass_context
def run(
    ctx,
    task_name,
    frameworks,
    all_frameworks,
    device,
    mode,
    precision,
    dataset,
    epochs,
    threads,
    repeats,
    timeout,
    memory_limit,
    train_subset,
    out,
    data_dir,
    resume,
    no_report,
    wide,
    executor,
    ray_address,
    as_json,
    vary,
    with_requirements,
    index_url,
    find_links,
    offline,
    profile,
) -> None:
    """Train a task with one or more frameworks and record accuracy, time and memory."""
    if as_json:
        console.file = sys.stderr  # stdout carries the rows alone
    if resume is not None:
        _refuse_options_with_resume(ctx, resume)
        run_dir, config = RunDir.open(resume)
        task = recorded_task(run_dir, config)
        varied = [(key, list(values)) for key, values in config.get("vary") or []]
    else:
        run_dir = None
        task = _task(task_name, epochs, dataset)
        config = _new_config(task, ctx.params)
        varied = [parse_vary(option) for option in vary]
    require_gpu_if_asked(config["device"])
    planned = benchmark.plan_run(task, config, varied)
    output = (no_report, wide, as_json, profile)
    if run_dir is not None:
        return _resume(planned, run_dir, output)
    run_dir = RunDir.create(out, planned.task.name)
    with run_folder_lock(run_dir.path, "harness run"):
        benchmark.write_run_files(planned, run_dir)
        _run_cells(planned, run_dir, planned.cells, output)


def _new_config(task: Task, options: dict[str, Any]) -> dict[str, Any]:
    """What a new run records in run.json, from the command line's ``options``."""
    return benchmark.run_config(
        task,
        _framework_names(options["frameworks"], options["all_frameworks"]),
        device=options["device"],
        modes=[options["mode"]],
        precisions=[options["precision"]],
        repeats=options["repeats"],
        threads=resolve_threads(options["threads"]),
        timeout=options["timeout"],
        memory_limit=options["memory_limit"],
        train_subset=options["train_subset"],
        data_dir=options["data_dir"],
        executor=options["executor"],
        ray_address=options["ray_address"],
        with_requirements=options["with_requirements"],
        index_url=options["index_url"],
        find_links=options["find_links"],
        offline=options["offline"],
    )


def _resume(planned: benchmark.PlannedRun, run_dir: RunDir, output) -> None:
    """Run the cells of ``run_dir`` that have no row yet."""
    with run_folder_lock(run_dir.path, "harness run --resume"):
        run_dir, _ = RunDir.open(run_dir.path)  # as it is now that nobody else writes
        run_dir.prepare_for_writing()
        done = {row.get("cell_id") for row in run_dir.read_results()}
        todo = [cell for cell in planned.cells if cell.id not in done]
        console.print(
            f"resuming {run_dir.run_id}: {len(planned.cells) - len(todo)} of "
            f"{len(planned.cells)} cell(s) already have a result",
            highlight=False,
        )
        _run_cells(planned, run_dir, todo, output)


def _refuse_options_with_resume(ctx: click.Context, resume: Path) -> None:
    """--resume runs what run.json recorded: an option that would change it is refused."""
    given = [
        name
        for name in CONFIG_OPTIONS
        if ctx.get_parameter_source(name) is not ParameterSource.DEFAULT
    ]
    if given:
        flags = ", ".join("--" + name.removesuffix("_name").replace("_", "-") for name in given)
        raise click.UsageError(
            f"--resume reuses the configuration recorded in {resume}; "
            f"drop {flags}, or start a new run without --resume"
        )


def _task(task_name: str | None, epochs: int | None, dataset: str | None) -> Task:
    """--task, with --epochs and --dataset applied."""
    if not task_name:
        raise click.UsageError("give --task NAME (see `harness list`), or --resume RUN_DIR")
    task = load_task(task_name)
    if epochs is not None:
        task = task.with_epochs(epochs)
    if dataset is not None:
        task = task.with_dataset(dataset, known_datasets())
    return task


def _framework_names(frameworks: tuple[str, ...], all_frameworks: bool) -> list[str]:
    if all_frameworks == bool(frameworks):
        raise click.UsageError("give either --framework NAME (one or more) or --all-frameworks")
    registry = get_registry()
    names = sorted(registry.frameworks) if all_frameworks else list(dict.fromkeys(frameworks))
    if not names:
        raise HarnessError(
            "no frameworks are registered; install one, e.g. pip install 'harness[torch]'"
        )
    return names


def recorded_task(run_dir: RunDir, config: dict) -> Task:
    """The task as ``run.json`` recorded it, validated again: a damaged record is one line."""
    try:
        return Task.model_validate(config["task"], context={"datasets": known_datasets()})
    except ValidationError as exc:
        raise HarnessError(
            f"{run_dir.path / RUN_FILE}: damaged task record: {first_problem(exc)}"
        ) from None


def _run_cells(planned: benchmark.PlannedRun, run_dir: RunDir, todo, output) -> None:
    """Run ``todo`` (of the run's cells), then print the tables and write the report."""
    task, settings = planned.task, planned.settings
    console.print(
        styled(
            "run ",
            (run_dir.run_id, "bold"),
            f": task {task.name}, {len(todo)} cell(s) to run, {settings.threads} thread(s) each",
        )
    )
    if planned.config["executor"] == "local":
        prepare_environments(todo, settings.index)
    try:
        with RunProgress(len(todo)) as progress:
            rows = benchmark.execute(planned, run_dir, todo, progress)
    except KeyboardInterrupt:  # Ctrl-C, or SIGTERM (harness.cli turns it into one)
        finished = len(run_dir.read_results())
        errors.print(
            f"interrupted with {finished} of {len(planned.cells)} cell(s) done; finish the run with: "
            f"harness run --resume {shlex.quote(str(run_dir.path))}"
        )
        raise
    run_dir.write_table()
    title = f"{task.name} (target {task.target.describe()})"
    no_report, wide, as_json, profile = output
    print_table(results_table(rows, task.target, title=title, wide=wide))
    problems = problems_table(rows)
    if problems is not None:
        console.print(problems)
    print_scaling(rows)
    if profile:
        _profile(planned, run_dir, todo, rows)
    console.print(f"results: {run_dir.path}")
    if not no_report:
        write_report(run_dir.path)
    if as_json:
        for row in rows:
            click.echo(json.dumps(row, allow_nan=False), file=sys.__stdout__)
    if any(row["status"] == "failed" for row in rows):
        raise SystemExit(1)


def prepare_environments(cells: list[Cell], index: IndexOptions) -> None:
    """Build (or find built) each ``--with`` environment the cells need, before any is timed,
    saying which; one that doesn't build is said here and is each of its cells' failed row."""
    for pins in dict.fromkeys(cell.environment for cell in cells if cell.environment):
        name = environment_name(pins)
        try:
            with console.status(f"environment {name}: building with uv"):
                built = ensure_environment(pins, index)
        except EnvironmentBuildError as exc:
            print_warning(f"environment {name}: {exc}")
            continue
        how = "built" if built.built else "reused from the cache"
        console.print(f"environment {name}: {how} in {built.seconds:.1f} s", highlight=False)


def _profile(planned: benchmark.PlannedRun, run_dir: RunDir, todo, rows) -> None:
    """One profiled pass per cell that trained (``--profile``), then the breakdown."""
    from harness.checks.profiling import profile_cells
    from harness.present.profile import breakdown_table, sentence

    trained = {row["cell_id"] for row in rows if row["status"] == "ok"}
    cells = [cell for cell in todo if cell.id in trained]
    if not cells:
        return
    if planned.config["executor"] == "ray":
        # one profiler run per cell, on the driver: the breakdown of a step here, not a node's
        console.print(
            f"profiling on this machine ({socket.gethostname()}): the timed cells ran on the "
            "Ray cluster, whose nodes may differ",
            highlight=False,
        )
    with console.status("profiling") as status:
        records = profile_cells(
            cells,
            planned.settings,
            run_dir,
            on_cell=lambda name: status.update(f"profiling {name}"),
        )
    print_table(breakdown_table(records))
    for record in records:
        console.print(sentence(record), highlight=False)


def write_report(path: Path) -> None:
    """The end-of-run report; a failure to draw it loses no result and doesn't fail the run."""
    from harness.analysis.runs import open_run
    from harness.present import report

    try:
        markdown, html = report.build(open_run(path))
    except HarnessError as exc:
        print_warning(f"no report: {exc}")
        return
    except Exception as exc:  # the results are safe on disk; say what went wrong and go on
        print_warning(f"no report: {type(exc).__name__}: {exc}; retry with `harness report {path}`")
        return
    console.print(f"report:  {markdown}\n         {html}")
