"""Past runs, read back from their folders; also the small API for notebooks.

>>> from harness.analysis.runs import load_run, load_runs
>>> frame = load_run("results/20261126-152323-mnist_mlp")   # one row per cell
>>> every = load_runs("results")                             # all runs, with a run_id column
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from harness.analysis.annotate import annotate
from harness.errors import HarnessError
from harness.paths import read_regular
from harness.registry.catalog import known_datasets
from harness.store.results import (
    ENVIRONMENT_FILE,
    MAX_RECORD_BYTES,
    RUN_FILE,
    RunDir,
    results_frame,
)
from harness.workload.tasks import Target, Task

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Run:
    """One run folder, opened: its configuration, environment and result rows."""

    dir: RunDir
    config: dict[str, Any]
    environment: dict[str, Any]
    rows: list[dict[str, Any]]
    #: the ``--with`` environment this is the part of a run for (:func:`environment_part`)
    part: str | None = None

    @property
    def run_id(self) -> str:
        return self.dir.run_id if self.part is None else f"{self.dir.run_id}[{self.part}]"

    @property
    def environment_names(self) -> list[str]:
        """The ``--with`` environments its rows ran in (``""``: harness's own), first seen first."""
        names = ((row.get("environment") or {}).get("name") or "" for row in self.rows)
        return list(dict.fromkeys(names))

    @property
    def task_name(self) -> str:
        return self.config["task"]["name"]


@dataclass(frozen=True)
class UnreadableRun:
    """A folder that looks like a run (it has ``run.json``) but could not be read, and why."""

    path: Path
    reason: str

    @property
    def run_id(self) -> str:
        return self.path.name


#: how ``harness compare --between`` names harness's own environment
OWN_ENVIRONMENT = "base"


def environment_part(run: Run, name: str) -> Run:
    """The rows of ``run`` that ran in the ``--with`` environment ``name`` (``base``: harness's
    own), as a run of their own, so two versions in one run compare like two runs.

    Its rows read as if they had run in harness's own environment (their cells then match the
    other part's), and its environment record holds their packages, so the comparison's
    "environment differences" are the two locks' differences.
    """
    wanted = "" if name == OWN_ENVIRONMENT else name
    rows = [row for row in run.rows if ((row.get("environment") or {}).get("name") or "") == wanted]
    if not rows:
        known = ", ".join(n or OWN_ENVIRONMENT for n in run.environment_names)
        raise HarnessError(
            f"{run.run_id} has no cells in the environment {name!r} (it has: {known})"
        )
    packages: dict[str, str] = next(
        (
            row["environment"]["packages"]
            for row in rows
            if (row.get("environment") or {}).get("packages")
        ),
        {},
    )
    plain = [{**row, "environment": {**(row.get("environment") or {}), "name": ""}} for row in rows]
    environment = {**run.environment, "packages": packages}
    return replace(run, rows=plain, environment=environment, part=name)


def open_run(path: str | Path) -> Run:
    """Open a run folder; a folder that isn't one, or is damaged, is a one-line :class:`HarnessError`."""
    run_dir, config = RunDir.open(Path(path))
    environment_file = run_dir.path / ENVIRONMENT_FILE
    try:
        environment = json.loads(read_regular(environment_file, MAX_RECORD_BYTES).decode("utf-8"))
    except FileNotFoundError:
        environment = {}
    except (OSError, ValueError) as exc:
        raise HarnessError(f"{environment_file}: unreadable ({exc})") from None
    if not isinstance(environment, dict):
        raise HarnessError(f"{environment_file}: expected a JSON object")
    task, target = _recorded_task(config)
    return Run(run_dir, config, environment, annotate(run_dir.read_results(), task, target))


def _recorded_task(config: dict[str, Any]) -> tuple[Task | None, Target | None]:
    """The run's task and target as ``run.json`` holds them; ``None`` where they no longer
    validate (a task file of an older harness), and then rows keep what they carry."""
    recorded = config["task"]
    try:
        target = Target.model_validate(recorded["target"]) if recorded.get("target") else None
    except ValidationError:
        target = None
    try:
        return Task.model_validate(recorded, context={"datasets": known_datasets()}), target
    except ValidationError:
        return None, target


def scan_runs(results: str | Path) -> list[Run | UnreadableRun]:
    """Every run folder directly under ``results``, oldest first; damaged ones say why."""
    folder = Path(results)
    if not folder.is_dir():
        raise HarnessError(f"results folder {folder} does not exist; pass one with --results")
    found: list[Run | UnreadableRun] = []
    for path in sorted(folder.iterdir()):
        if not (path / RUN_FILE).exists() or path.is_symlink():
            continue
        try:
            found.append(open_run(path))
        except HarnessError as exc:
            found.append(UnreadableRun(path, str(exc)))
    return found


def list_runs(results: str | Path) -> list[Run]:
    """Every readable run folder directly under ``results``, oldest first (ids start with the time).

    Damaged run folders are left out with a warning; ``harness runs`` lists them with the reason.
    """
    runs = []
    for run in scan_runs(results):
        if isinstance(run, UnreadableRun):
            logger.warning("skipping %s: %s", run.path, run.reason)
        else:
            runs.append(run)
    return runs


def latest_run(results: str | Path) -> Run:
    """The newest run under ``results`` that can be read."""
    runs = list_runs(results)
    if not runs:
        raise HarnessError(
            f"no readable runs in {results}; run `harness run` first, or name a run folder"
        )
    return runs[-1]


def load_run(path: str | Path) -> Any:
    """One run's cells as a pandas DataFrame (metrics flattened to ``metrics.<name>`` columns)."""
    return results_frame(open_run(path).rows, lists_as_json=False)


def load_runs(results: str | Path = "results") -> Any:
    """Every readable run's cells under ``results``, in one pandas DataFrame."""
    rows = [row for run in list_runs(results) for row in run.rows]
    return results_frame(rows, lists_as_json=False)
