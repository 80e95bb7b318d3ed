"""A profiled step's time split into the same categories for every framework.

Each step the harness marked in a trace (an event named ``"harness step N"``) is swept from
its start to its end. At each instant the operations running decide the category: on each
thread the innermost (inside the optimizer's step, ``optimizer``), across threads the one
with the highest :data:`~harness.api.profiling.PRIORITY` (compilation, then matrix products,
the optimizer, copies, other compute); an instant with no operation running is ``overhead``
(an event that is no operation, such as autograd's bookkeeping around the operations it
calls, leaves its own time there). So the parts
add up to the marked step exactly; the harness's own clock around the step may read a little
more (the marker is entered and left inside it), which is ``unattributed``, and the
difference between the marked step and the measured one is kept beside them.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from harness.api.profiling import CATEGORIES, EPOCH_MARKER, PRIORITY, STEP_MARKER

_REGION = re.compile(rf"^(?:{re.escape(STEP_MARKER)} \d+|{re.escape(EPOCH_MARKER)})$")

Classify = Callable[[dict[str, Any]], "str | None"]


@dataclass(frozen=True)
class StepBreakdown:
    """One profiled region (a step, or a scanned epoch): its seconds by category, which sum
    to ``seconds``."""

    #: the region's marker: ``"harness step 3"`` or ``"harness epoch"``
    region: str
    #: the step as the harness's clock measured it
    measured_seconds: float
    #: the marked step in the trace
    traced_seconds: float
    parts: dict[str, float] = field(default_factory=dict)

    @property
    def seconds(self) -> float:
        return sum(self.parts.values())


def marked_regions(events: Iterable[dict[str, Any]]) -> dict[str, tuple[float, float]]:
    """``{marker: (start, end)}`` in the trace's microseconds, from the harness's markers."""
    regions = {}
    for event in events:
        name = str(event.get("name", ""))
        if _REGION.match(name) and event.get("ph") == "X":
            start = float(event["ts"])
            regions[name] = (start, start + float(event.get("dur", 0.0)))
    return regions


def split_region(
    events: Iterable[dict[str, Any]], classify: Classify, start: float, end: float
) -> dict[str, float]:
    """Microseconds of ``[start, end]`` by category.

    On each thread the innermost running operation decides, except inside an ``optimizer``
    event (the optimizer's step), which claims what runs within it; across threads the
    highest :data:`PRIORITY` wins; an instant with no operation running on any thread is
    ``overhead``.
    """
    points: list[tuple[float, int, int, tuple[Any, Any], float, str]] = []
    for index, event in enumerate(events):
        category = classify(event)
        if category is None:
            continue
        begin = max(float(event["ts"]), start)
        finish = min(float(event["ts"]) + float(event.get("dur", 0.0)), end)
        if finish > begin:
            thread = (event.get("pid"), event.get("tid"))
            # a point: (time, ends before starts, which event, thread, its start, category)
            points.append((begin, 1, index, thread, float(event["ts"]), category))
            points.append((finish, 0, index, thread, float(event["ts"]), category))
    points.sort(key=lambda point: (point[0], point[1]))
    parts = dict.fromkeys(CATEGORIES, 0.0)
    running: dict[tuple[Any, Any], dict[int, tuple[float, str]]] = {}
    now = start
    for time, starts, index, thread, began, category in points:
        parts[_winner(running)] += time - now
        on_thread = running.setdefault(thread, {})
        if starts:
            on_thread[index] = (began, category)
        else:
            on_thread.pop(index, None)
        now = time
    parts[_winner(running)] += end - now
    return parts


def _winner(running: dict[tuple[Any, Any], dict[int, tuple[float, str]]]) -> str:
    """The category of this instant (see :func:`split_region`)."""
    best = None
    for active in running.values():
        if not active:
            continue
        categories = [category for _, category in active.values()]
        # the innermost: the latest to start (nested events start within their parents)
        mine = "optimizer" if "optimizer" in categories else max(active.values())[1]
        if best is None or PRIORITY[mine] > PRIORITY[best]:
            best = mine
    return best or "overhead"


def breakdown(
    events: list[dict[str, Any]], classify: Classify, measured: dict[str, float]
) -> list[StepBreakdown]:
    """Every marked region of ``events`` with a measured time (``{marker: seconds}``), split,
    in the trace's order."""
    # complete events only: metadata (thread names) and instants have no duration
    events = [e for e in events if e.get("ph") == "X" and isinstance(e.get("ts"), int | float)]
    steps = []
    regions = marked_regions(events)
    for name, (start, end) in sorted(regions.items(), key=lambda item: item[1]):
        if name not in measured:
            continue
        inside = [
            event
            for event in events
            if float(event["ts"]) < end and float(event["ts"]) + float(event.get("dur", 0)) > start
        ]
        parts = {
            name: micro / 1e6 for name, micro in split_region(inside, classify, start, end).items()
        }
        traced = (end - start) / 1e6
        parts["unattributed"] = max(0.0, measured[name] - traced)
        steps.append(StepBreakdown(name, measured[name], traced, parts))
    return steps


def summarise(regions: list[StepBreakdown], *, steps_per_region: int = 1) -> dict[str, Any]:
    """Each category's seconds per step and share, over the middle half of the regions by
    their time (a step slowed by something else running, or sped up, weighs nothing); and
    the regions' traced time over their measured time. A region of several steps (a scanned
    epoch) counts as ``steps_per_region`` steps of equal shares."""
    if not regions:
        return {"regions": 0}
    # by the longer of the clock's and the trace's reading: something else running may
    # stretch either (the marker is opened just outside the clock)
    ordered = sorted(regions, key=lambda region: region.seconds)
    quarter = len(ordered) // 4
    middle = ordered[quarter : len(ordered) - quarter]
    total = sum(region.seconds for region in middle)
    steps = len(middle) * steps_per_region
    seconds = {name: sum(r.parts.get(name, 0.0) for r in middle) for name in CATEGORIES}
    return {
        "regions": len(regions),
        "regions_summarised": len(middle),
        "seconds_per_step": {name: value / steps for name, value in seconds.items()},
        "shares": {name: value / total if total > 0 else 0.0 for name, value in seconds.items()},
        "measured_seconds_per_step": sum(r.measured_seconds for r in middle) / steps,
        "traced_over_measured": sum(r.traced_seconds for r in middle)
        / sum(r.measured_seconds for r in middle),
    }
