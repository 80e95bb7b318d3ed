"""Run folders: ``results/<run-id>/`` with ``results.jsonl``, ``results.csv`` and JSON records.

``results.jsonl`` is the source of truth: one JSON object per cell, appended and flushed to
disk as the cell finishes. Everything else (the CSV table, terminal tables) is derived from it
and written to a temporary name first, then renamed, so no reader ever sees half a file.
"""

from __future__ import annotations

import json
import logging
import os
import re
from datetime import datetime
from pathlib import Path
from typing import Any

import pandas as pd

from harness.errors import HarnessError

logger = logging.getLogger(__name__)

SCHEMA_VERSION = 1
RESULTS_FILE = "results.jsonl"
TABLE_FILE = "results.csv"
ENVIRONMENT_FILE = "environment.json"
RUN_FILE = "run.json"


class RunDir:
    """One run's folder."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.logs = path / "logs"

    @property
    def run_id(self) -> str:
        return self.path.name

    @classmethod
    def create(cls, out: Path, label: str, now: datetime | None = None) -> RunDir:
        """Make a new, uniquely named run folder under ``out``."""
        stamp = (now or datetime.now()).strftime("%Y%m%d-%H%M%S")
        base = f"{stamp}-{re.sub(r'[^A-Za-z0-9_.-]', '_', label)}"
        try:
            out.mkdir(parents=True, exist_ok=True)
            for attempt in range(1, 1000):
                path = out / (base if attempt == 1 else f"{base}-{attempt}")
                try:
                    path.mkdir()
                    break
                except FileExistsError:
                    continue
            run = cls(path)
            run.logs.mkdir()
            return run
        except OSError as exc:
            raise HarnessError(
                f"cannot create a run folder in {out}: {exc.strerror or exc}; "
                "pass a writable folder with --out"
            ) from None

    @classmethod
    def open(cls, path: Path) -> tuple[RunDir, dict[str, Any]]:
        """An existing run folder and its recorded configuration (``run.json``)."""
        record = path / RUN_FILE
        if not record.is_file():
            raise HarnessError(
                f"{path} is not a harness run folder (no {RUN_FILE}); give a folder made by harness run"
            )
        try:
            config = json.loads(record.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise HarnessError(
                f"{record}: unreadable run record ({exc}); start a new run"
            ) from None
        schema = config.get("schema") if isinstance(config, dict) else None
        if not isinstance(schema, int):
            raise HarnessError(f"{record}: not a harness run record (no schema version)")
        if schema > SCHEMA_VERSION:
            raise HarnessError(
                f"{path} was written by a newer harness (schema {schema}; this one reads up to "
                f"{SCHEMA_VERSION}); upgrade harness to resume it"
            )
        run = cls(path)
        run.logs.mkdir(exist_ok=True)
        return run, config

    # -- writing ---------------------------------------------------------------

    def append_result(self, row: dict[str, Any]) -> None:
        """Append one cell's result as a complete line, on disk before this returns."""
        line = (json.dumps({"schema": SCHEMA_VERSION, **row}, allow_nan=False) + "\n").encode()
        with open(self.path / RESULTS_FILE, "a+b") as handle:
            size = handle.seek(0, os.SEEK_END)
            if size > 0:
                handle.seek(size - 1)
                if handle.read(1) != b"\n":
                    # a writer was killed mid-line: end that fragment so this line stays whole
                    line = b"\n" + line
            handle.write(line)
            handle.flush()
            os.fsync(handle.fileno())

    def write_json(self, name: str, data: Any) -> None:
        self._write_atomically(name, json.dumps(data, indent=2, allow_nan=False) + "\n")

    def write_table(self) -> Path:
        """Write ``results.csv`` (one row per cell, metrics flattened) from ``results.jsonl``."""
        frame = results_frame(self.read_results())
        self._write_atomically(TABLE_FILE, frame.to_csv(index=False))
        return self.path / TABLE_FILE

    def _write_atomically(self, name: str, text: str) -> None:
        target = self.path / name
        temporary = target.with_name(f".{name}.tmp")
        temporary.write_text(text, encoding="utf-8")
        os.replace(temporary, target)

    # -- reading ---------------------------------------------------------------

    def read_results(self) -> list[dict[str, Any]]:
        """Every complete result line; a torn last line (a killed writer) is skipped with a warning."""
        path = self.path / RESULTS_FILE
        if not path.exists():
            return []
        rows = []
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
            if not line.strip():
                continue
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError:
                logger.warning("%s:%d: ignoring an incomplete result line", path, number)
        return rows


def results_frame(rows: list[dict[str, Any]], *, lists_as_json: bool = True) -> pd.DataFrame:
    """Result rows as a DataFrame, metrics flattened to ``metrics.<name>`` columns.

    :param lists_as_json: write list values (per-epoch values) as JSON strings, as a CSV needs;
        ``False`` keeps them as Python lists, as a notebook wants.
    """
    flat = pd.json_normalize(rows, sep=".")
    if not lists_as_json:
        return flat
    for column in flat.columns:
        if flat[column].map(lambda value: isinstance(value, list | dict)).any():
            flat[column] = flat[column].map(
                lambda value: json.dumps(value) if isinstance(value, list | dict) else value
            )
    return flat
