"""``harness history`` drawn: a table per series for the terminal, JSON, and a page of charts."""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path
from typing import Any

from rich.table import Table
from rich.text import Text

from harness.analysis.history import Change, Point, Series
from harness.paths import write_atomically

VERDICT_STYLES = {"regression": "bold red", "improvement": "green"}


def _change_at(series: Series, point: Point) -> Change | None:
    return next((change for change in series.changes if change.after is point), None)


def change_text(change: Change | None) -> str:
    """``regression ×1.32`` at the point a change starts; nothing elsewhere."""
    return "" if change is None else f"{change.verdict} ×{change.ratio:.2f}"


def point_cells(series: Series, point: Point) -> dict[str, str]:
    """What a point shows, in the terminal and the page alike."""
    median = point.median
    return {
        "when": point.started_at.replace("T", " ")[:16],
        "run": point.run_id,
        "version": _version(point),
        "seconds": "busy" if median is None else f"{median:.3g}",
        "repeats": f"{len(point.seconds)}" + (f" (+{point.busy} busy)" if point.busy else ""),
        "quality": "" if point.quality is None else f"{point.quality:.4g}",
        "change": change_text(_change_at(series, point)),
    }


def _version(point: Point) -> str:
    """``0.9.2``; with the environment's name where that doesn't show it (``0.10.2 [numpy<2]``)."""
    if point.environment and point.version not in point.environment:
        return f"{point.version} [{point.environment}]"
    return point.version


HEADERS = {
    "when": "started (UTC)",
    "run": "run",
    "version": "version",
    "seconds": "s/epoch",
    "repeats": "repeats",
    "quality": "quality",
    "change": "change",
}


def series_table(series: Series) -> Table:
    """One series: a line per point, oldest first, its change points marked."""
    table = Table(
        title=f"{series.label} · host {series.host}",
        box=None,
        header_style="bold",
        title_justify="left",
        pad_edge=False,
    )
    # the run's id starts with when it started: the page has a column for it, the terminal not
    shown = [key for key in HEADERS if key != "when"]
    for key in shown:
        header = HEADERS[key]
        numeric = key in ("seconds", "repeats", "quality")
        # the run's id may fold onto two lines; a figure or verdict never does
        folds = key in ("run", "version")
        table.add_column(
            header, justify="right" if numeric else "left", no_wrap=not folds, overflow="fold"
        )
    for point in series.points:
        cells = point_cells(series, point)
        change = _change_at(series, point)
        style = VERDICT_STYLES.get(change.verdict, "") if change else ""
        table.add_row(*[Text(cells[key], style=style if key == "change" else "") for key in shown])
    return table


def summary_line(all_series: list[Series]) -> str:
    changes = [change for series in all_series for change in series.changes]
    regressed = [series for series in all_series if series.regressed]
    return (
        f"{len(all_series)} series, {len(changes)} change point(s); "
        f"{len(regressed)} series slower now than before their last change"
    )


def history_json(all_series: list[Series], threshold: float) -> dict[str, Any]:
    """What ``harness history --json`` prints."""

    def point(series: Series, each: Point) -> dict[str, Any]:
        record = asdict(each)
        record["seconds"] = list(each.seconds)
        record["median_seconds"] = each.median
        change = _change_at(series, each)
        record["change"] = (
            None if change is None else {"verdict": change.verdict, "ratio": change.ratio}
        )
        return record

    return {
        "threshold": threshold,
        "series": [
            {
                "task": series.task,
                "framework": series.framework,
                "mode": series.mode,
                "precision": series.precision,
                "device": series.device,
                "host": series.host,
                "quality_metric": series.quality_metric,
                "regressed": series.regressed,
                "points": [point(series, each) for each in series.points],
            }
            for series in all_series
        ],
    }


def write_page(all_series: list[Series], path: Path, threshold: float) -> None:
    """A self-contained HTML page: a chart and a table per series (no script, no network)."""
    import jinja2

    from harness import __version__
    from harness.present.report.charts import history_chart

    environment = jinja2.Environment(
        loader=jinja2.PackageLoader("harness.present.report", "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        finalize=lambda value: "" if value is None else value,
    )
    sections = [
        {
            "series": series,
            "chart": history_chart(series),
            "rows": [point_cells(series, point) for point in series.points],
        }
        for series in all_series
    ]
    html = environment.get_template("history.html").render(
        sections=sections,
        headers=HEADERS,
        summary=summary_line(all_series),
        threshold=threshold,
        version=__version__,
    )
    write_atomically(path, html)
