"""The HTML report in a real headless browser: Debian's chromium, driven by Playwright.

`.ci/run` (and the README's test command) install chromium; Playwright's own browser download
is never used.
"""

import io
import shutil
from pathlib import Path

import pytest
from PIL import Image
from playwright.sync_api import sync_playwright

from .conftest import run_harness

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
# what the machine's closed network needs: no background connections at start-up
FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@pytest.fixture(scope="module")
def browser():
    if not Path(CHROMIUM).exists():
        pytest.fail("chromium is not installed: apt-get install -y chromium (as .ci/run does)")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        try:
            yield browser
        finally:
            browser.close()


def open_offline(browser, report: Path):
    """The report in a new page, loaded, having fetched nothing but itself and raised nothing."""
    page = browser.new_page(viewport={"width": 1400, "height": 900})
    requests, problems = [], []
    page.on("request", lambda request: requests.append(request.url))
    page.on("pageerror", lambda error: problems.append(str(error)))
    page.goto(report.as_uri())
    page.wait_for_load_state("load")
    assert requests == [report.as_uri()] and problems == []
    return page


def test_the_report_renders_offline_with_its_charts(browser, reported_run):
    page = browser.new_page(viewport={"width": 1400, "height": 900})
    requests, problems, dialogs = [], [], []
    page.on("request", lambda request: requests.append(request.url))
    page.on(
        "console",
        lambda message: problems.append(message.text) if message.type == "error" else None,
    )
    page.on("pageerror", lambda error: problems.append(str(error)))
    page.on("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.dismiss()))

    url = (reported_run / "report.html").as_uri()
    page.goto(url)
    page.wait_for_load_state("load")

    assert requests == [url]  # nothing fetched but the file itself
    assert problems == [] and dialogs == []  # no errors, and no injected script ran

    charts = page.locator("figure.chart svg")
    assert charts.count() == 4
    for index in range(4):
        box = charts.nth(index).bounding_box()
        assert box["width"] > 200 and box["height"] > 50
        assert charts.nth(index).locator("path").count() > 20  # axes, lines, glyphs were drawn
    assert page.locator("table.summary tbody tr").count() == 2  # centroid and markup
    assert "<script>alert('from a plugin')</script>" in page.locator("table.problems").inner_text()
    assert "cpu_model" in page.locator("table.environment").inner_text()

    screenshot = Image.open(io.BytesIO(page.screenshot(full_page=True))).convert("RGB")
    colours = screenshot.getcolors(maxcolors=1 << 20)
    assert colours is not None and len(colours) > 50  # not a blank page
    page.close()


def test_a_sweeps_scaling_charts_render_offline(browser, swept_run):
    """The scaling section of a sweep's report: its log-log charts drawn, its tables filled."""
    run_dir, _ = swept_run
    page = open_offline(browser, run_dir / "report.html")

    section = page.locator("section.scaling")
    assert section.count() == 1
    assert section.locator("h2").inner_text() == "Scaling over batch_size"
    charts = section.locator("figure.scaling-chart svg")
    assert charts.count() == 4  # throughput, step time, FLOP/s, memory
    for index in range(4):
        box = charts.nth(index).bounding_box()
        assert box["width"] > 200 and box["height"] > 50
        assert charts.nth(index).locator("path").count() > 20
    first = section.locator("table.curve").first
    assert first.locator("thead th").all_inner_texts() == ["series", "32", "128"]
    assert first.locator("tbody tr").count() == 2  # centroid and torch
    assert section.locator("ul.crossovers li").count() == 1
    page.close()


def test_the_step_breakdown_renders_as_a_stacked_bar_per_cell(browser, profiled_run):
    run_dir, _ = profiled_run
    page = open_offline(browser, run_dir / "report.html")

    section = page.locator("section.profile")
    assert section.locator("h2").inner_text() == "Where a step's time goes"
    assert section.locator("table.summary tbody tr").count() == 4  # torch and jax, both modes
    assert section.locator("ul.sentences li").count() == 4
    chart = section.locator("figure.chart svg")
    assert chart.count() == 1
    box = chart.bounding_box()
    assert box["width"] > 300 and box["height"] > 100
    # one bar segment per category and cell, the legend's patches, the axes and the glyphs
    assert chart.locator("path").count() > 4 * 7
    section.screenshot(path=str(run_dir / "profile-section.png"))
    page.close()


def test_the_history_page_renders_a_chart_per_series(browser, planted_history, tmp_path):
    page_path = tmp_path / "history.html"
    result = run_harness("history", "--results", str(planted_history), "--html", str(page_path))
    assert result.returncode == 0, result.stderr
    page = open_offline(browser, page_path)

    [section] = page.locator("section.series").all()
    assert section.locator("h2").inner_text().startswith("tiny_blobs_mlp/toy/eager/cpu")
    chart = section.locator("figure svg")
    box = chart.bounding_box()
    assert box["width"] > 300 and box["height"] > 100
    rows = section.locator("tbody tr")
    assert rows.count() == 3
    # the regression is marked on the point where it starts, in red
    marked = section.locator("td.regression")
    assert marked.count() == 1 and marked.inner_text().startswith("regression ×")
    assert marked.evaluate("cell => getComputedStyle(cell).color") == "rgb(207, 34, 46)"
    section.screenshot(path=str(tmp_path / "history-section.png"))
    page.close()
