"""Past runs, read back from their folders; also the small API for notebooks.

>>> from harness.runs import load_run, load_runs
>>> frame = load_run("results/20261126-152323-mnist_mlp")   # one row per cell
>>> every = load_runs("results")                             # all runs, with a run_id column
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from harness.errors import HarnessError
from harness.results import ENVIRONMENT_FILE, RUN_FILE, RunDir, results_frame


@dataclass(frozen=True)
class Run:
    """One run folder, opened: its configuration, environment and result rows."""

    dir: RunDir
    config: dict[str, Any]
    environment: dict[str, Any]
    rows: list[dict[str, Any]]

    @property
    def run_id(self) -> str:
        return self.dir.run_id

    @property
    def task_name(self) -> str:
        return self.config.get("task", {}).get("name", "?")


def open_run(path: str | Path) -> Run:
    """Open a run folder; a folder that isn't one is a one-line :class:`HarnessError`."""
    run_dir, config = RunDir.open(Path(path))
    try:
        environment = json.loads((run_dir.path / ENVIRONMENT_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        environment = {}
    return Run(run_dir, config, environment, run_dir.read_results())


def list_runs(results: str | Path) -> list[Run]:
    """Every run folder directly under ``results``, oldest first (run ids start with the time)."""
    folder = Path(results)
    if not folder.is_dir():
        raise HarnessError(f"results folder {folder} does not exist; pass one with --results")
    return [open_run(path) for path in sorted(folder.iterdir()) if (path / RUN_FILE).is_file()]


def latest_run(results: str | Path) -> Run:
    runs = list_runs(results)
    if not runs:
        raise HarnessError(f"no runs in {results}; run `harness run` first, or name a run folder")
    return runs[-1]


def load_run(path: str | Path) -> pd.DataFrame:
    """One run's cells as a DataFrame (metrics flattened to ``metrics.<name>`` columns)."""
    return results_frame(open_run(path).rows, lists_as_json=False)


def load_runs(results: str | Path = "results") -> pd.DataFrame:
    """Every run's cells under ``results``, in one DataFrame."""
    rows = [row for run in list_runs(results) for row in run.rows]
    return results_frame(rows, lists_as_json=False)
