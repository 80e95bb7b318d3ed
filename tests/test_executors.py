"""Executors behind one protocol: local (a process per cell), inline (this process, for pdb)."""

from __future__ import annotations

import pytest

from harness.errors import HarnessError
from harness.runner.executors import EXECUTOR_NAMES, Executor, InlineExecutor, get_executor
from harness.store.results import RunDir

from .conftest import harness_env, run_harness

PLUGINS = harness_env(HARNESS_PLUGINS="harness_test_plugins")


@pytest.mark.parametrize("name", EXECUTOR_NAMES)
def test_each_executor_is_found_by_its_name(name):
    executor = get_executor(name, address="127.0.0.1:1")
    assert isinstance(executor, Executor) and executor.name == name


def test_an_unknown_executor_is_one_line():
    with pytest.raises(HarnessError, match="unknown executor 'slurm'"):
        get_executor("slurm")


def test_inline_rows_have_the_same_shape_as_local_rows(tmp_path):
    rows = {}
    for name in ("local", "inline"):
        out = tmp_path / name
        result = run_harness(
            "run",
            "--task",
            "mnist_mlp",
            "--epochs",
            "1",
            "--train-subset",
            "500",
            "--out",
            str(out),
            "-f",
            "centroid",
            "-f",
            "raises",
            "--executor",
            name,
            "--no-report",
            env=PLUGINS,
        )
        assert result.returncode == 1, result.stderr  # `raises` fails, by design, in both
        [run_dir] = out.iterdir()
        rows[name] = {row["framework"]: row for row in RunDir(run_dir).read_results()}
    for framework in ("centroid", "raises"):
        local, inline = rows["local"][framework], rows["inline"][framework]
        assert (inline["status"], inline["kind"]) == (local["status"], local["kind"])
        assert inline["metrics"].keys() == local["metrics"].keys()
    assert rows["inline"]["raises"]["error"] == "ValueError: loss went sideways"
    assert rows["inline"]["centroid"]["metrics"]["test_accuracy"] == pytest.approx(
        rows["local"]["centroid"]["metrics"]["test_accuracy"]
    )
    assert InlineExecutor().name == "inline"
