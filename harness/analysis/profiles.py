"""Which part of a step moved between two profiled runs (``harness compare`` of two runs made
with ``--profile``).

A profile is one pass, so its figures carry no spread: the comparison says which category's
time per step changed most and by how much, and leaves judging the change to the timed rows.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness.api.profiling import CATEGORIES
from harness.checks.profiling import read_profiles


@dataclass(frozen=True)
class ProfileChange:
    """A profiled cell in both runs: its step, and the category that moved most."""

    cell: str
    #: ``torch (eager)``: how the breakdown names the cell
    label: str
    step_a: float
    step_b: float
    #: the category whose seconds per step changed most, and those seconds in A and B
    category: str
    a: float
    b: float

    def sentence(self) -> str:
        return (
            f"{self.label}: profiled step {self.step_a * 1e3:.2f} → {self.step_b * 1e3:.2f} ms; "
            f"{self.category} moved most: {self.a * 1e3:.2f} → {self.b * 1e3:.2f} ms "
            f"({(self.b - self.a) * 1e3:+.2f} ms)"
        )


def profile_changes(run_a: Path, run_b: Path) -> list[ProfileChange]:
    """Every cell profiled in both runs (by id), with the category that moved most."""
    first = {p["cell"]: p for p in read_profiles(run_a) if _usable(p)}
    changes = []
    for profile in read_profiles(run_b):
        other = first.get(profile["cell"])
        if other is None or not _usable(profile):
            continue
        a, b = other["metrics"]["seconds_per_step"], profile["metrics"]["seconds_per_step"]
        moved = max(CATEGORIES, key=lambda name: abs(b.get(name, 0.0) - a.get(name, 0.0)))
        changes.append(
            ProfileChange(
                cell=profile["cell"],
                label=cell_label(profile),
                step_a=other["metrics"]["measured_seconds_per_step"],
                step_b=profile["metrics"]["measured_seconds_per_step"],
                category=moved,
                a=a.get(moved, 0.0),
                b=b.get(moved, 0.0),
            )
        )
    return changes


def cell_label(record: dict[str, Any]) -> str:
    """``torch (eager)``, with the precision where it isn't float32 and the variant's task."""
    precision = record.get("precision", "float32")
    mode = record["mode"] if precision == "float32" else f"{record['mode']}, {precision}"
    label = f"{record['framework']} ({mode})"
    if record.get("environment"):
        label += f" [{record['environment']}]"
    task = record.get("task", "")
    return f"{label} {task[task.index('[') :]}" if "[" in task else label


def _usable(profile: dict) -> bool:
    metrics = profile.get("metrics", {})
    return (
        profile.get("status") == "ok"
        and isinstance(metrics.get("seconds_per_step"), dict)
        and isinstance(metrics.get("measured_seconds_per_step"), int | float)
    )
