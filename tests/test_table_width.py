"""The results table fits the terminal it is printed in: 80, 100, 120 and 200 columns, and off a
terminal. Columns are dropped by priority, never a framework name cut or a row wrapped."""

from __future__ import annotations

import io
import json
import shutil
from pathlib import Path

import pytest
from rich.console import Console

from harness.analysis.runs import open_run
from harness.present.console import print_table, results_table
from harness.workload.tasks import Target

from .conftest import harness_env, run_harness

PLUGINS = harness_env(HARNESS_PLUGINS="harness_test_plugins")
TARGET = Target(metric="test_accuracy", min=0.97)
# the names and versions of a real five-framework run, the widest the README shows
FRAMEWORKS = {
    "jax": "0.10.2",
    "keras_jax": "3.15.1 (jax 0.10.2)",
    "keras_torch": "3.15.1 (torch 2.13.0+cpu)",
    "tensorflow": "2.21.0",
    "torch": "2.13.0+cpu",
}


@pytest.fixture(scope="module")
def real_run(tmp_path_factory) -> Path:
    """A real run of one cell, the source of the planted rows."""
    out = tmp_path_factory.mktemp("width")
    result = run_harness(
        "run",
        "--task",
        "mnist_mlp",
        "--epochs",
        "2",
        "--train-subset",
        "500",
        "--out",
        str(out),
        "-f",
        "centroid",
        "--no-report",
        env=PLUGINS,
    )
    assert result.returncode == 0, result.stderr
    [run_dir] = out.iterdir()
    return run_dir


@pytest.fixture(scope="module")
def real_rows(real_run) -> list[dict]:
    """Rows of a real run, renamed to the five frameworks in two modes (ten rows)."""
    [row] = open_run(real_run).rows
    rows = []
    for index, (name, version) in enumerate(FRAMEWORKS.items()):
        for mode in ("eager", "compiled"):
            slower = {
                key: row["metrics"][key] * (index + 1)
                for key in ("fit_seconds", "steady_epoch_seconds")
            }
            metrics = row["metrics"] | slower
            # the planted rows say the machine was quiet: a busy one is never ranked, and this
            # test is about widths, not about what the machine did while the suite ran
            rows.append(
                row
                | {
                    "framework": name,
                    "framework_version": version,
                    "mode": mode,
                    "metrics": metrics,
                    "agreement": "pass (100 steps)",
                    "noise": {"verdict": "quiet", "reason": "planted"},
                }
            )
    return rows


def render(rows, width: int, **options) -> list[str]:
    out = io.StringIO()
    console = Console(file=out, width=width, markup=False, color_system=None)
    table = results_table(
        rows, TARGET, title="mnist_mlp (target test_accuracy ≥ 0.97)", width=width, **options
    )
    print_table(table, console)
    return out.getvalue().rstrip("\n").splitlines()


@pytest.mark.parametrize("width", [80, 100, 120, 200])
def test_the_table_fits_and_no_row_wraps(real_rows, width):
    lines = render(real_rows, width)
    assert max(len(line.rstrip()) for line in lines) <= width
    for name in FRAMEWORKS:
        # each framework's two rows, each whole on one line: nothing cut, nothing wrapped
        assert sum(line.lstrip().startswith(name + " ") for line in lines) == 2, lines
    body = [line for line in lines if line.split() and line.split()[0] in FRAMEWORKS]
    assert len(body) == len(real_rows)
    header = lines[1]
    for heading in ("framework", "mode", "test acc", "fit s", "s/epoch", "× time", "peak RSS"):
        assert heading in header, (width, header)  # the verdict columns are always there


def test_a_narrow_terminal_says_which_columns_it_left_out(real_rows):
    narrow, wide = render(real_rows, 80), render(real_rows, 80, wide=True)
    assert "columns: --wide" in "\n".join(narrow)
    assert "agreement" not in narrow[1] and "agreement" in wide[1]
    assert "columns: --wide" not in "\n".join(render(real_rows, 400))


def test_what_every_row_shares_moves_into_the_title(real_rows):
    lines = render(real_rows, 100)
    assert "cpu" in lines[0] and "host " in lines[0]
    assert "device" not in lines[1] and "host" not in lines[1]


@pytest.mark.parametrize("width", [80, 100])
def test_a_skipped_mode_neither_widens_the_table_nor_unshares_the_device(real_rows, width):
    """The Keras frameworks have no compiled mode: those cells are skipped on device `auto`,
    which must not keep a device column that pushes the table past the terminal."""
    rows = [
        row | {"status": "skipped", "kind": "unsupported", "error": "no 'compiled' mode",
               "device": "auto", "device_name": "", "metrics": {}}
        if row["framework"].startswith("keras") and row["mode"] == "compiled"
        else row
        for row in real_rows
    ]  # fmt: skip
    lines = render(rows, width)
    assert max(len(line.rstrip()) for line in lines) <= width, lines
    assert "cpu" in lines[0] and "device" not in lines[1]
    assert sum(line.lstrip().startswith("keras_jax ") for line in lines) == 2


def test_the_relative_column_is_a_multiple_of_the_best_row(real_rows):
    lines = render(real_rows, 200)
    relative = {
        line.split()[0]: line for line in lines if line.split() and line.split()[0] in FRAMEWORKS
    }
    assert "1.00×" in relative["jax"]
    assert "5.00×" in relative["torch"]  # the fifth framework's epochs take five times as long


def test_off_a_terminal_the_table_is_whole_at_a_fixed_width(tmp_path):
    env = dict(PLUGINS)
    env.pop("COLUMNS")
    result = run_harness(
        "run",
        "--task",
        "mnist_mlp",
        "--epochs",
        "1",
        "--train-subset",
        "500",
        "--out",
        str(tmp_path),
        "-f",
        "centroid",
        "-f",
        "tempfolder",
        "--no-report",
        env=env,
    )
    assert result.returncode == 0, result.stderr
    table = result.stdout[
        result.stdout.index("mnist_mlp (target") : result.stdout.index("results:")
    ]
    assert max(len(line) for line in table.splitlines()) <= 120
    assert sum(line.startswith(("centroid ", "tempfolder ")) for line in table.splitlines()) == 2


def with_a_busy_row(rows: list[dict]) -> list[dict]:
    """The planted rows, compiled tensorflow's trained while other processes took the CPU."""
    busy = {"verdict": "busy", "reason": "planted: other processes used 1.0 of 2 cores"}
    return [
        row | {"noise": busy}
        if (row["framework"], row["mode"]) == ("tensorflow", "compiled")
        else row
        for row in rows
    ]


def busy_line(lines: list[str]) -> str:
    [line] = [line for line in lines if line.split()[:2] == ["tensorflow", "compiled"]]
    return line


def header_cell(lines: list[str], line: str, heading: str) -> str:
    """The text of ``line`` under ``heading`` (right-aligned, as the × columns are)."""
    header = next(text for text in lines if heading in text)
    end = header.index(heading) + len(heading)
    return line[:end].split()[-1]


@pytest.mark.parametrize("width", [80, 100, 120, 200])
def test_a_busy_row_is_marked_at_every_width(real_rows, width):
    lines = render(with_a_busy_row(real_rows), width)
    assert max(len(line.rstrip()) for line in lines) <= width
    busy = busy_line(lines)
    # × time is never dropped, and a busy row's multiple is no measure: the cell says why
    assert header_cell(lines, busy, "× time") == "busy", lines
    assert "4.00×" not in busy
    rows = [line for line in lines if line.split() and line.split()[0] in FRAMEWORKS]
    assert sum("busy" in line for line in rows) == 1
    assert "so the row is not ranked and has no ×" in " ".join(" ".join(lines).split())


def test_a_busy_row_is_marked_off_a_terminal(real_run, real_rows, tmp_path):
    planted = tmp_path / "planted"
    shutil.copytree(real_run, planted)
    rows = with_a_busy_row(real_rows)
    (planted / "results.jsonl").write_text("".join(json.dumps(row) + "\n" for row in rows))
    env = dict(PLUGINS)
    env.pop("COLUMNS")
    result = run_harness("show", str(planted), env=env)
    assert result.returncode == 0, result.stderr
    lines = [line for line in result.stdout.splitlines() if line.strip()]
    assert max(len(line) for line in lines) <= 120
    busy = busy_line(lines)
    assert header_cell(lines, busy, "× time") == "busy", result.stdout


@pytest.mark.parametrize("width", [80, 100])
def test_versions_side_by_side_fit_by_leaving_out_the_spreads(real_rows, width):
    """Rows of two --with environments are labelled `tensorflow 2.20.0`: where that leaves no
    room, the medians stay and their ± spreads go, and the caption says so."""
    rows = []
    for version in ("2.20.0", "2.21.0"):
        for repeat in range(3):
            row = real_rows[6] | {"framework_version": version, "repeat": repeat}
            pins = [f"tensorflow=={version}"]
            rows.append(row | {"environment": {"name": pins[0], "requirements": pins}})
    lines = render(rows, width)
    assert max(len(line.rstrip()) for line in lines) <= width, lines
    assert (
        sum(line.startswith(f"tensorflow {v} ") for v in ("2.20.0", "2.21.0") for line in lines)
        == 2
    )
    spreads = "±" in "\n".join(lines[2:4])
    assert spreads == (width == 100)
    assert ("(± spreads: --wide)" in " ".join(lines)) == (not spreads)
