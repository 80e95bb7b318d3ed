"""Fault injection: every way a cell can fail is recorded with its kind, and the run goes on."""

import json
import os
import signal
import subprocess
import sys
import time

import pandas as pd

from harness.store.results import RunDir

from .conftest import harness_env, run_harness

FAULTY = harness_env(HARNESS_PLUGINS="harness_test_plugins")


def read_rows(run_dir):
    return {row["framework"]: row for row in RunDir(run_dir).read_results()}


def run_faulty(tmp_path, *frameworks, extra=(), env=FAULTY):
    args = [
        "run",
        "--task",
        "mnist_mlp",
        "--epochs",
        "2",
        "--train-subset",
        "2000",
        "--out",
        str(tmp_path),
        *extra,
    ]
    for framework in frameworks:
        args += ["--framework", framework]
    result = run_harness(*args, env=env)
    [run_dir] = tmp_path.iterdir()
    return result, run_dir, read_rows(run_dir)


def test_each_failure_is_recorded_with_its_kind_and_the_other_cells_complete(tmp_path):
    result, run_dir, rows = run_faulty(
        tmp_path,
        "raises",
        "centroid",
        "segfaults",
        "hangs",
        "imports",
        "nan",
        "hog",
        "missing",
        extra=["--timeout", "20", "--memory-limit", "1500M"],
    )
    assert result.returncode == 1, result.stderr  # some cells failed
    assert "Traceback" not in result.stderr
    kinds = {name: (row["status"], row["kind"]) for name, row in rows.items()}
    assert kinds == {
        "centroid": ("ok", "target_missed"),  # finished, but a centroid classifier can't reach 0.97
        "raises": ("failed", "exception"),
        "segfaults": ("failed", "crash"),
        "hangs": ("failed", "timeout"),
        "imports": ("failed", "import_error"),
        "nan": ("failed", "diverged"),
        "hog": ("failed", "oom"),
        "missing": ("skipped", "not_installed"),
    }

    assert rows["centroid"]["metrics"]["test_accuracy"] > 0.7
    assert rows["centroid"]["met_target"] is False
    assert rows["centroid"]["error"].startswith("test_accuracy 0.")

    assert rows["raises"]["error"] == "ValueError: loss went sideways"
    traceback = (run_dir / rows["raises"]["traceback"]).read_text()
    assert traceback.startswith("Traceback") and "loss went sideways" in traceback

    assert rows["segfaults"]["error"].startswith("crashed: killed by SIGSEGV")
    assert rows["hangs"]["error"].startswith("timed out after 20 s")
    assert "harness_no_such_framework" in rows["imports"]["error"]
    assert rows["hog"]["error"].endswith("over --memory-limit 1,500 MiB (killed)")
    assert rows["missing"]["error"] == "missingfw is not installed: pip install missingfw"

    # divergence is caught after the first epoch, not after the last
    assert rows["nan"]["error"] == "diverged: mean training loss of epoch 1 is nan"
    assert "epoch 2" not in (run_dir / rows["nan"]["log"]).read_text()

    table = pd.read_csv(run_dir / "results.csv")
    assert len(table) == 8 and set(table["kind"].dropna()) >= {"oom", "timeout", "crash"}
    # the terminal table shows every row with its reason
    assert "crashed: killed by SIGSEGV" in result.stdout and "timed out" in result.stdout


def test_a_run_where_every_cell_finishes_exits_zero(tmp_path):
    result, run_dir, rows = run_faulty(tmp_path, "centroid")
    assert result.returncode == 0, result.stderr
    assert rows["centroid"]["status"] == "ok"
    assert rows["centroid"]["settings"]["threads"] >= 1
    assert (run_dir / "environment.json").exists() and (run_dir / "run.json").exists()


def test_every_cell_gets_an_empty_temporary_folder_of_its_own_removed_after_it(tmp_path):
    # what a framework caches there (compiled kernels) must not make a later repeat faster
    result, run_dir, _ = run_faulty(tmp_path, "tempfolder", extra=["--repeats", "2"])
    assert "Traceback" not in result.stderr
    settings = [row["settings"] for row in RunDir(run_dir).read_results()]
    assert len(settings) == 2
    assert all(cell["tmpdir_was_empty"] for cell in settings)
    first, second = (cell["tmpdir"] for cell in settings)
    assert first != second
    assert not os.path.exists(first) and not os.path.exists(second)


def test_resume_after_the_runner_is_killed_runs_only_what_is_missing(tmp_path):
    out = tmp_path / "out"
    runner = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "harness",
            "run",
            "--task",
            "mnist_mlp",
            "--epochs",
            "1",
            "--train-subset",
            "1000",
            "-f",
            "centroid",
            "-f",
            "slow",
            "--out",
            str(out),
        ],
        env=FAULTY,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            results = list(out.glob("*/results.jsonl"))
            if results and results[0].read_text().count("\n") >= 1:
                break
            time.sleep(0.2)
        else:
            raise AssertionError("the first cell never finished")
        os.kill(runner.pid, signal.SIGKILL)  # the slow cell is still running
    finally:
        runner.wait()
    [run_dir] = out.iterdir()
    first = read_rows(run_dir)
    assert list(first) == ["centroid"]
    centroid_log = run_dir / first["centroid"]["log"]
    log_mtime = centroid_log.stat().st_mtime_ns
    # as if the runner had been killed in the middle of writing a line
    with open(run_dir / "results.jsonl", "a") as handle:
        handle.write('{"schema": 1, "cell_id": "mnist_mlp-slo')

    resumed = run_harness(
        "run", "--resume", str(run_dir), env={**FAULTY, "HARNESS_TEST_SLOW_SECONDS": "0"}
    )
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    assert "1 of 2 cell(s) already have a result" in resumed.stdout
    assert "incomplete result line" in resumed.stderr

    rows = read_rows(run_dir)
    assert sorted(rows) == ["centroid", "slow"]
    assert rows["centroid"] == first["centroid"]  # not re-run
    assert centroid_log.stat().st_mtime_ns == log_mtime
    assert rows["slow"]["status"] == "ok"
    lines = (run_dir / "results.jsonl").read_text().splitlines()
    assert len(lines) == 3 and json.loads(lines[2])["framework"] == "slow"

    again = run_harness("run", "--resume", str(run_dir), env=FAULTY)
    assert again.returncode == 0 and "2 of 2 cell(s) already have a result" in again.stdout
    assert len((run_dir / "results.jsonl").read_text().splitlines()) == 3
