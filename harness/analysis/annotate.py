"""What is joined into result rows when they are read, not stamped in while a run goes.

A row on disk holds what its cell measured. Three things about it depend on knowledge that can
change after the run: whether it met the task's target (the target recorded in ``run.json``),
the latest agreement verdict for its framework version (``harness check-agreement``'s cache),
and its utilisation of the machine's peak (``harness calibrate``'s cache). They are worked out
here every time rows are read, so a check or a calibration made after a run shows up in
``harness show`` and ``harness report`` of that run. A row from an earlier harness version that
carries these fields keeps them where nothing newer is known.
"""

from __future__ import annotations

from typing import Any

from harness.checks import agreement, calibration
from harness.registry.catalog import known_datasets
from harness.workload.tasks import Target, Task, TaskError
from harness.workload.variants import with_values


def annotate(
    rows: list[dict[str, Any]], task: Task | None, target: Target | None
) -> list[dict[str, Any]]:
    """Copies of ``rows`` with ``met_target``, ``agreement`` and utilisation filled in.

    :param task: the run's task, for the agreement verdict (``None``: keep what rows carry)
    :param target: the run's target, for ``met_target`` (``None``: keep what rows carry)
    """
    peaks = calibration.load()  # one read of the cache for all rows
    tasks: dict[str, tuple[Task | None, Target | None]] = {}
    annotated = []
    for row in rows:
        variant = row.get("variant")
        if not variant or task is None:
            annotated.append(_annotated(row, task, target, peaks))
            continue
        key = repr(sorted(variant.items()))
        if key not in tasks:
            tasks[key] = _variant_task(task, target, variant)
        annotated.append(_annotated(row, *tasks[key], peaks))
    return annotated


def _variant_task(
    task: Task, target: Target | None, variant: dict[str, Any]
) -> tuple[Task | None, Target | None]:
    """The task a sweep's row trained, for its own agreement verdict; its target too where
    the sweep varied the target. A variant that no longer validates keeps what its rows carry."""
    try:
        changed = with_values(task, variant, known_datasets())
    except TaskError:  # a key or value this harness no longer accepts (or a foreign row)
        return None, target
    varies_target = any(key.startswith("target.") for key in variant)
    return changed, changed.target if varies_target else target


def _annotated(
    row: dict[str, Any], task: Task | None, target: Target | None, peaks: dict[str, Any]
) -> dict[str, Any]:
    row = {**row, "metrics": dict(row.get("metrics") or {})}
    if task is not None:
        loaded = (row.get("dataset") or {}).get("sha256")
        version = row.get("framework_version")
        verdict = agreement.status_for(
            task, row["framework"], version, loaded, row.get("precision", "float32")
        )
        row["agreement"] = verdict if verdict is not None else row.get("agreement")
    if row["status"] != "ok":
        row["agreement"] = None  # a cell that didn't train has nothing a verdict could vouch for
        return row
    if target is not None:
        _judge(row, target)
    _utilisation(row, peaks)
    return row


def _judge(row: dict[str, Any], target: Target) -> None:
    quality = row["metrics"].get(target.metric)
    row["met_target"] = target.met(quality)
    if row["met_target"]:
        if row.get("kind") == "target_missed":
            row["kind"], row["error"] = None, None
        return
    # finished, but not good enough: still `ok`, kept apart from "met its target"
    row["kind"] = "target_missed"
    row["error"] = (
        f"{target.metric} {target.describe(quality)}: target missed"
        if quality is not None
        else f"no {target.metric} was measured"
    )


def _utilisation(row: dict[str, Any], peaks: dict[str, Any]) -> None:
    metrics = row["metrics"]
    threads = row.get("threads") or (row.get("settings") or {}).get("threads")
    key = calibration.entry_key(
        row["framework"], row.get("framework_version"), row["device"], threads
    )
    peak = (peaks.get(key) or {}).get("flops_per_second")
    if not peak:
        return  # never calibrated here: keep what the row carries, if anything
    achieved = metrics.get("achieved_flops_per_second")
    metrics["peak_flops_per_second"] = peak
    metrics["utilisation"] = achieved / peak if achieved else None
