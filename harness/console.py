"""What the user sees in the terminal: progress while a run goes, tables when it ends."""

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

from harness.runner import Cell

# Off a terminal (CI logs, pipes) rich would wrap tables at 80 columns; give them room.
_WIDTH = None if sys.stdout.isatty() or "COLUMNS" in os.environ else 150
console = Console(width=_WIDTH)
errors = Console(stderr=True, soft_wrap=True)  # an error stays one line, however long

STATUS_STYLE = {"ok": "green", "failed": "bold red", "skipped": "yellow"}


class RunProgress:
    """A bar for the run's cells and one for the epochs of the cell in progress."""

    def __init__(self, total_cells: int) -> None:
        self.progress = Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            TextColumn("{task.fields[note]}"),
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
        self.progress.remove_task(self.epochs)
        self.progress.advance(self.cells)
        style = STATUS_STYLE.get(row["status"], "")
        detail = f": {row['error']}" if row.get("error") else ""
        console.print(f"[{style}]{row['status']:>7}[/] {cell.id}{detail}", highlight=False)


def _seconds(value: float | None) -> str:
    return "" if value is None else f"{value:.2f}"


def _bytes(value: int | None) -> str:
    return "" if value is None else f"{value / 2**20:,.0f} MiB"


def results_table(rows: list[dict[str, Any]], title: str = "") -> Table:
    """The summary table of a run's result rows."""
    table = Table(title=title or None)
    for column, justify in [
        ("framework", "left"),
        ("version", "left"),
        ("device", "left"),
        ("status", "left"),
        ("test acc", "right"),
        ("fit s", "right"),
        ("s/epoch", "right"),
        ("1st epoch s", "right"),
        ("samples/s", "right"),
        ("peak RSS", "right"),
        ("note", "left"),
    ]:
        table.add_column(column, justify=justify)  # type: ignore[arg-type]
    for row in rows:
        metrics = row.get("metrics") or {}
        epochs = metrics.get("epoch_seconds") or []
        steady = epochs[1:] or epochs
        accuracy = metrics.get("test_accuracy")
        accuracy_text = "" if accuracy is None else f"{accuracy:.4f}"
        if row.get("met_target") is not None:
            accuracy_text += " [green]✓[/]" if row["met_target"] else " [red]✗ below target[/]"
        rate = metrics.get("samples_per_second")
        status = row["status"]
        table.add_row(
            row["framework"],
            row.get("framework_version") or "",
            row.get("device_name") or row.get("device", ""),
            f"[{STATUS_STYLE.get(status, '')}]{status}[/]",
            accuracy_text,
            _seconds(metrics.get("fit_seconds")),
            _seconds(sum(steady) / len(steady)) if steady and status == "ok" else "",
            _seconds(epochs[0]) if epochs and status == "ok" else "",
            "" if rate is None else f"{rate:,.0f}",
            _bytes(metrics.get("peak_rss_bytes")),
            row.get("error") or "",
        )
    return table
