"""Result rows summarised per task, framework, mode, precision and device: what tables and reports show."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from harness.stats import Summary, summarize
from harness.workload.tasks import Target
from harness.workload.variants import row_name, variant_label


@dataclass
class Group:
    """The repeats of one framework, mode and device on one task (a sweep's variant: ``task``
    is then its name, ``mnist_mlp[batch_size=256]``)."""

    task: str
    framework: str
    mode: str
    precision: str
    device: str
    host: str
    #: the ``--with`` environment's name (``jax==0.9.2``); ``""`` for harness's own
    environment: str
    rows: list[dict[str, Any]]
    #: set by :func:`summarise`: lowest median time per epoch (the figure ``relative_time``
    #: divides: steady epochs, or the fit where a row has none) / peak RSS among the task's groups
    fastest: bool = False
    leanest: bool = False
    #: set by :func:`summarise`: time per epoch and peak memory as multiples of the task's best
    relative_time: float | None = None
    relative_memory: float | None = None
    #: set by :func:`summarise` for a compiled group beside an eager one of its framework
    break_even: BreakEven | None = None
    _cache: dict[str, Summary | None] = field(default_factory=dict, repr=False)

    @property
    def done(self) -> list[dict[str, Any]]:
        return [row for row in self.rows if row["status"] == "ok"]

    @property
    def variant(self) -> str:
        """A sweep's values, ``batch_size=256``; ``""`` outside a sweep."""
        return variant_label(self.rows[0].get("variant"))

    @property
    def version(self) -> str:
        """The framework's version; a ``--with`` environment's name where no row recorded
        one (its build failed)."""
        recorded = next(
            (row["framework_version"] for row in self.rows if row.get("framework_version")), None
        )
        return recorded or (f"[{self.environment}]" if self.environment else "")

    @property
    def label(self) -> str:
        """``jax``; in a ``--with`` environment its version too, ``jax 0.9.2``, and the
        environment's name where that doesn't show it (``jax 0.10.2 [numpy<2]``)."""
        if not self.environment:
            return self.framework
        if self.version.startswith("["):  # no row recorded a version
            return f"{self.framework} {self.version}"
        label = f"{self.framework} {self.version}"
        return label if self.version in self.environment else f"{label} [{self.environment}]"

    @property
    def busy(self) -> int:
        """How many finished repeats trained while other processes took the CPU."""
        return sum((row.get("noise") or {}).get("verdict") == "busy" for row in self.done)

    @property
    def met_target(self) -> bool:
        return bool(self.done) and all(row.get("met_target") for row in self.done)

    def stat(self, metric: str) -> Summary | None:
        """Median and quartiles of a metric over the repeats that finished."""
        if metric not in self._cache:
            self._cache[metric] = summarize([row["metrics"].get(metric) for row in self.done])
        return self._cache[metric]

    def median(self, metric: str) -> float | None:
        summary = self.stat(metric)
        return summary.median if summary else None

    def reached_target_every_time(self) -> bool:
        return bool(self.done) and all(
            row["metrics"].get("time_to_target_seconds") is not None for row in self.done
        )


def summarise(rows: list[dict[str, Any]]) -> list[Group]:
    """Groups in first-seen order, with the fastest and leanest of each task marked.

    A group with a repeat that trained on a busy machine is never marked fastest or leanest, and
    is not the best row the relative columns divide by: its figures are shown, not crowned (and
    :func:`summary_line` shows ``busy`` in its × cells, not a multiple).
    """
    groups: dict[tuple[str, str, str, str, str, str, str], Group] = {}
    for row in rows:
        key = (*cell_key(row), environment_of(row))
        groups.setdefault(key, Group(*key, rows=[])).rows.append(row)
    by_task: dict[str, list[Group]] = {}
    for group in groups.values():
        by_task.setdefault(group.task, []).append(group)
    for members in by_task.values():
        time_metric = _time_metric(members)
        # fastest by the figure × time divides, so the fastest row is the one at 1.00×
        for metric, flag in ((time_metric, "fastest"), ("peak_rss_bytes", "leanest")):
            ranked = [(value, g) for g in members if (value := g.median(metric)) is not None]
            best = min(ranked, key=lambda pair: pair[0])[1] if len(ranked) > 1 else None
            # a win is only a win when neither the winner nor a loser ran on a busy machine
            if best is not None and not any(g.busy for _, g in ranked):
                setattr(best, flag, True)
        _set_relative(members, time_metric, "relative_time")
        _set_relative(members, "peak_rss_bytes", "relative_memory")
        _set_break_even(members)
    return list(groups.values())


@dataclass(frozen=True)
class BreakEven:
    """When a compiled mode's fixed cost is repaid against eager (same framework, precision,
    device and host): the fixed cost is the first epoch minus a steady one, and each steady
    step gains the difference of the two modes' steady steps. ``steps`` is ``None`` when the
    compiled steps are no faster (never repaid); 0 when compiled costs less from the start."""

    steps: float | None
    batch_size: int

    @property
    def samples(self) -> float | None:
        return None if self.steps is None else self.steps * self.batch_size

    def describe(self) -> str:
        if self.steps is None:
            return "never"
        return f"{self.steps:,.0f} / {self.samples:,.0f}"


def break_even(eager: Group, compiled: Group) -> BreakEven | None:
    """:class:`BreakEven` of two groups' medians; ``None`` without steady epochs in both."""
    figures = []
    for group in (eager, compiled):
        first, steady = group.median("first_epoch_seconds"), group.median("steady_epoch_seconds")
        samples, batch = group.median("train_samples"), group.median("batch_size")
        if first is None or steady is None or samples is None or not batch:
            return None
        steps = math.ceil(samples / batch)
        figures.append((first - steady, steady / steps, int(batch)))
    (fixed_eager, step_eager, batch), (fixed_compiled, step_compiled, _) = figures
    extra = fixed_compiled - fixed_eager
    gain = step_eager - step_compiled
    if extra <= 0 and gain >= 0:
        return BreakEven(0.0, batch)
    if gain <= 0:
        return BreakEven(None, batch)
    return BreakEven(max(0.0, extra / gain), batch)


def _set_break_even(members: list[Group]) -> None:
    eager = {
        (g.framework, g.precision, g.device, g.host, g.environment): g
        for g in members
        if g.mode == "eager"
    }
    for group in members:
        partner = eager.get(
            (group.framework, group.precision, group.device, group.host, group.environment)
        )
        if group.mode == "compiled" and partner is not None:
            group.break_even = break_even(partner, group)


def _time_metric(members: list[Group]) -> str:
    """The steady time per epoch, or the fit time where some row has no steady epochs (one epoch)."""
    done = [group for group in members if group.done]
    if done and all(group.median("steady_epoch_seconds") is not None for group in done):
        return "steady_epoch_seconds"
    return "fit_seconds"


def _set_relative(members: list[Group], metric: str, attribute: str) -> None:
    values = {
        id(g): value for g in members if (value := g.median(metric)) is not None and value > 0
    }
    quiet = [values[id(g)] for g in members if id(g) in values and not g.busy]
    if not quiet:
        return  # no quiet row to measure the others against
    best = min(quiet)
    for group in members:
        if id(group) in values:
            setattr(group, attribute, values[id(group)] / best)


def _spread(group: Group, metric: str, scale: float = 1.0, digits: int = 2) -> str:
    summary = group.stat(metric)
    if summary is None:
        return ""
    text = f"{summary.median * scale:.{digits}f}"
    return text + (f" ± {summary.iqr * scale / 2:.{digits}f}" if summary.count > 1 else "")


def summary_line(group: Group, target: Target) -> dict[str, str]:
    """One table line of a group, as plain text (the terminal, Markdown and HTML tables)."""
    done = group.done
    quality = group.median(target.metric)
    percentiles = [
        value for p in (50, 90, 99) if (value := group.median(f"step_seconds_p{p}")) is not None
    ]
    utilisation = group.median("utilisation")
    memory = group.median("peak_rss_bytes")
    throughput = group.median("samples_per_second")
    flops = group.median("achieved_flops_per_second")
    marks = [
        mark
        for mark, on in (
            ("fastest", group.fastest),
            ("leanest", group.leanest),
            (f"busy {group.busy}/{len(group.done)}", group.busy),
        )
        if on
    ]
    return {
        "variant": group.variant,
        "framework": group.label,
        "version": group.version,
        "mode": group.mode,
        "precision": group.precision,
        "device": group.device,
        "host": group.host,
        "status": f"{len(done)}/{len(group.rows)} ok",
        "quality": "" if quality is None else target.describe(quality),
        "agreement": _agreement(group),
        "fit": _spread(group, "fit_seconds"),
        "first_epoch": _spread(group, "first_epoch_seconds"),
        "steady_epoch": _spread(group, "steady_epoch_seconds"),
        "steps": " / ".join(f"{p * 1000:.2f}" for p in percentiles)
        if len(percentiles) == 3
        else "",
        "to_target": (
            _spread(group, "time_to_target_seconds")
            if group.reached_target_every_time()
            else "never"
            if done
            else ""
        ),
        "memory": "" if memory is None else f"{memory / 2**20:,.0f} MiB",
        "throughput": "" if throughput is None else f"{throughput:,.0f}",
        "flops": "" if flops is None else f"{flops / 1e9:.1f}",
        "utilisation": "" if utilisation is None else f"{utilisation:.1%}",
        # a busy row's multiple is no measure: its × cells say why instead (at every width,
        # since × time is never dropped)
        "relative_time": BUSY_CELL if group.busy else _ratio(group.relative_time),
        "relative_memory": BUSY_CELL if group.busy else _ratio(group.relative_memory),
        "break_even": "" if group.break_even is None else group.break_even.describe(),
        "marks": ", ".join(marks),
    }


def cell_key(row: dict[str, Any]) -> tuple[str, str, str, str, str, str]:
    """What a row's figures are figures of: task (a variant's name), framework, mode,
    precision, device (as the framework named it) and host."""
    return (
        row_name(row),
        row["framework"],
        row.get("mode", "eager"),
        row.get("precision", "float32"),
        row.get("device_name") or row["device"],
        row.get("host") or "",
    )


def environment_of(row: dict[str, Any]) -> str:
    """The name of the ``--with`` environment a row ran in; ``""`` for harness's own."""
    return (row.get("environment") or {}).get("name") or ""


def mode_label(mode: str, precision: str | None) -> str:
    """``eager``, or ``eager, bfloat16`` for a precision other than float32 (chart and
    series labels)."""
    return mode if precision in (None, "float32") else f"{mode}, {precision}"


#: what a busy row's × cells read instead of a multiple
BUSY_CELL = "busy"


def _ratio(value: float | None) -> str:
    if value is None:
        return ""
    return f"{value:.2f}×" if value < 10 else f"{value:.1f}×" if value < 100 else f"{value:,.0f}×"


def _agreement(group: Group) -> str:
    """The agreement status the task's rows carry (the latest check's verdict), or ``""``."""
    statuses = {str(row["agreement"]) for row in group.rows if row.get("agreement")}
    return ", ".join(sorted(statuses))


def flagged_rows(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Cells that failed, were skipped or missed their target: never dropped from a report."""
    return [row for row in rows if row["status"] != "ok" or row.get("kind")]
