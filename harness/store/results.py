"""Run folders: ``results/<run-id>/`` with ``results.jsonl``, ``results.csv`` and JSON records.

``results.jsonl`` is the source of truth: one JSON object per cell, appended and flushed to
disk as the cell finishes. Everything else (the CSV table, terminal tables) is derived from it
and written to a temporary name first, then renamed, so no reader ever sees half a file.
"""

from __future__ import annotations

import json
import logging
import os
from datetime import datetime
from pathlib import Path
from typing import Any

from harness.errors import HarnessError
from harness.paths import (
    open_no_follow,
    read_regular,
    refuse_links,
    safe_name,
    write_atomically,
)
from harness.store.schema import (
    SCHEMA_VERSION,
    validate_row,
    validate_row_json,
    validate_run_config,
)

logger = logging.getLogger(__name__)

RESULTS_FILE = "results.jsonl"
#: a results file past this is refused, not read whole (a row is a few KB: 200,000 rows fit)
MAX_RESULTS_BYTES = 1 << 30
#: run.json holds a task and a few settings: a few KB
MAX_RECORD_BYTES = 16 << 20
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

    def prepare_for_writing(self) -> None:
        """Make sure ``logs/`` exists (a resumed run writes its cells' logs there)."""
        try:
            self.logs.mkdir(exist_ok=True)
        except OSError as exc:
            raise self._write_failed(self.logs, exc) from None

    @classmethod
    def create(cls, out: Path, label: str, now: datetime | None = None) -> RunDir:
        """Make a new, uniquely named run folder under ``out``."""
        stamp = (now or datetime.now()).strftime("%Y%m%d-%H%M%S")
        base = f"{stamp}-{safe_name(label)}"
        try:
            out.mkdir(parents=True, exist_ok=True)
            for attempt in range(1, 1000):
                path = out / (base if attempt == 1 else f"{base}-{attempt}")
                try:
                    path.mkdir()  # ours alone: mkdir fails on anything there, a link included
                    break
                except FileExistsError:
                    continue
            else:
                raise HarnessError(
                    f"cannot create a run folder in {out}: {base} and 998 more names of this "
                    "second are taken; wait a second or pass another --out"
                )
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
        """An existing run folder and its recorded configuration (``run.json``), validated.

        A folder holding a symbolic link is refused: harness would otherwise write (a log, a
        chart, the results) wherever the link points.
        """
        record = path / RUN_FILE
        if not record.is_file() or record.is_symlink():
            raise HarnessError(
                f"{path} is not a harness run folder (no {RUN_FILE}); give a folder made by harness run"
            )
        refuse_links(path)
        try:
            config = json.loads(read_regular(record, MAX_RECORD_BYTES).decode("utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise HarnessError(
                f"{record}: unreadable run record ({exc}); start a new run"
            ) from None
        schema = config.get("schema") if isinstance(config, dict) else None
        if not isinstance(schema, int) or isinstance(schema, bool):
            raise HarnessError(f"{record}: not a harness run record (no schema version)")
        if schema > SCHEMA_VERSION:
            raise HarnessError(
                f"{path} was written by a newer harness (schema {schema}; this one reads up to "
                f"{SCHEMA_VERSION}); upgrade harness to resume it"
            )
        try:
            config = validate_run_config(config)
        except ValueError as exc:
            raise HarnessError(f"{record}: damaged run record: {exc}") from None
        return cls(path), config

    # -- writing ---------------------------------------------------------------

    def append_result(self, row: dict[str, Any]) -> None:
        """Append one cell's result as a complete line, on disk before this returns.

        A failed write (disk full, read-only folder) is a one-line :class:`HarnessError`; what
        it may leave is an incomplete last line, which readers skip and ``--resume`` runs again.
        """
        text = json.dumps({"schema": SCHEMA_VERSION, **row}, allow_nan=False)
        try:
            validate_row_json(text)  # a row that readers would refuse is never written
        except ValueError as exc:
            raise HarnessError(
                f"{self.path / RESULTS_FILE}: not writing cell {row.get('cell_id')!r}: its row "
                f"does not match the schema: {exc}"
            ) from None
        line = (text + "\n").encode()
        path = self.path / RESULTS_FILE
        try:
            descriptor = open_no_follow(path, os.O_RDWR | os.O_CREAT | os.O_APPEND)
            with os.fdopen(descriptor, "a+b") as handle:
                size = handle.seek(0, os.SEEK_END)
                if size > 0:
                    handle.seek(size - 1)
                    if handle.read(1) != b"\n":
                        # a writer was killed mid-line: end that fragment so this line stays whole
                        line = b"\n" + line
                handle.write(line)
                handle.flush()
                os.fsync(handle.fileno())
        except OSError as exc:
            raise self._write_failed(path, exc) from None

    def write_json(self, name: str, data: Any) -> None:
        self._write_atomically(name, json.dumps(data, indent=2, allow_nan=False) + "\n")

    def write_table(self) -> Path:
        """Write ``results.csv`` (one row per cell, metrics flattened) from ``results.jsonl``."""
        frame = results_frame(self.read_results())
        self._write_atomically(TABLE_FILE, frame.to_csv(index=False))
        return self.path / TABLE_FILE

    def _write_atomically(self, name: str, text: str) -> None:
        try:
            write_atomically(self.path / name, text)
        except OSError as exc:
            raise self._write_failed(self.path / name, exc) from None

    def _write_failed(self, path: Path, exc: OSError) -> HarnessError:
        return HarnessError(
            f"cannot write {path}: {exc.strerror or exc}; nothing half-written was kept: "
            f"free space or make the folder writable, then `harness run --resume {self.path}`"
        )

    # -- reading ---------------------------------------------------------------

    def read_results(self) -> list[dict[str, Any]]:
        """Every result row, each checked against the schema.

        An incomplete line (a writer killed mid-line, or not even text) is skipped with a
        warning; a complete line that is not a result row is a one-line :class:`HarnessError`
        naming the file and line, since reading on would report a run that isn't there.
        """
        path = self.path / RESULTS_FILE
        if not path.exists() and not path.is_symlink():
            return []
        try:
            data = read_regular(path, MAX_RESULTS_BYTES)
        except OSError as exc:
            raise HarnessError(f"{path}: cannot read: {exc.strerror or exc}") from None
        rows = []
        for number, raw in enumerate(data.split(b"\n"), start=1):
            if not raw.strip():
                continue
            try:
                value = json.loads(raw.decode("utf-8"))
            except (UnicodeDecodeError, json.JSONDecodeError):
                logger.warning("%s:%d: ignoring an incomplete result line", path, number)
                continue
            try:
                rows.append(validate_row(value))
            except ValueError as exc:
                raise HarnessError(
                    f"{path}:{number}: not a result row ({exc}); remove or repair that line"
                ) from None
        return rows


def results_frame(rows: list[dict[str, Any]], *, lists_as_json: bool = True) -> Any:
    """Result rows as a DataFrame, metrics flattened to ``metrics.<name>`` columns.

    :param lists_as_json: write list values (per-epoch values) as JSON strings, as a CSV needs;
        ``False`` keeps them as Python lists, as a notebook wants.
    """
    import pandas as pd  # only the readers that build tables pay for pandas

    flat = pd.json_normalize(rows, sep=".")
    if not lists_as_json:
        return flat
    for column in flat.columns:
        if flat[column].map(lambda value: isinstance(value, list | dict)).any():
            flat[column] = flat[column].map(
                lambda value: json.dumps(value) if isinstance(value, list | dict) else value
            )
    return flat
