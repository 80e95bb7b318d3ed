"""What the user sees in the terminal: progress while a run goes, tables when it ends.

Both consoles have rich's markup switched off: a string is printed as the text it is, wherever
it came from (a task file, a plugin, an exception, a results file), so ``[/]`` in an error can't
abort a run and ``pip install 'harness[jax]'`` keeps its ``[jax]``. Style is given as data
instead, with :func:`styled` (``Text`` objects), never by writing markup into a string.
"""

from __future__ import annotations

import itertools
import os
import sys
from typing import TYPE_CHECKING, Any

from rich import box
from rich.console import Console
from rich.measure import Measurement
from rich.table import Table
from rich.text import Text

from harness.present.columns import COLUMNS, Column, headers

if TYPE_CHECKING:  # the console is imported by every command; these only by the tables
    from harness.runner import Cell
    from harness.workload.tasks import Target


def _width() -> int | None:
    """Off a terminal (CI logs, pipes): the width of the terminal behind stderr if there is one,
    else 120; on a terminal, or with $COLUMNS set, rich's own answer."""
    if sys.stdout.isatty() or "COLUMNS" in os.environ:
        return None
    try:
        return os.get_terminal_size(sys.stderr.fileno()).columns
    except (OSError, ValueError):
        return 120


console = Console(width=_width(), markup=False, highlight=False)
# an error stays one line, however long
errors = Console(stderr=True, soft_wrap=True, markup=False, highlight=False)


def styled(*parts: str | tuple[str, str]) -> Text:
    """Text from plain strings and ``(text, style)`` pairs: ``styled(("error:", "bold red"), " x")``."""
    return Text.assemble(*parts)


def print_error(message: str) -> None:
    """``error: <message>`` on stderr, one line, the message printed as the text it is."""
    errors.print(styled(("error:", "bold red"), " ", one_line(message)))


def print_warning(message: str) -> None:
    errors.print(styled(("warning:", "yellow"), " ", one_line(message)))


def one_line(text: str) -> str:
    """``text`` with its line breaks (a name from a file may hold some) turned into spaces."""
    return " ".join(text.splitlines())


STATUS_STYLE = {"ok": "green", "failed": "bold red", "skipped": "yellow"}


class RunProgress:
    """A bar for the run's cells and one for the epochs of the cell in progress."""

    def __init__(self, total_cells: int) -> None:
        # imported here: every command imports this module, few show progress
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeElapsedColumn,
        )

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


#: how a value shared by every row reads in the title
SHARED_LABELS = {"host": "host ", "version": "version "}


def results_table(
    rows: list[dict[str, Any]],
    target: Target,
    title: str = "",
    *,
    width: int | None = None,
    wide: bool = False,
) -> Table:
    """One line per task, framework, mode and device: medians over the repeats that finished.

    The table fits ``width`` (the console's): a column with the same value on every row moves
    into the title, empty columns are left out, and then the columns of highest ``priority``
    number (:mod:`harness.present.columns`) are dropped until it fits; the caption says how many, and
    ``wide`` shows them all. Cells are never wrapped, so a row is always one line. A busy row's
    × cells read ``busy`` (× time is never dropped), so it is marked at every width.
    """
    from harness.analysis.summary import summarise, summary_line

    groups = summarise(rows)
    lines: list[dict[str, str | Text]] = []
    for group in groups:
        line: dict[str, str | Text] = dict(summary_line(group, target))
        done = len(group.done)
        style = "green" if done == len(group.rows) else "red" if not done else "yellow"
        skipped = all(row["status"] == "skipped" for row in group.rows)
        status = "skipped" if skipped else f"{done}/{len(group.rows)}"  # its reason: below
        line["status"] = styled((status, "yellow" if skipped else style))
        if done:
            mark = ("✓", "green") if group.met_target else ("✗", "red")
            line["quality"] = styled(str(line["quality"]), " ", mark)
        lines.append(line)

    shown = [column for column in COLUMNS if any(str(line[column.key]) for line in lines)]
    shared = []
    # a skipped cell ran nowhere (its device reads `auto`): what the cells that ran share
    ran = [line for line in lines if str(line["status"]) != "skipped"] or lines
    for column in list(shown):
        values = {str(line[column.key]) for line in (ran if column.key == "device" else lines)}
        if column.identity and column.key != "framework" and len(values) == 1:
            value = values.pop()
            shared.append(f"{SHARED_LABELS.get(column.key, '')}{value}")
            shown.remove(column)
    title = " · ".join([title, *shared]) if title else " · ".join(shared)
    varied = _bare_variants(lines)
    hidden = 0
    limit = width or console.width
    while not wide and _table_width(_table(shown, lines, target, title, "", varied), limit) > limit:
        droppable = [column for column in shown if column.priority > 0]
        if not droppable:
            break
        shown.remove(max(reversed(droppable), key=lambda column: column.priority))
        hidden += 1
    # still too wide (long labels: `tensorflow 2.20.0`): the medians stay, their spreads go
    spreads = wide or _table_width(_table(shown, lines, target, title, "", varied), limit) <= limit
    if not spreads:
        _drop_spreads(lines)
    busy = any(group.busy for group in groups)
    return _table(shown, lines, target, title, _caption(hidden, busy, spreads), varied)


#: the columns whose cells read ``median ± half the IQR``
SPREAD_KEYS = ("fit", "first_epoch", "steady_epoch", "to_target")


def _drop_spreads(lines: list[dict[str, str | Text]]) -> None:
    """``23.05 ± 0.30`` becomes ``23.05`` in each spread column."""
    for line in lines:
        for key in SPREAD_KEYS:
            if isinstance(line.get(key), str):
                line[key] = str(line[key]).partition(" ± ")[0]


def _caption(hidden: int, busy: bool, spreads: bool = True) -> str:
    """What the table leaves out, and how to read it."""
    spread = "± half the IQR" if spreads else "(± spreads: --wide)"
    notes = [f"median over repeats {spread}", "×: multiple of the best row"]
    if busy:
        notes.append("busy: other processes took the CPU, so the row is not ranked and has no ×")
    if hidden:
        notes.insert(0, f"+{hidden} column{'s' if hidden > 1 else ''}: --wide")
    return " · ".join(notes)


def _bare_variants(lines: list[dict[str, str | Text]]) -> str:
    """When a sweep varied one key, each line's variant as its bare value (``256`` under a
    ``batch_size`` header, not ``batch_size=256``: narrower); the variant column's header."""
    labels = {str(line.get("variant", "")) for line in lines} - {""}
    keys = {label.split("=", 1)[0] for label in labels}
    if len(keys) != 1 or any(label.count("=") != 1 or "," in label for label in labels):
        return "variant"
    for line in lines:
        line["variant"] = str(line.get("variant", "")).partition("=")[2]
    return keys.pop()


def _table(
    shown: list[Column],
    lines: list[dict[str, str | Text]],
    target: Target,
    title: str,
    caption: str,
    variant_header: str = "variant",
) -> Table:
    table = Table(
        title=title or None,
        caption=caption or None,
        box=box.SIMPLE_HEAD,
        show_edge=False,
        pad_edge=False,
        caption_justify="left",
    )
    names = {**headers(target), "variant": variant_header}
    for column in shown:
        table.add_column(
            names[column.key], justify="right" if column.numeric else "left", no_wrap=True
        )
    for line in lines:
        table.add_row(*(line[column.key] for column in shown))
    return table


def print_table(table: Table, target: Console | None = None) -> None:
    """Print ``table`` whole: at the console's width, or wider when it was built ``wide``."""
    target = target or console
    width = target.width
    target.width = max(width, _table_width(table, width))  # print's own width= only narrows
    try:
        target.print(table)
    finally:
        target.width = width


def _table_width(table: Table, limit: int) -> int:
    """The width ``table`` takes with nothing wrapped (measured by rich, as it will print it)."""
    options = console.options.update(width=max(limit, 1000))
    return Measurement.get(console, options, table).maximum


def problems_table(rows: list[dict[str, Any]]) -> Table | None:
    """Every cell that failed, was skipped or missed its target, with the reason; ``None`` if none."""
    from harness.analysis.summary import flagged_rows

    flagged = flagged_rows(rows)
    if not flagged:
        return None
    table = Table(
        title="cells that failed, were skipped or missed the target",
        box=box.SIMPLE_HEAD,
        show_edge=False,
        pad_edge=False,
    )
    for column in ("cell", "status", "kind"):
        table.add_column(column, no_wrap=True)
    table.add_column("reason", ratio=1)  # the one column that may wrap: a reason can be long
    for row in flagged:
        style = STATUS_STYLE.get(row["status"], "")
        table.add_row(
            row["cell_id"],
            styled((row["status"], style)),
            row.get("kind") or "",
            row.get("error") or "",
        )
    return table


def print_scaling(rows: list[dict[str, Any]]) -> None:
    """A sweep's scaling section (nothing for a run that varied nothing)."""
    from harness.analysis.scaling import analyse

    for part in scaling_output(analyse(rows)):
        if isinstance(part, Table) and part.box is not None:
            print_table(part)  # a table of figures: whole, never wrapped
        else:
            console.print(part)


def scaling_output(analyses: list[Any]) -> list[Any]:
    """What the terminal shows of a sweep (:func:`harness.analysis.scaling.analyse`): per varied key,
    the headline metric's medians and log-log slopes, the pairs whose order changes, and for
    a sweep over the amount of work each series' fixed and marginal cost."""
    shown: list[Any] = []
    for analysis in analyses:
        shown.extend(_scaling_key(analysis))
    return shown


def _scaling_key(analysis: Any) -> list[Any]:
    from harness.workload.variants import short_key

    name = short_key(analysis.key)
    spec = analysis.headline.spec
    medians, slopes = _curve_tables(analysis)
    output: list[Any] = [
        styled("\n", (f"scaling over {name}", "bold"), f": {spec.label} ({spec.unit}), median"),
        medians,
        styled(f"log-log slope of {spec.label} between neighbouring values"),
        slopes,
        *_order_between_pairs(analysis, name),
    ]
    if analysis.fits:
        output.append(
            styled("fit time = fixed + marginal × samples trained (95 % intervals, all repeats)")
        )
        output.append(_fits_table([fit for fit in analysis.fits if fit.part == "fit"]))
    if analysis.break_evens:
        output.append(
            styled(
                f"compile break-even over {name}: steps / samples after which compiled repays "
                "its first epoch against eager (never: its steps are no faster)"
            )
        )
        output.append(_break_even_table(analysis))
    return output


def _break_even_table(analysis: Any) -> Table:
    from harness.analysis.scaling import break_even_rows, format_x

    table = _scaling_table([format_x(x) for x in analysis.values])
    for series, cells in break_even_rows(analysis):
        table.add_row(series, *cells)
    return table


def _curve_tables(analysis: Any) -> tuple[Table, Table]:
    """The headline metric's medians and log-log slopes, a row per series."""
    from harness.analysis.scaling import curve_rows, format_short, format_x

    values = analysis.values
    medians = _scaling_table([format_x(x) for x in values])
    slopes = _scaling_table(
        [f"{format_short(a)}→{format_short(b)}" for a, b in itertools.pairwise(values)]
    )
    missed = False
    for row in curve_rows(analysis.headline, values):
        cells = [
            "" if m is None else styled(m[0], (" ✗", "red") if m[1] else "") for m in row.medians
        ]
        missed = missed or any(m is not None and m[1] for m in row.medians)
        medians.add_row(row.label, *cells)
        slopes.add_row(row.label, *row.slopes)
    if missed:
        medians.caption = "✗: a repeat finished below the task's target"
    return medians, slopes


def _order_between_pairs(analysis: Any, name: str) -> list[Any]:
    """Where each pair's order changes along the sweep, as bullets (none when no pair)."""
    spec = analysis.headline.spec
    changing = [found for found in analysis.crossovers if found.changes]
    steady = len(analysis.crossovers) - len(changing)
    lines = [found.sentence for found in changing]
    if steady:
        which = "other pair" if changing else "pair"
        lines.append(f"{steady} {which}(s) keep one order at every {name}")
    if not lines:
        return []
    repeats = "; some points have one repeat: --repeats 3 tells noise apart"
    heading = Text(
        f"order of {spec.label} between pairs (a difference under 10 %, or one the repeats "
        f"don't agree on, is a tie{repeats if analysis.single_repeats else ''}):"
    )
    bullets = Table.grid(padding=(0, 1))
    bullets.add_column(no_wrap=True)
    bullets.add_column()
    for line in lines:
        bullets.add_row("•", line)  # wrapped lines hang under the text, not the bullet
    return [heading, bullets]


def _scaling_table(headers: list[str]) -> Table:
    table = Table(box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False, caption_justify="left")
    table.add_column("series", no_wrap=True)
    for header in headers:
        table.add_column(header, justify="right", no_wrap=True)
    return table


def _fits_table(fits: list[Any]) -> Table:
    table = _scaling_table(["fixed s", "µs/sample", "R²"])
    for cost in fits:
        fit = cost.fit
        table.add_row(
            cost.series,
            _with_ci(fit.intercept, fit.intercept_ci, 1.0, 2),
            _with_ci(fit.slope, fit.slope_ci, 1e6, 2),
            f"{fit.r_squared:.3f}",
        )
    table.caption = (
        "harness report adds the first and the steady epochs, where there are two or more"
    )
    return table


def _with_ci(value: float, ci: float | None, scale: float, digits: int) -> str:
    text = f"{value * scale:.{digits}f}"
    return text if ci is None else f"{text} ± {ci * scale:.{digits}f}"
