"""Which tasks and datasets there are, and a one-line summary of each, without loading them.

``harness list`` shows every task and dataset. Validating a task file (:mod:`harness.workload.tasks`) imports
pydantic and NumPy, which alone take longer than the whole command should; so the summaries
(and those of the built-in datasets, whose module imports NumPy) are cached in the user's
cache folder, each task keyed by its file's size and times, in a file
named after what validation depends on (the validating code's files, the datasets plugins
registered). A changed file, a new harness or a new dataset plugin summarises afresh. This module imports
nothing but the standard library and :mod:`platformdirs`.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from harness.errors import unknown_name_message
from harness.registry.task_files import builtin_task_files, is_task_path

if TYPE_CHECKING:  # the catalog's summaries are read without pydantic or NumPy
    from harness.data.datasets import DatasetInfo
    from harness.workload.tasks import Task

#: the cache's layout; a cache of another version is ignored and rewritten
CACHE_VERSION = 2
#: far more than the summaries of every task file take
MAX_CACHE_BYTES = 16 << 20


def task_files() -> dict[str, Path]:
    """Every task ``--task NAME`` finds: the built-in ones and those plugins register."""
    from harness.registry.plugins import get_registry  # the registry uses builtin_task_files

    plugged = {name: entry.path for name, entry in get_registry().tasks.items()}
    return {**plugged, **builtin_task_files()}


class KnownDatasets(Mapping[str, "DatasetInfo"]):
    """The built-in datasets and those plugins register, by name. The plugin registry is
    consulted only for a name that is not built in, so a task on MNIST is validated (in the
    runner or in a cell's child process) without discovering plugins."""

    def __getitem__(self, name: str) -> DatasetInfo:
        builtin = self._builtin()
        if name in builtin:
            return builtin[name]
        return self._plugged()[name].info

    def __contains__(self, name: object) -> bool:
        return name in self._builtin() or name in self._plugged()

    def __iter__(self) -> Iterator[str]:
        return iter({**self._builtin(), **self._plugged()})

    def __len__(self) -> int:
        return len({**self._builtin(), **self._plugged()})

    @staticmethod
    def _builtin() -> dict[str, DatasetInfo]:
        from harness.data.datasets import DATASETS  # NumPy: not for `harness list`

        return DATASETS

    @staticmethod
    def _plugged() -> dict[str, Any]:
        from harness.registry.plugins import get_registry  # pluggy: only when a name needs it

        return get_registry().datasets


def known_datasets() -> KnownDatasets:
    """The built-in datasets and those plugins register (``harness_register_datasets``)."""
    return KnownDatasets()


def dataset_info(name: str) -> DatasetInfo:
    """The dataset called ``name``: a built-in one, or one a plugin registered."""
    return known_datasets()[name]


def load_task(name_or_path: str) -> Task:
    """A task by name (``mnist_mlp``, or one a plugin registered), or by path (``./my.toml``),
    validated against every dataset the harness and its plugins know."""
    from harness.workload.tasks import TaskError, load_task_file  # pydantic: not for `harness list`

    if is_task_path(name_or_path):
        return load_task_file(Path(name_or_path), known_datasets())
    builtin = builtin_task_files()
    if name_or_path in builtin:
        return load_task_file(builtin[name_or_path], known_datasets())
    known = task_files()
    if name_or_path not in known:
        raise TaskError(
            unknown_name_message("task", name_or_path, known)
            + "; or give the path of a .toml task file"
        )
    return load_task_file(known[name_or_path], known_datasets())


def catalog_summaries(*, use_cache: bool = True) -> dict[str, list[dict[str, Any]]]:
    """``tasks``: :func:`task_summaries`; ``datasets``: :func:`dataset_summaries`. One read
    and at most one write of the cache for both."""
    context = validation_context()
    cache_path = summary_cache_path(context)
    cached = read_cache(cache_path, context) if use_cache else {}
    tasks, fresh = _summarise_tasks(cached.get("tasks", {}))
    builtin = cached.get("datasets") or builtin_dataset_summaries()
    if use_cache and (fresh != cached.get("tasks") or builtin != cached.get("datasets")):
        write_cache(cache_path, context, {"tasks": fresh, "datasets": builtin})
    datasets = sorted(builtin + plugged_dataset_summaries(), key=lambda found: found["name"])
    for dataset in datasets:
        dataset["tasks"] = [
            task["name"] for task in tasks if task.get("dataset") == dataset["name"]
        ]
    return {"tasks": tasks, "datasets": datasets}


def task_summaries(*, use_cache: bool = True) -> list[dict[str, Any]]:
    """Each task (built-in or from a plugin): its dataset, layers, epochs and target, or the
    reason its file is invalid (``problem``), sorted by name."""
    return catalog_summaries(use_cache=use_cache)["tasks"]


def dataset_summaries(*, use_cache: bool = True) -> list[dict[str, Any]]:
    """Each dataset (built-in or from a plugin): its provider, kind (``files`` read and
    verified against SHA-256 sums, or ``generated`` from the task's seed), input shape,
    classes (0 for regression) and the tasks that train on it, sorted by name."""
    return catalog_summaries(use_cache=use_cache)["datasets"]


def _summarise_tasks(cached: dict[str, Any]) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """The task summaries, from ``cached`` where a file is unchanged; the entries to cache."""
    summaries, fresh = [], {}
    for name, path in sorted(task_files().items()):
        identity = file_identity(path)
        hit = cached.get(str(path))
        if identity is not None and hit is not None and hit["identity"] == identity:
            summary = hit["summary"]
        else:
            summary = summarise(path)
        summaries.append({"name": name, "path": str(path), **summary})
        if identity is not None:
            fresh[str(path)] = {"identity": identity, "summary": summary}
    return summaries, fresh


def builtin_dataset_summaries() -> list[dict[str, Any]]:
    """The built-in datasets described (this imports NumPy, hence the cache)."""
    from harness.data.datasets import DATASETS

    return [describe_dataset(info) for info in DATASETS.values()]


def plugged_dataset_summaries() -> list[dict[str, Any]]:
    """The datasets plugins registered (their plugins are imported already)."""
    from harness.registry.plugins import get_registry

    entries = get_registry().datasets.values()
    return [describe_dataset(entry.info) for entry in entries]


def describe_dataset(info: DatasetInfo) -> dict[str, Any]:
    """What ``harness list`` says of a dataset (``provider``: ``harness``, or the plugin)."""
    return {
        "name": info.name,
        "provider": info.provider,
        # a label at every step: token windows (austen's, read from a verified text)
        "kind": "tokens"
        if info.label_shape
        else "generated"
        if info.generate is not None
        else "files",
        "input_shape": list(info.input_shape),
        "num_classes": info.num_classes,
    }


def summarise(path: Path) -> dict[str, Any]:
    """Validate one task file and describe it (this imports :mod:`harness.workload.tasks`)."""
    from harness.errors import HarnessError
    from harness.workload.tasks import load_task_file

    try:
        task = load_task_file(path, known_datasets())
    except HarnessError as exc:
        return {"problem": str(exc)}
    return {
        "problem": None,
        "dataset": task.dataset.name,
        "layers": [
            f"{layer.kind}({getattr(layer, 'units', '')})".replace("()", "")
            for layer in task.model.layers
        ],
        "epochs": task.training.epochs,
        "target": task.target.describe(),
    }


def file_identity(path: Path) -> list[int] | None:
    """What changes when a file does: size, modification and change times, inode."""
    try:
        found = path.stat()
    except OSError:
        return None
    return [found.st_size, found.st_mtime_ns, found.st_ctime_ns, found.st_ino]


def validation_context() -> dict[str, Any]:
    """What a task's validity depends on besides its file: the code that validates it, and
    the datasets plugins registered (a task may name one)."""
    from harness.registry.plugins import get_registry

    package = Path(__file__).parent.parent
    validating = ("workload/tasks.py", "registry/catalog.py", "data/datasets.py", "data/series.py")
    code = {name: file_identity(package / name) for name in validating}
    datasets = {name: entry.source for name, entry in get_registry().datasets.items()}
    return {"version": CACHE_VERSION, "code": code, "datasets": datasets}


def summary_cache_path(context: dict[str, Any]) -> Path:
    """One file per context: two installs of harness, or the same one with other plugins,
    keep a cache each instead of overwriting each other's."""
    import hashlib

    import platformdirs

    digest = hashlib.sha256(json.dumps(context, sort_keys=True).encode()).hexdigest()[:16]
    return Path(platformdirs.user_cache_dir("harness")) / f"task-summaries-{digest}.json"


def read_cache(path: Path, context: dict[str, Any]) -> dict[str, Any]:
    """The cached summaries (``tasks`` by file, the built-in ``datasets``), or nothing if the
    cache is missing, unreadable, damaged or made for another context."""
    from harness.errors import HarnessError
    from harness.paths import read_regular

    try:
        found = json.loads(read_regular(path, MAX_CACHE_BYTES).decode("utf-8"))
    except (OSError, ValueError, HarnessError):  # a pipe or a link planted there too
        return {}
    if not isinstance(found, dict) or found.get("context") != context:
        return {}
    entries, datasets = found.get("tasks"), found.get("datasets")
    if not isinstance(entries, dict):
        return {}
    tasks = {
        key: entry
        for key, entry in entries.items()
        if isinstance(entry, dict) and well_formed(entry.get("summary"))
    }
    if not (isinstance(datasets, list) and all(map(well_formed_dataset, datasets))):
        return {"tasks": tasks}
    return {"tasks": tasks, "datasets": datasets}


def well_formed(summary: Any) -> bool:
    """A summary as :func:`summarise` writes it (a damaged cache entry is summarised again)."""
    if not isinstance(summary, dict):
        return False
    if summary.get("problem") is not None:
        return isinstance(summary["problem"], str)
    return (
        isinstance(summary.get("dataset"), str)
        and isinstance(summary.get("layers"), list)
        and all(isinstance(layer, str) for layer in summary["layers"])
        and isinstance(summary.get("epochs"), int)
        and isinstance(summary.get("target"), str)
    )


def well_formed_dataset(summary: Any) -> bool:
    """A dataset summary as :func:`describe_dataset` writes it."""
    return (
        isinstance(summary, dict)
        and set(summary) == {"name", "provider", "kind", "input_shape", "num_classes"}
        and all(isinstance(summary[key], str) for key in ("name", "provider", "kind"))
        and isinstance(summary["input_shape"], list)
        and all(type(size) is int for size in summary["input_shape"])
        and type(summary["num_classes"]) is int
    )


def write_cache(path: Path, context: dict[str, Any], entries: dict[str, Any]) -> None:
    """Write the cache whole (a temporary file renamed over it); a cache that can't be
    written is no error, the next listing summarises again."""
    from harness.errors import HarnessError
    from harness.paths import write_atomically  # never through a link, an exclusive temporary

    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        write_atomically(path, json.dumps({"context": context, **entries}))
    except (OSError, HarnessError):
        pass
