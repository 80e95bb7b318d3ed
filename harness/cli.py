"""The ``harness`` command line."""

from __future__ import annotations

import logging
from pathlib import Path

import click
from rich.markup import escape
from rich.table import Table

import harness
from harness import runner
from harness.console import RunProgress, console, errors, results_table
from harness.data import datasets
from harness.environment import environment_record, usable_cores
from harness.errors import HarnessError
from harness.plugins import get_registry
from harness.results import ENVIRONMENT_FILE, RUN_FILE, RunDir
from harness.tasks import builtin_task_files, load_task

EXIT_CODES = """\b
Exit codes:
  0  every cell finished (ok or skipped)
  1  at least one cell failed (crash, timeout, exception)
  2  bad input: unknown name, bad value, malformed task file, unwritable folder
  3  dataset missing, truncated or failing its checksum
"""


@click.group(
    context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100},
    epilog=EXIT_CODES,
)
@click.version_option(harness.__version__, prog_name="harness")
@click.option("-v", "--verbose", is_flag=True, help="Log what the harness does (debug level).")
def cli(verbose: bool) -> None:
    """Compare deep-learning frameworks on the same training work.

    Each task (dataset, model, optimizer, epochs, quality target) is trained by every framework
    asked for, each in its own process, from the same data, initial weights and batch order,
    with the same thread count. Results land in results/<run-id>/.

    \b
    Example:
      harness run --task mnist_mlp --all-frameworks
    """
    logging.basicConfig(level=logging.DEBUG if verbose else logging.WARNING)


@cli.command(epilog=EXIT_CODES)
@click.option(
    "--task",
    "task_name",
    required=True,
    metavar="NAME|PATH",
    help="A built-in task (see `harness list`) or the path of a .toml task file.",
)
@click.option(
    "--framework",
    "-f",
    "frameworks",
    multiple=True,
    metavar="NAME",
    help="A framework to run; repeat for several.",
)
@click.option("--all-frameworks", is_flag=True, help="Run every registered framework.")
@click.option(
    "--device",
    type=click.Choice(runner.DEVICE_CHOICES),
    default="auto",
    show_default=True,
    help="Where to train; auto prefers a GPU when the framework sees one.",
)
@click.option(
    "--epochs",
    type=click.IntRange(1, 10_000),
    default=None,
    help="Override the task's epoch count.",
)
@click.option(
    "--threads",
    type=click.IntRange(1, 4096),
    default=None,
    help="Threads for every framework  [default: all usable cores]",
)
@click.option(
    "--repeats",
    type=click.IntRange(1, 1000),
    default=1,
    show_default=True,
    help="Run each cell this many times, each in a fresh process.",
)
@click.option(
    "--timeout",
    type=click.FloatRange(1, None),
    default=3600,
    show_default=True,
    help="Seconds a cell may run before it is killed and recorded as failed.",
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
@click.option(
    "--data-dir",
    type=click.Path(path_type=Path),
    default=None,
    help="Folder holding the dataset files (also $HARNESS_DATA_DIR); "
    "else the user cache, then the copy shipped with harness.",
)
def run(
    task_name,
    frameworks,
    all_frameworks,
    device,
    epochs,
    threads,
    repeats,
    timeout,
    train_subset,
    out,
    data_dir,
) -> None:
    """Train a task with one or more frameworks and record accuracy, time and memory."""
    registry = get_registry()
    task = load_task(task_name)
    if epochs is not None:
        task = task.with_epochs(epochs)
    if all_frameworks == bool(frameworks):
        raise click.UsageError("give either --framework NAME (one or more) or --all-frameworks")
    names = sorted(registry.frameworks) if all_frameworks else list(dict.fromkeys(frameworks))
    for name in names:
        registry.framework(name)  # an unknown name fails here, before any work
    if not names:
        raise HarnessError(
            "no frameworks are registered; install one, e.g. pip install 'harness[torch]'"
        )
    threads = threads or usable_cores()
    data_paths = datasets.locate(task.dataset.name, data_dir)

    cells = runner.plan(task, names, device, repeats)
    run_dir = RunDir.create(out, task.name)
    settings = runner.RunSettings(
        threads=threads,
        timeout=timeout,
        data_paths={role: str(path.resolve()) for role, path in data_paths.items()},
        train_subset=train_subset,
    )
    versions = {name: registry.frameworks[name].adapter.version() for name in names}
    run_dir.write_json(
        ENVIRONMENT_FILE, environment_record(threads=threads, seed=task.seed, frameworks=versions)
    )
    run_dir.write_json(
        RUN_FILE,
        {
            "run_id": run_dir.run_id,
            "task": task.model_dump(mode="json"),
            "frameworks": names,
            "device": device,
            "repeats": repeats,
            "threads": threads,
            "timeout": timeout,
            "train_subset": train_subset,
            "data_paths": settings.data_paths,
        },
    )
    console.print(
        f"run [bold]{run_dir.run_id}[/]: task {task.name}, "
        f"{len(cells)} cell(s), {threads} thread(s) each",
        highlight=False,
    )
    with RunProgress(len(cells)) as progress:
        rows = runner.execute(cells, settings, run_dir, registry, progress)
    run_dir.write_table()
    console.print(
        results_table(
            rows, title=f"{task.name} (target {task.target.metric} ≥ {task.target.min:g})"
        )
    )
    console.print(f"results: {run_dir.path}", highlight=False)
    if any(row["status"] == "failed" for row in rows):
        raise SystemExit(1)


@cli.command("list")
def list_command() -> None:
    """List the tasks, and the frameworks with their version and availability."""
    tasks = Table(title="tasks")
    for column in ("name", "dataset", "model", "epochs", "target"):
        tasks.add_column(column)
    for name, path in sorted(builtin_task_files().items()):
        try:
            task = load_task(str(path))
        except HarnessError as exc:
            tasks.add_row(name, "", f"[red]invalid: {escape(str(exc))}[/]", "", "")
            continue
        layers = " → ".join(
            f"{layer.kind}({getattr(layer, 'units', '')})".replace("()", "")
            for layer in task.model.layers
        )
        tasks.add_row(
            name,
            task.dataset.name,
            layers,
            str(task.training.epochs),
            f"{task.target.metric} ≥ {task.target.min:g}",
        )
    console.print(tasks)

    registry = get_registry()
    frameworks = Table(title="frameworks")
    for column in ("name", "version", "available", "source", "note"):
        frameworks.add_column(column)
    for name, entry in sorted(registry.frameworks.items()):
        availability = entry.adapter.availability()
        frameworks.add_row(
            name,
            entry.adapter.version() or "",
            "[green]yes[/]" if availability.available else "[yellow]no[/]",
            entry.source,
            escape(availability.reason),
        )
    for failure in registry.failures:
        frameworks.add_row(
            failure.plugin,
            "",
            "[red]broken[/]",
            failure.source,
            escape(f"plugin failed to load: {failure.reason}"),
        )
    console.print(frameworks)


def main() -> None:
    """Entry point: turns a :class:`HarnessError` into one line and its exit code."""
    try:
        exit_code = cli.main(standalone_mode=False)
    except click.exceptions.Abort:
        errors.print("aborted")
        raise SystemExit(130) from None
    except click.UsageError as exc:
        command = exc.ctx.command_path if exc.ctx else "harness"
        errors.print(
            f"[bold red]error:[/] {escape(exc.format_message())} (see '{escape(command)} --help')",
            highlight=False,
        )
        raise SystemExit(exc.exit_code) from None
    except click.ClickException as exc:
        exc.show()
        raise SystemExit(exc.exit_code) from None
    except HarnessError as exc:
        errors.print(f"[bold red]error:[/] {escape(str(exc))}", highlight=False)
        raise SystemExit(exc.exit_code) from None
    except KeyboardInterrupt:
        errors.print("interrupted")
        raise SystemExit(130) from None
    # in non-standalone mode click returns the exit code of --help/--version, else None
    raise SystemExit(exit_code if isinstance(exit_code, int) else 0)
