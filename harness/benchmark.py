"""Running a benchmark from Python: ``harness.run(...)``, the layer ``harness run`` stands on.

    import harness

    result = harness.run("mnist_mlp", frameworks=["torch"], epochs=1, train_subset=2000)
    [row] = result.rows                       # typed rows (harness.store.schema.ResultRow)
    print(row.framework, row.status, row.metrics.test_accuracy)
    frame = result.to_pandas()                # one line per row, metrics as metrics.<name>

A run writes the same run folder as the command line (``result.run_dir``), so ``harness show``,
``harness report`` and ``harness compare`` read it. :func:`plan_run` is the part both share:
the task's variants, the checks made before any cell starts, and the cells.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harness import runner
from harness.analysis.annotate import annotate
from harness.api.adapter import MODES
from harness.data import datasets
from harness.errors import HarnessError
from harness.measure.environment import environment_record, usable_cores, usable_memory
from harness.registry.catalog import known_datasets, load_task
from harness.registry.plugins import Registry, get_registry
from harness.runner.environments import IndexOptions, environment_matrix
from harness.runner.executors import get_executor
from harness.store.locking import run_folder_lock
from harness.store.results import ENVIRONMENT_FILE, RUN_FILE, SCHEMA_VERSION, RunDir
from harness.store.schema import ResultRow
from harness.workload import feasibility
from harness.workload.precision import PRECISIONS
from harness.workload.tasks import Task
from harness.workload.variants import Variant, parse_vary, sweep


@dataclass
class PlannedRun:
    """A run checked and planned, before any cell starts."""

    task: Task
    variants: list[Variant]
    #: what run.json records (and ``--resume`` reads back)
    config: dict[str, Any]
    settings: runner.RunSettings
    cells: list[runner.Cell]
    registry: Registry


@dataclass
class RunResult:
    """A finished run: its folder and its rows, annotated as ``harness show`` reads them."""

    run_dir: Path
    rows: list[ResultRow] = field(default_factory=list)

    def to_pandas(self) -> Any:
        """The rows as a DataFrame, metrics flattened to ``metrics.<name>`` columns."""
        from harness.store.results import results_frame

        plain = [row.model_dump(mode="json", by_alias=True) for row in self.rows]
        return results_frame(plain, lists_as_json=False)


def run_config(
    task: Task,
    frameworks: Sequence[str],
    *,
    device: str = "auto",
    modes: Sequence[str] = ("eager",),
    precisions: Sequence[str] = ("float32",),
    repeats: int = 1,
    threads: int | None = None,
    timeout: float = 3600,
    memory_limit: int | None = None,
    train_subset: int | None = None,
    data_dir: Path | None = None,
    executor: str = "local",
    ray_address: str | None = None,
    with_requirements: Sequence[str] = (),
    index_url: str | None = None,
    find_links: Sequence[str] = (),
    offline: bool = False,
) -> dict[str, Any]:
    """The configuration a run records in run.json (``--resume`` reads it back).

    :param with_requirements: ``--with`` values: every cell runs once in each environment
        they make (:func:`harness.runner.environments.environment_matrix`)
    """
    if with_requirements and executor == "inline":
        raise HarnessError(
            "--executor inline runs cells in this process, so it can't use --with environments"
        )
    environments = environment_matrix(with_requirements) if with_requirements else None
    return {
        "task": task.model_dump(mode="json"),
        "frameworks": list(dict.fromkeys(frameworks)),
        "device": device,
        "modes": list(MODES) if list(modes) == ["all"] else list(modes),
        "precisions": list(PRECISIONS) if list(precisions) == ["all"] else list(precisions),
        "repeats": repeats,
        "threads": threads or usable_cores(),
        "timeout": timeout,
        "memory_limit": memory_limit,
        "train_subset": train_subset,
        "data_dir": str(Path(data_dir).resolve()) if data_dir else None,
        "executor": executor,
        "ray_address": ray_address,
        "environments": [list(pins) for pins in environments] if environments else None,
        "index_url": index_url,
        "find_links": [
            location if "://" in location else str(Path(location).resolve())
            for location in find_links
        ],
        "offline": offline,
    }


def plan_run(
    task: Task, config: dict[str, Any], varied: Sequence[tuple[str, list[Any]]]
) -> PlannedRun:
    """Apply ``--vary`` (single values as overrides, several as variants), check every
    framework name, the data and each variant's feasibility, and plan the cells."""
    registry = get_registry()
    variants: list[Variant] = []
    if varied:
        task, variants = sweep(task, varied, known_datasets())
        config["task"] = task.model_dump(mode="json")  # single values applied
        config["vary"] = [[key, values] for key, values in varied if len(values) > 1] or None
    for name in config["frameworks"]:
        registry.framework(name)  # an unknown name fails here, before any work
    recorded_dir = Path(config["data_dir"]) if config["data_dir"] else None
    data_paths = datasets.locate(task.dataset_info, recorded_dir)
    for each in variants or [Variant(task, ())]:
        feasibility.check(
            each.task, data_paths, memory_limit=config["memory_limit"], usable=usable_memory()
        )
    settings = runner.RunSettings(
        threads=config["threads"],
        timeout=config["timeout"],
        memory_limit=config["memory_limit"],
        data_paths={role: str(path.resolve()) for role, path in data_paths.items()},
        train_subset=config["train_subset"],
        index=IndexOptions(
            config.get("index_url"),
            tuple(config.get("find_links") or ()),
            bool(config.get("offline")),
        ),
    )
    cells = runner.plan(
        task,
        config["frameworks"],
        config["device"],
        config["repeats"],
        config.get("modes", ["eager"]),
        variants,
        config.get("precisions", ["float32"]),
        [tuple(pins) for pins in config.get("environments") or [()]],
    )
    return PlannedRun(task, variants, config, settings, cells, registry)


def write_run_files(planned: PlannedRun, run_dir: RunDir) -> None:
    """A new run folder's run.json and environment.json (under its lock)."""
    run_dir.write_json(
        RUN_FILE, {"schema": SCHEMA_VERSION, "run_id": run_dir.run_id, **planned.config}
    )
    versions = {
        name: planned.registry.frameworks[name].adapter.version()
        for name in planned.config["frameworks"]
    }
    record = environment_record(
        threads=planned.settings.threads,
        seed=planned.task.seed,
        frameworks=versions,
        plugins=planned.registry.contributions(),
    )
    run_dir.write_json(ENVIRONMENT_FILE, record)


def execute(
    planned: PlannedRun, run_dir: RunDir, cells: list[runner.Cell], observer: runner.Observer
) -> list[dict[str, Any]]:
    """Run ``cells`` into ``run_dir``; the run's rows afterwards, annotated."""
    executor = get_executor(planned.config["executor"], address=planned.config.get("ray_address"))
    executor.execute(cells, planned.settings, run_dir, planned.registry, observer)
    return annotate(run_dir.read_results(), planned.task, planned.task.target)


class _Quiet:
    """An observer that shows nothing (a notebook reads the result instead)."""

    def cell_started(self, cell: runner.Cell) -> None:
        pass

    def cell_event(self, cell: runner.Cell, event: dict[str, Any]) -> None:
        pass

    def cell_finished(self, cell: runner.Cell, row: dict[str, Any]) -> None:
        pass


def run(
    task: str | Task,
    frameworks: Sequence[str] | None = None,
    *,
    epochs: int | None = None,
    dataset: str | None = None,
    vary: Sequence[str] = (),
    out: Path | str = "results",
    observer: runner.Observer | None = None,
    **options: Any,
) -> RunResult:
    """Train ``task`` (a name, a path, or a :class:`~harness.workload.tasks.Task`) with each of
    ``frameworks`` (every registered one when ``None``) and return the run's rows.

    ``options`` are those of :func:`run_config` (``device``, ``modes``, ``precisions``, ``repeats``,
    ``threads``, ``timeout``, ``memory_limit``, ``train_subset``, ``data_dir``, ``executor``,
    ``ray_address``); ``vary`` takes ``--vary`` strings (``"training.batch_size=32,64"``).

    :raises HarnessError: one line, as the command line would print it
    """
    loaded = load_task(task) if isinstance(task, str) else task
    if epochs is not None:
        loaded = loaded.with_epochs(epochs)
    if dataset is not None:
        loaded = loaded.with_dataset(dataset, known_datasets())
    names = list(frameworks) if frameworks is not None else sorted(get_registry().frameworks)
    if not names:
        raise HarnessError(
            "no frameworks are registered; install one, e.g. pip install 'harness[torch]'"
        )
    config = run_config(loaded, names, **options)
    planned = plan_run(loaded, config, [parse_vary(option) for option in vary])
    run_dir = RunDir.create(Path(out), planned.task.name)
    with run_folder_lock(run_dir.path, "harness.run"):
        write_run_files(planned, run_dir)
        rows = execute(planned, run_dir, planned.cells, observer or _Quiet())
    return RunResult(run_dir.path.resolve(), [ResultRow.model_validate(row) for row in rows])
