"""A cell's process carries as little of the harness as it can: what it imports is measured
memory in every row's peak_rss_bytes."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from harness.store.results import RunDir

from .conftest import harness_env, run_harness

ROOT = Path(__file__).parent.parent


def test_a_cell_imports_no_pandas_scipy_matplotlib_or_jinja2(tmp_path):
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
        "modules",
        "--no-report",
        env=harness_env(HARNESS_PLUGINS="harness_test_plugins"),
    )
    assert result.returncode == 1, result.stderr  # the probe framework fails on purpose
    [run_dir] = tmp_path.iterdir()
    [row] = RunDir(run_dir).read_results()
    assert row["error"] == "RuntimeError: modules loaded in the cell: []"


def test_the_footprint_benchmark_prints_its_figures():
    out = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "cell_footprint.py"), "--repeats", "1"],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert out.returncode == 0, out.stderr
    assert "peak RSS" in out.stdout and "start-up" in out.stdout
