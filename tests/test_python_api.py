"""``harness.run(...)``: a benchmark from Python, with typed rows; the CLI gives the same rows."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

import harness
from harness.errors import HarnessError
from harness.store.schema import ResultRow
from harness.testing.fixtures import read_rows

from .conftest import harness_env, run_harness

DOC = Path(__file__).parent.parent / "docs" / "python-api.md"


def test_the_documented_example_runs_and_returns_typed_rows(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    [example] = re.findall(r"```python\n(.*?)```", DOC.read_text(), flags=re.DOTALL)
    scope: dict = {}
    exec(example, scope)  # the page's example, as a notebook user pastes it
    result, row, frame = scope["result"], scope["row"], scope["frame"]

    assert capsys.readouterr().out.startswith("torch ok ")
    assert isinstance(row, ResultRow) and row.framework == "torch" and row.status == "ok"
    assert 0.0 <= row.metrics.test_accuracy <= 1.0
    assert row.metrics.train_samples == 2000 and row.metrics.epochs == 1
    assert list(frame["framework"]) == ["torch"] and "metrics.test_accuracy" in frame.columns
    assert result.run_dir.resolve().parent == tmp_path / "results"
    assert (result.run_dir / "run.json").is_file()  # a run folder like the command line's


def test_harness_run_on_the_command_line_writes_the_same_rows(tmp_path):
    options = {"epochs": 1, "train_subset": 1000, "threads": 1}
    api = harness.run("mnist_mlp", ["torch"], out=tmp_path / "api", **options)
    cli = run_harness(
        "run", "--task", "mnist_mlp", "-f", "torch", "--epochs", "1", "--train-subset", "1000",
        "--threads", "1", "--no-report", "--out", str(tmp_path / "cli"), env=harness_env(),
    )  # fmt: skip
    assert cli.returncode == 0, cli.stdout + cli.stderr
    [folder] = (tmp_path / "cli").iterdir()
    cli_rows = read_rows(folder)
    api_rows = [row.model_dump(mode="json", by_alias=True) for row in api.rows]

    def decided(row):  # what the harness decides, not what the machine took
        return (row["cell_id"], row["framework"], row["status"], row["metrics"]["train_samples"])

    assert [decided(row) for row in api_rows] == [decided(row) for row in cli_rows]
    config = json.loads((api.run_dir / "run.json").read_text())
    assert config == {**json.loads((folder / "run.json").read_text()), "run_id": config["run_id"]}


def test_a_bad_option_is_one_line_before_any_run_folder_exists(tmp_path):
    with pytest.raises(HarnessError, match="no-such-framework"):
        harness.run("mnist_mlp", ["no-such-framework"], out=tmp_path)
    assert not (tmp_path / "results").exists() and list(tmp_path.iterdir()) == []
