"""Installed from its own folder, the Keras plugin is listed and runs next to the built-ins."""

import json
import os
import subprocess
import sys


def harness(*args, cwd):
    env = {**os.environ, "COLUMNS": "250"}
    env.pop("HARNESS_PLUGINS", None)  # found through its entry point, as users install it
    return subprocess.run(
        [sys.executable, "-m", "harness", *args],
        capture_output=True, text=True, env=env, cwd=cwd, timeout=900,
    )  # fmt: skip


def test_harness_list_shows_both_backends_from_the_harness_keras_distribution(tmp_path):
    listing = harness("list", cwd=tmp_path)
    assert listing.returncode == 0, listing.stderr
    for name in ("keras_jax", "keras_torch"):
        [line] = [line for line in listing.stdout.splitlines() if f" {name} " in line]
        assert "harness-keras 0.1.0" in line and "yes" in line


def test_its_rows_appear_in_an_all_frameworks_run(tmp_path):
    run = harness(
        "run", "--task", "mnist_mlp", "--all-frameworks", "--epochs", "1",
        "--train-subset", "2000", "--out", str(tmp_path), "--no-report", cwd=tmp_path,
    )  # fmt: skip
    assert run.returncode == 0, run.stdout + run.stderr
    [run_dir] = tmp_path.iterdir()
    rows = [json.loads(line) for line in (run_dir / "results.jsonl").read_text().splitlines()]
    by_name = {row["framework"]: row for row in rows}
    assert {"jax", "tensorflow", "torch", "keras_jax", "keras_torch"} <= set(by_name)
    for name in ("keras_jax", "keras_torch"):
        row = by_name[name]
        assert row["status"] == "ok", row["error"]
        assert row["settings"]["keras_backend"] == name.removeprefix("keras_")
        assert row["metrics"]["test_accuracy"] > 0.8
