"""The runner isolates every cell: a crash, a hang or an exception fails that cell alone."""

import json

import pandas as pd

from .conftest import harness_env, run_harness


def run_faulty(tmp_path, *frameworks, timeout="20"):
    args = [
        "run",
        "--task",
        "mnist_mlp",
        "--epochs",
        "2",
        "--train-subset",
        "2000",
        "--timeout",
        timeout,
        "--out",
        str(tmp_path),
    ]
    for framework in frameworks:
        args += ["--framework", framework]
    result = run_harness(*args, env=harness_env(HARNESS_PLUGINS="harness_test_plugins"))
    [run_dir] = tmp_path.iterdir()
    rows = [json.loads(line) for line in (run_dir / "results.jsonl").read_text().splitlines()]
    return result, run_dir, {row["framework"]: row for row in rows}


def test_each_failure_is_a_failed_row_and_the_other_cells_complete(tmp_path):
    result, run_dir, rows = run_faulty(
        tmp_path, "raises", "centroid", "segfaults", "hangs", "missing", timeout="15"
    )
    assert result.returncode == 1, result.stderr  # some cells failed
    assert "Traceback" not in result.stderr

    assert rows["centroid"]["status"] == "ok"
    assert rows["centroid"]["metrics"]["test_accuracy"] > 0.7
    assert len(rows["centroid"]["metrics"]["epoch_seconds"]) == 2

    assert rows["raises"]["status"] == "failed"
    assert rows["raises"]["error"] == "ValueError: loss went sideways"
    assert "Traceback" in (run_dir / rows["raises"]["log"]).read_text()

    assert rows["segfaults"]["status"] == "failed"
    assert rows["segfaults"]["error"].startswith("crashed: killed by SIGSEGV")

    assert rows["hangs"]["status"] == "failed"
    assert rows["hangs"]["error"].startswith("timed out after 15 s")

    assert rows["missing"]["status"] == "skipped"
    assert rows["missing"]["error"] == "missingfw is not installed: pip install missingfw"

    table = pd.read_csv(run_dir / "results.csv")
    assert sorted(table["framework"]) == ["centroid", "hangs", "missing", "raises", "segfaults"]
    # the terminal table shows every row with its reason
    assert "crashed: killed by SIGSEGV" in result.stdout and "timed out" in result.stdout


def test_a_run_where_every_cell_is_ok_exits_zero(tmp_path):
    result, run_dir, rows = run_faulty(tmp_path, "centroid")
    assert result.returncode == 0, result.stderr
    assert rows["centroid"]["status"] == "ok"
    assert rows["centroid"]["settings"]["threads"] >= 1
    assert (run_dir / "environment.json").exists() and (run_dir / "run.json").exists()
