"""`harness compare` as a CI gate: a broken build, or two runs that can't be compared, never
passes. Run folders are written by hand, as small as a comparison needs."""

from __future__ import annotations

import json
from pathlib import Path

from harness.analysis.compare import status_regressions
from harness.analysis.runs import open_run

from .conftest import run_harness

CRASH = {"status": "failed", "kind": "crash", "error": "crashed: killed by SIGSEGV"}
NOT_INSTALLED = {"status": "skipped", "kind": "not_installed", "error": "jax is not installed"}


def ok(fit: float) -> dict:
    return {"status": "ok", "metrics": {"fit_seconds": fit, "peak_rss_bytes": 100}}


def write_run(folder: Path, task: str, cells: dict[str, list[dict]]) -> Path:
    """A run folder of ``task`` holding, per framework, one result row per repeat."""
    folder.mkdir(parents=True)
    record = {
        "schema": 1,
        "task": {"name": task},
        "frameworks": sorted(cells),
        "device": "cpu",
        "repeats": max(len(repeats) for repeats in cells.values()),
        "threads": 1,
        "timeout": 60,
    }
    (folder / "run.json").write_text(json.dumps(record))
    rows = [
        {
            "schema": 1,
            "cell_id": f"{task}-{framework}-eager-cpu-r{repeat}",
            "task": task,
            "framework": framework,
            "mode": "eager",
            "device": "cpu",
            "repeat": repeat,
            **outcome,
        }
        for framework, repeats in cells.items()
        for repeat, outcome in enumerate(repeats)
    ]
    (folder / "results.jsonl").write_text("".join(json.dumps(row) + "\n" for row in rows))
    return folder


def compare(a: Path, b: Path, *extra: str):
    return run_harness("compare", str(a), str(b), *extra)


def assert_one_line(result, code: int, message: str) -> None:
    assert result.returncode == code, (result.returncode, result.stdout, result.stderr)
    assert result.stderr.strip().splitlines() == [message]


def test_a_cell_that_failed_in_b_fails_the_gate(tmp_path):
    """compare: a cell that finished in A failed in B: a regression, with its reason; exit 4."""
    a = write_run(tmp_path / "a", "mnist_mlp", {"torch": [ok(1.0), ok(1.1)]})
    b = write_run(tmp_path / "b", "mnist_mlp", {"torch": [CRASH, CRASH]})

    gate = compare(a, b, "--fail-on-regression")

    assert gate.returncode == 4, gate.stdout + gate.stderr
    assert (
        "regression: mnist_mlp/torch/eager/cpu: 2/2 ok in a, 0/2 ok in b: "
        "failed (crash): crashed: killed by SIGSEGV" in gate.stdout
    )
    assert "1 regression(s): 1 cell(s) failed, skipped or missing" in gate.stdout
    assert "[bold red]" not in gate.stdout  # style is style, not markup printed as text
    report_only = compare(a, b)
    assert report_only.returncode == 0 and "1 regression(s)" in report_only.stdout


def test_a_cell_skipped_or_missing_in_b_fails_the_gate(tmp_path):
    """compare: a cell that finished in A is skipped or missing in B: a regression; exit 4.

    A cell that failed in both runs is no regression: B broke nothing that worked.
    """
    a = write_run(
        tmp_path / "a",
        "mnist_mlp",
        {"torch": [ok(1.0)], "jax": [ok(1.0)], "tensorflow": [ok(1.0)], "raises": [CRASH]},
    )
    b = write_run(
        tmp_path / "b",
        "mnist_mlp",
        {"torch": [ok(1.0)], "jax": [NOT_INSTALLED], "raises": [CRASH]},
    )

    gate = compare(a, b, "--fail-on-regression")

    assert gate.returncode == 4, gate.stdout + gate.stderr
    assert (
        "regression: mnist_mlp/jax/eager/cpu: 1/1 ok in a, 0/1 ok in b: "
        "skipped (not_installed): jax is not installed" in gate.stdout
    )
    assert "regression: mnist_mlp/tensorflow/eager/cpu: 1/1 ok in a, missing in b" in gate.stdout
    assert "raises" not in gate.stdout
    assert "2 regression(s)" in gate.stdout


def test_a_cell_that_fails_in_some_repeats_of_b_fails_the_gate(tmp_path):
    """compare: a cell ok in every repeat of A fails in one repeat of B: a regression; exit 4."""
    a = write_run(tmp_path / "a", "mnist_mlp", {"torch": [ok(1.0), ok(1.0), ok(1.0)]})
    b = write_run(tmp_path / "b", "mnist_mlp", {"torch": [ok(1.0), CRASH, ok(1.0)]})

    gate = compare(a, b, "--fail-on-regression")

    assert gate.returncode == 4, gate.stdout + gate.stderr
    assert "mnist_mlp/torch/eager/cpu: 3/3 ok in a, 2/3 ok in b: failed (crash)" in gate.stdout
    [lost] = status_regressions(open_run(a), open_run(b))
    assert (lost.cell, lost.a_state, lost.b_state) == (
        "mnist_mlp/torch/eager/cpu",
        "3/3 ok",
        "2/3 ok",
    )


def test_runs_of_two_tasks_are_an_error_not_a_pass(tmp_path):
    """compare: runs of different tasks: no cell in common; exit 6, with or without the gate."""
    a = write_run(tmp_path / "a", "mnist_mlp", {"torch": [ok(1.0)]})
    b = write_run(tmp_path / "b", "mnist_cnn", {"torch": [ok(1.0)]})
    message = (
        "error: runs a and b have no cell in common (a: task mnist_mlp; b: task mnist_cnn); "
        "compare runs of the same task"
    )
    assert_one_line(compare(a, b, "--fail-on-regression"), 6, message)
    assert_one_line(compare(a, b), 6, message)


def test_runs_of_disjoint_frameworks_are_an_error_not_a_pass(tmp_path):
    """compare: runs with no framework in common: no cell in common; exit 6."""
    a = write_run(tmp_path / "a", "mnist_mlp", {"torch": [ok(1.0)]})
    b = write_run(tmp_path / "b", "mnist_mlp", {"jax": [ok(1.0)], "tensorflow": [ok(1.0)]})
    assert_one_line(
        compare(a, b, "--fail-on-regression"),
        6,
        "error: runs a and b have no cell in common (a: framework torch; b: frameworks jax, "
        "tensorflow); compare runs that share a framework",
    )


def test_a_baseline_where_nothing_finished_is_an_error_not_a_pass(tmp_path):
    """compare: no cell of A finished: nothing to compare B with; exit 6."""
    a = write_run(tmp_path / "a", "mnist_mlp", {"torch": [CRASH]})
    b = write_run(tmp_path / "b", "mnist_mlp", {"torch": [CRASH]})
    assert_one_line(
        compare(a, b, "--fail-on-regression"),
        6,
        "error: no cell of run a finished, so there is nothing to compare b with; "
        "compare against a run whose cells finished",
    )


def test_help_lists_exit_code_6():
    """compare: exit codes: 6 is documented with the others."""
    result = run_harness("--help")
    assert "6  harness compare: the runs have no cell in common" in result.stdout
