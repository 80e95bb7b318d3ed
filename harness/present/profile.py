"""The per-step breakdown of a run's profiles (``harness run --profile``), as the terminal
and the reports show it: a table of each category's share per cell, and one sentence per
cell on how much of its step ran outside any operation."""

from __future__ import annotations

from typing import Any

from rich import box
from rich.table import Table
from rich.text import Text

from harness.analysis.profiles import cell_label
from harness.api.profiling import CATEGORIES

#: a category's column heading
HEADINGS = {
    "matmul": "matmul",
    "other_compute": "other",
    "optimizer": "optim",
    "copy": "copy",
    "compile": "compile",
    "overhead": "overhead",
    "unattributed": "unattr.",
}


def outside_operations(record: dict[str, Any]) -> float:
    """The share of a profiled step in which no operation ran (overhead and unattributed)."""
    shares = record["metrics"].get("shares", {})
    return float(shares.get("overhead", 0.0)) + float(shares.get("unattributed", 0.0))


def sentence(record: dict[str, Any]) -> str:
    """One line on a profile: "torch (eager): 71 % of a step outside operations …"."""
    label = cell_label(record)
    if record["status"] != "ok":
        return f"{label}: not profiled: {record.get('error') or record['status']}"
    metrics = record["metrics"]
    shares = metrics.get("shares", {})
    busiest = max((name for name in CATEGORIES if name not in ("overhead", "unattributed")),
                  key=lambda name: shares.get(name, 0.0))  # fmt: skip
    text = (
        f"{label}: {outside_operations(record):.0%} of a step outside operations; "
        f"the largest part inside them is {HEADINGS[busiest]} ({shares.get(busiest, 0.0):.0%})"
    )
    if metrics.get("marked") == "epoch":
        text += "; a scanned epoch, so the shares are the epoch's"
    return text


def breakdown_table(records: list[dict[str, Any]]) -> Table:
    """Each profiled cell's step, and the share of it in each category; a category under
    0.5 % in every cell is left out (the caption names it)."""
    profiled = [r for r in records if r["status"] == "ok" and "shares" in r["metrics"]]
    shown = [
        name
        for name in CATEGORIES
        if any(r["metrics"]["shares"].get(name, 0.0) >= 0.005 for r in profiled)
    ]
    left_out = [HEADINGS[name] for name in CATEGORIES if name not in shown]
    caption = "shares of a profiled step · ms: a profiled step · ×: profiled over unprofiled step"
    if left_out:
        caption += f" · 0 % everywhere: {', '.join(left_out)}"
    table = Table(
        title="where a step's time goes (profiled pass, not the timed one)",
        box=box.SIMPLE_HEAD,
        show_edge=False,
        pad_edge=False,
        collapse_padding=True,
        caption=caption,
    )
    table.add_column("cell", no_wrap=True)
    table.add_column("ms", justify="right", no_wrap=True)
    for name in shown:
        table.add_column(HEADINGS[name], justify="right", no_wrap=True)
    table.add_column("×", justify="right", no_wrap=True)
    for record in records:
        metrics = record["metrics"]
        if record not in profiled:
            table.add_row(cell_label(record), Text(record["status"], style="yellow"))
            continue
        shares = metrics["shares"]
        slowdown = metrics.get("profiler_slowdown")
        table.add_row(
            cell_label(record),
            f"{metrics['measured_seconds_per_step'] * 1e3:.2f}",
            *(f"{shares.get(name, 0.0):.0%}" for name in shown),
            f"{slowdown:.2f}" if slowdown else "",
        )
    return table
