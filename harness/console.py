"""What the user sees in the terminal: progress while a run goes, tables when it ends.

Both consoles have rich's markup switched off: a string is printed as the text it is, wherever
it came from (a task file, a plugin, an exception, a results file), so ``[/]`` in an error can't
abort a run and ``pip install 'harness[jax]'`` keeps its ``[jax]``. Style is given as data
instead, with :func:`styled` (``Text`` objects), never by writing markup into a string.
"""

from __future__ import annotations

import os
import sys
from typing import Any

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
)
from rich.table import Table
from rich.text import Text

from harness.runner import Cell
from harness.summary import flagged_rows, summarise, summary_line
from harness.tasks import Target

# Off a terminal (CI logs, pipes) rich would wrap tables at 80 columns; give them room.
_WIDTH = None if sys.stdout.isatty() or "COLUMNS" in os.environ else 150
console = Console(width=_WIDTH, markup=False, highlight=False)
# an error stays one line, however long
errors = Console(stderr=True, soft_wrap=True, markup=False, highlight=False)


def styled(*parts: str | tuple[str, str]) -> Text:
    """Text from plain strings and ``(text, style)`` pairs: ``styled(("error:", "bold red"), " x")``."""
    return Text.assemble(*parts)


def print_error(message: str) -> None:
    """``error: <message>`` on stderr, one line, the message printed as the text it is."""
    errors.print(styled(("error:", "bold red"), " ", message))


def print_warning(message: str) -> None:
    errors.print(styled(("warning:", "yellow"), " ", message))

STATUS_STYLE = {"ok": "green", "failed": "bold red", "skipped": "yellow"}


class RunProgress:
    """A bar for the run's cells and one for the epochs of the cell in progress."""

    def __init__(self, total_cells: int) -> None:
        self.progress = Progress(
            TextColumn("{task.description}", markup=False),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            TextColumn("{task.fields[note]}", markup=False),
            console=console,
            transient=True,
        )
        self.cells = self.progress.add_task("cells", total=total_cells, note="")
        self.epochs: Any = None

    def __enter__(self) -> RunProgress:
        self.progress.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.progress.stop()

    def cell_started(self, cell: Cell) -> None:
        self.progress.update(self.cells, note=cell.id)
        self.epochs = self.progress.add_task(
            f"  {cell.framework} epochs", total=cell.task.training.epochs, note="starting"
        )

    def cell_event(self, cell: Cell, event: dict[str, Any]) -> None:
        if event.get("event") == "runtime":
            self.progress.update(self.epochs, note=f"on {event.get('device_name')}")
        elif event.get("event") == "epoch":
            self.progress.update(
                self.epochs,
                completed=event["epoch"],
                note=f"loss {event['train_loss']:.4f}, {event['seconds']:.1f} s",
            )

    def cell_finished(self, cell: Cell, row: dict[str, Any]) -> None:
        if self.epochs is not None:  # the Ray executor reports cells only as they finish
            self.progress.remove_task(self.epochs)
            self.epochs = None
        self.progress.advance(self.cells)
        style = STATUS_STYLE.get(row["status"], "")
        detail = f": {row['error']}" if row.get("error") else ""
        console.print(styled((f"{row['status']:>7}", style), f" {cell.id}{detail}"))


def results_table(rows: list[dict[str, Any]], target: Target, title: str = "") -> Table:
    """One line per task, framework, mode and device: medians over the repeats that finished."""
    table = Table(
        title=title or None,
        caption="± half the interquartile range over repeats; step times are p50 / p90 / p99 "
        "of the steps sampled after the first epoch",
    )
    columns = [
        ("framework", "framework"),
        ("version", "version"),
        ("mode", "mode"),
        ("device", "device"),
        ("host", "host"),
        ("ok", "status"),
        ("test acc" if target.higher_is_better else "test MSE", "quality"),
        ("fit s", "fit"),
        ("1st epoch s", "first_epoch"),
        ("s/epoch", "steady_epoch"),
        ("step ms", "steps"),
        ("to target s", "to_target"),
        ("samples/s", "throughput"),
        ("peak RSS", "memory"),
        ("GFLOP/s", "flops"),
        ("util", "utilisation"),
        ("agreement", "agreement"),
        ("", "marks"),
    ]
    for header, _ in columns:
        left = header in ("framework", "version", "mode", "device", "host", "agreement", "")
        table.add_column(header, justify="left" if left else "right")
    for group in summarise(rows):
        line: dict[str, str | Text] = dict(summary_line(group, target))
        done = len(group.done)
        style = "green" if done == len(group.rows) else "red" if not done else "yellow"
        line["status"] = styled((f"{done}/{len(group.rows)}", style))
        if done:
            mark = ("✓", "green") if group.met_target else ("✗", "red")
            line["quality"] = styled(str(line["quality"]), " ", mark)
        table.add_row(*(line[key] for _, key in columns))
    return table


def problems_table(rows: list[dict[str, Any]]) -> Table | None:
    """Every cell that failed, was skipped or missed its target, with the reason; ``None`` if none."""
    flagged = flagged_rows(rows)
    if not flagged:
        return None
    table = Table(title="cells that failed, were skipped or missed the target")
    for column in ("cell", "status", "kind", "reason"):
        table.add_column(column)
    for row in flagged:
        style = STATUS_STYLE.get(row["status"], "")
        table.add_row(
            row["cell_id"], styled((row["status"], style)), row.get("kind") or "", row.get("error") or ""
        )
    return table
