"""What the user sees in the terminal: progress while a run goes, tables when it ends."""

from __future__ import annotations

import os
import sys
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
)
from rich.table import Table

from harness.runner import Cell
from harness.stats import summarize

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


def _bytes(value: float | None) -> str:
    return "" if value is None else f"{value / 2**20:,.0f} MiB"


def _median(rows: list[dict[str, Any]], metric: str) -> float | None:
    summary = summarize([row["metrics"].get(metric) for row in rows])
    return summary.median if summary else None


def _median_spread(rows: list[dict[str, Any]], metric: str, digits: int = 2) -> str:
    """``4.23 ±0.05``: the median over repeats and half the interquartile range."""
    summary = summarize([row["metrics"].get(metric) for row in rows])
    if summary is None:
        return ""
    text = f"{summary.median:.{digits}f}"
    return text + (f" ±{summary.iqr / 2:.{digits}f}" if summary.count > 1 else "")


def _milliseconds(value: float | None) -> str:
    return "" if value is None else f"{value * 1000:.2f}"


def results_table(rows: list[dict[str, Any]], title: str = "") -> Table:
    """One line per framework, mode and device: medians over the repeats that finished."""
    table = Table(
        title=title or None,
        caption="± half the interquartile range over repeats; "
        "step times are p50 / p99 of sampled steps after the first epoch",
    )
    for column in (
        "framework",
        "version",
        "mode",
        "device",
        "ok",
        "test acc",
        "fit s",
        "1st epoch s",
        "s/epoch",
        "step ms",
        "to target s",
        "samples/s",
        "peak RSS",
        "GFLOP/s",
        "util",
    ):
        table.add_column(
            column,
            justify="left" if column in ("framework", "version", "mode", "device") else "right",
        )
    groups: dict[tuple[str, str, str], list[dict[str, Any]]] = {}
    for row in rows:
        key = (row["framework"], row.get("mode", "eager"), row.get("device_name") or row["device"])
        groups.setdefault(key, []).append(row)
    for (framework, mode, device), members in groups.items():
        done = [row for row in members if row["status"] == "ok"]
        met = sum(bool(row.get("met_target")) for row in done)
        count = f"{len(done)}/{len(members)}"
        style = "green" if len(done) == len(members) else "red" if not done else "yellow"
        if not done:
            table.add_row(
                framework,
                members[0].get("framework_version") or "",
                mode,
                device,
                f"[{style}]{count}[/]",
                *[""] * 10,
            )
            continue
        accuracy = _median(done, "test_accuracy")
        mark = " [green]✓[/]" if met == len(done) else " [red]✗[/]"
        p50, p99 = _median(done, "step_seconds_p50"), _median(done, "step_seconds_p99")
        flops, utilisation = (
            _median(done, "achieved_flops_per_second"),
            _median(done, "utilisation"),
        )
        reached = [row["metrics"].get("time_to_target_seconds") for row in done]
        table.add_row(
            framework,
            done[0].get("framework_version") or "",
            mode,
            device,
            f"[{style}]{count}[/]",
            ("" if accuracy is None else f"{accuracy:.4f}") + mark,
            _median_spread(done, "fit_seconds"),
            _median_spread(done, "first_epoch_seconds"),
            _median_spread(done, "steady_epoch_seconds"),
            f"{_milliseconds(p50)} / {_milliseconds(p99)}" if p50 is not None else "",
            _median_spread(done, "time_to_target_seconds")
            if all(r is not None for r in reached)
            else "never",
            f"{_median(done, 'samples_per_second') or 0:,.0f}",
            _bytes(_median(done, "peak_rss_bytes")),
            "" if flops is None else f"{flops / 1e9:.1f}",
            "" if utilisation is None else f"{utilisation:.1%}",
        )
    return table


def problems_table(rows: list[dict[str, Any]]) -> Table | None:
    """Every cell that failed, was skipped or missed its target, with the reason; ``None`` if none."""
    flagged = [row for row in rows if row["status"] != "ok" or row.get("kind")]
    if not flagged:
        return None
    table = Table(title="cells that failed, were skipped or missed the target")
    for column in ("cell", "status", "kind", "reason"):
        table.add_column(column)
    for row in flagged:
        style = STATUS_STYLE.get(row["status"], "")
        table.add_row(
            row["cell_id"],
            f"[{style}]{row['status']}[/]",
            row.get("kind") or "",
            escape(row.get("error") or ""),
        )
    return table
