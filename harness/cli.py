"""The ``harness`` command line."""

from __future__ import annotations

import logging
import re
from pathlib import Path

import click
from click.core import ParameterSource
from rich.markup import escape
from rich.table import Table

import harness
from harness import calibration, runner
from harness.adapter import MODES
from harness.console import RunProgress, console, errors, problems_table, results_table
from harness.data import datasets
from harness.environment import environment_record, usable_cores
from harness.errors import HarnessError
from harness.plugins import get_registry
from harness.results import ENVIRONMENT_FILE, RUN_FILE, SCHEMA_VERSION, RunDir
from harness.tasks import Task, builtin_task_files, load_task

EXIT_CODES = """\b
Exit codes:
  0  every cell finished (ok or skipped; ok includes target_missed)
  1  at least one cell failed (crash, oom, timeout, import_error, exception, diverged)
  2  bad input: unknown name, bad value, malformed task file, unusable or foreign
     run folder, GPU asked for and none present
  3  dataset missing, truncated or failing its checksum
"""


class MemorySize(click.ParamType):
    """A byte count written like 512M, 4G or 1.5GiB."""

    name = "size"
    _units = {"": 1, "k": 2**10, "m": 2**20, "g": 2**30, "t": 2**40}

    def convert(self, value, param, ctx):
        if isinstance(value, int):
            return value
        match = re.fullmatch(r"\s*([0-9]+(?:\.[0-9]+)?)\s*([kmgt]?)(?:i?b)?\s*", str(value).lower())
        if not match or float(match.group(1)) <= 0:
            self.fail(f"{value!r} is not a size like 512M or 4G", param, ctx)
        return int(float(match.group(1)) * self._units[match.group(2)])


def gpu_present() -> bool:
    """Whether this machine has an NVIDIA or ROCm GPU, judged without importing a framework."""
    nvidia = Path("/proc/driver/nvidia/gpus")
    return (nvidia.is_dir() and any(nvidia.iterdir())) or Path("/dev/kfd").exists()


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


CONFIG_OPTIONS = (
    "mode",
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
)


@cli.command(epilog=EXIT_CODES)
@click.option(
    "--task",
    "task_name",
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
    "--mode",
    type=click.Choice([*MODES, "all"]),
    default="eager",
    show_default=True,
    help="eager: each framework's default execution; compiled: torch.compile, Keras "
    "jit_compile=True, a whole JAX epoch in lax.scan; all: both, each its own row.",
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
    help="Threads for every framework, at most the usable cores  [default: all usable cores]",
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
@click.option(
    "--data-dir",
    type=click.Path(path_type=Path),
    default=None,
    help="Folder holding the dataset files (also $HARNESS_DATA_DIR); "
    "else the user cache, then the copy shipped with harness.",
)
@click.option(
    "--resume",
    type=click.Path(path_type=Path),
    default=None,
    metavar="RUN_DIR",
    help="Finish an interrupted run: run only its cells that have no complete result, "
    "with the configuration recorded in RUN_DIR (give no other run options).",
)
@click.pass_context
def run(
    ctx,
    task_name,
    frameworks,
    all_frameworks,
    device,
    mode,
    epochs,
    threads,
    repeats,
    timeout,
    memory_limit,
    train_subset,
    out,
    data_dir,
    resume,
) -> None:
    """Train a task with one or more frameworks and record accuracy, time and memory."""
    registry = get_registry()
    if resume is not None:
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
        run_dir, config = RunDir.open(resume)
        task = Task.model_validate(config["task"])
    else:
        if not task_name:
            raise click.UsageError("give --task NAME (see `harness list`), or --resume RUN_DIR")
        task = load_task(task_name)
        if epochs is not None:
            task = task.with_epochs(epochs)
        if all_frameworks == bool(frameworks):
            raise click.UsageError("give either --framework NAME (one or more) or --all-frameworks")
        names = sorted(registry.frameworks) if all_frameworks else list(dict.fromkeys(frameworks))
        if not names:
            raise HarnessError(
                "no frameworks are registered; install one, e.g. pip install 'harness[torch]'"
            )
        cores = usable_cores()
        if threads is not None and threads > cores:
            raise click.BadParameter(
                f"{threads} is more than the {cores} usable cores", param_hint="'--threads'"
            )
        config = {
            "task": task.model_dump(mode="json"),
            "frameworks": names,
            "device": device,
            "modes": list(MODES) if mode == "all" else [mode],
            "repeats": repeats,
            "threads": threads or cores,
            "timeout": timeout,
            "memory_limit": memory_limit,
            "train_subset": train_subset,
            "data_dir": str(data_dir.resolve()) if data_dir else None,
        }
        run_dir = None

    for name in config["frameworks"]:
        registry.framework(name)  # an unknown name fails here, before any work
    if config["device"] == "gpu" and not gpu_present():
        raise HarnessError(
            "--device gpu: no GPU found on this machine (no NVIDIA or ROCm device); "
            "use --device cpu or --device auto"
        )
    recorded_dir = Path(config["data_dir"]) if config["data_dir"] else None
    data_paths = datasets.locate(task.dataset.name, recorded_dir)
    settings = runner.RunSettings(
        threads=config["threads"],
        timeout=config["timeout"],
        memory_limit=config["memory_limit"],
        data_paths={role: str(path.resolve()) for role, path in data_paths.items()},
        train_subset=config["train_subset"],
    )
    cells = runner.plan(
        task,
        config["frameworks"],
        config["device"],
        config["repeats"],
        config.get("modes", ["eager"]),
    )

    if run_dir is None:
        run_dir = RunDir.create(out, task.name)
        run_dir.write_json(RUN_FILE, {"schema": SCHEMA_VERSION, "run_id": run_dir.run_id, **config})
        versions = {
            name: registry.frameworks[name].adapter.version() for name in config["frameworks"]
        }
        run_dir.write_json(
            ENVIRONMENT_FILE,
            environment_record(threads=settings.threads, seed=task.seed, frameworks=versions),
        )
        todo = cells
    else:
        done = {row.get("cell_id") for row in run_dir.read_results()}
        todo = [cell for cell in cells if cell.id not in done]
        console.print(
            f"resuming {run_dir.run_id}: {len(cells) - len(todo)} of {len(cells)} "
            "cell(s) already have a result",
            highlight=False,
        )

    console.print(
        f"run [bold]{run_dir.run_id}[/]: task {task.name}, "
        f"{len(todo)} cell(s) to run, {settings.threads} thread(s) each",
        highlight=False,
    )
    with RunProgress(len(todo)) as progress:
        runner.execute(todo, settings, run_dir, registry, progress)
    rows = run_dir.read_results()
    run_dir.write_table()
    console.print(
        results_table(
            rows, title=f"{task.name} (target {task.target.metric} ≥ {task.target.min:g})"
        )
    )
    problems = problems_table(rows)
    if problems is not None:
        console.print(problems)
    console.print(f"results: {run_dir.path}", highlight=False)
    if any(row["status"] == "failed" for row in rows):
        raise SystemExit(1)


@cli.command()
@click.option(
    "--framework",
    "-f",
    "frameworks",
    multiple=True,
    metavar="NAME",
    help="A framework to calibrate; repeat for several  [default: every available one]",
)
@click.option(
    "--device", type=click.Choice(runner.DEVICE_CHOICES), default="auto", show_default=True
)
@click.option(
    "--threads",
    type=click.IntRange(1, 4096),
    default=None,
    help="Threads, as for `harness run`  [default: all usable cores]",
)
@click.option(
    "--size",
    type=click.IntRange(64, 65536),
    default=None,
    help="Matrix size  [default: 2048 on a CPU, 8192 on a GPU]",
)
@click.option(
    "--repeats",
    type=click.IntRange(1, 10_000),
    default=5,
    show_default=True,
    help="Matrix products per timed round (the best of 3 rounds counts).",
)
def calibrate(frameworks, device, threads, size, repeats) -> None:
    """Measure each framework's peak float32 matrix-product FLOP/s here, and cache it.

    `harness run` divides each cell's achieved FLOP/s by this peak (same framework, version,
    device and thread count) to report its model-FLOP utilisation.
    """
    registry = get_registry()
    names = list(dict.fromkeys(frameworks)) or sorted(
        name
        for name, entry in registry.frameworks.items()
        if entry.adapter.availability().available
    )
    for name in names:
        registry.framework(name)
    if device == "gpu" and not gpu_present():
        raise HarnessError(
            "--device gpu: no GPU found on this machine (no NVIDIA or ROCm device); "
            "use --device cpu or --device auto"
        )
    cores = usable_cores()
    if threads is not None and threads > cores:
        raise click.BadParameter(
            f"{threads} is more than the {cores} usable cores", param_hint="'--threads'"
        )
    threads = threads or cores
    table = Table(title=f"float32 matrix products, {threads} thread(s)")
    for column in ("framework", "version", "device", "GFLOP/s", "note"):
        table.add_column(column)
    entries: dict = {}
    for name in names:
        adapter = registry.framework(name)
        with console.status(f"calibrating {name}"):
            outcome = calibration.measure(
                name, device=device, threads=threads, size=size, repeats=repeats
            )
        if outcome["status"] != "ok":
            table.add_row(name, adapter.version() or "", device, "", escape(outcome["error"] or ""))
            continue
        entries.update(
            calibration.record(
                name,
                adapter.version(),
                outcome["device"],
                threads,
                outcome["flops_per_second"],
                outcome["size"],
            )
        )
        table.add_row(
            name,
            adapter.version() or "",
            outcome["device_name"],
            f"{outcome['flops_per_second'] / 1e9:,.1f}",
            f"{outcome['size']}² matrices",
        )
    console.print(table)
    if entries:
        console.print(f"cached in {calibration.save(entries)}", highlight=False)
    if len(entries) < len(names):
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
