"""The columns of the results table, defined once for the terminal, ``report.md`` and ``report.html``.

Each column names the key of :func:`harness.analysis.summary.summary_line` it shows, its header, and how
it behaves when space is short: the terminal drops columns of the highest ``priority`` number
first, and priority 0 is never dropped (the framework, and the verdicts: quality against the
target, fit time, time per epoch and its ratio to the best, peak memory). A busy row's ×
cells read ``busy``, so the row is marked whatever else is dropped.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from harness.workload.tasks import Target


@dataclass(frozen=True)
class Column:
    #: the key of the summary line it shows
    key: str
    header: str
    #: 0: always shown; higher numbers are dropped first when the terminal is narrow
    priority: int
    #: right-aligned figures rather than left-aligned text
    numeric: bool = True
    #: identifies a row (framework, mode, device, host): kept whenever it differs between rows,
    #: moved into the title when every row has the same value
    identity: bool = False
    #: what the header means, for ``--help`` texts and the reports' notes
    description: str = ""


COLUMNS: tuple[Column, ...] = (
    Column("variant", "variant", 0, numeric=False, identity=True),
    Column("framework", "framework", 0, numeric=False, identity=True),
    Column("mode", "mode", 0, numeric=False, identity=True),
    Column("precision", "precision", 0, numeric=False, identity=True),
    Column("device", "device", 0, numeric=False, identity=True),
    Column("host", "host", 0, numeric=False, identity=True),
    Column("version", "version", 5, numeric=False, identity=True),
    Column("status", "ok", 2, description="repeats that finished / repeats run"),
    Column("quality", "test acc", 0, description="the task's quality figure against its target"),
    Column("fit", "fit s", 0, description="training time, the sum of the epochs"),
    Column("first_epoch", "1st epoch s", 3, description="what tracing and compilation cost"),
    Column("steady_epoch", "s/epoch", 0, description="median of the epochs after the first"),
    Column(
        "relative_time",
        "× time",
        0,
        description="time per epoch as a multiple of the best quiet row of the task",
    ),
    Column("steps", "step ms", 6, description="p50 / p90 / p99 of the sampled steps"),
    Column("to_target", "to target s", 3, description="training time to reach the target"),
    Column("throughput", "samples/s", 4),
    Column("memory", "peak RSS", 0, description="peak resident memory of the cell's process"),
    Column(
        "relative_memory",
        "× mem",
        1,
        description="peak memory as a multiple of the leanest quiet row of the task",
    ),
    Column("flops", "GFLOP/s", 7),
    Column("utilisation", "util", 7, description="GFLOP/s against the calibrated peak"),
    Column(
        "break_even",
        "break-even",
        7,
        description="steps / samples after which a compiled mode's extra first-epoch cost is "
        "repaid against eager, from the medians (never: its steps are no faster)",
    ),
    Column("agreement", "agreement", 2, numeric=False),
    Column("marks", "", 1, numeric=False),
)


#: the quality column's header for each target metric
QUALITY_HEADERS = {
    "test_accuracy": "test acc",
    "test_mse": "test MSE",
    "test_bits_per_char": "bits/char",
}


def headers(target: Target) -> dict[str, str]:
    """Each column's header for a task (the quality column names the task's metric)."""
    quality = QUALITY_HEADERS[target.metric]
    return {column.key: quality if column.key == "quality" else column.header for column in COLUMNS}
