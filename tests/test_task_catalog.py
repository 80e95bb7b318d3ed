"""`harness list` summarises task files once and reads the summaries afterwards: a warm listing
imports neither pydantic nor NumPy, and a changed file, a damaged cache or a cache written for
other code is summarised afresh."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from harness.registry import catalog as task_catalog
from harness.registry.catalog import (
    dataset_summaries,
    summary_cache_path,
    task_summaries,
    validation_context,
)

from .conftest import harness_env

HEAVY = ("pydantic", "numpy", "pandas", "scipy", "matplotlib", "harness.workload.tasks")


@pytest.fixture
def cache_home(tmp_path, monkeypatch):
    """A user cache folder of the test's own (platformdirs reads XDG_CACHE_HOME)."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    return tmp_path / "cache"


def list_in_child(cache_home) -> list[str]:
    """Run `harness list` in a fresh interpreter; the heavy modules it imported."""
    code = (
        "import sys\nfrom harness.cli import cli\n"
        "try:\n    cli.main(['list'])\nexcept SystemExit:\n    pass\n"
        f"print([m for m in {HEAVY!r} if m in sys.modules])"
    )
    env = harness_env(XDG_CACHE_HOME=str(cache_home))
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env)
    assert out.returncode == 0, out.stderr
    assert "mnist_mlp" in out.stdout
    return json.loads(out.stdout.strip().splitlines()[-1].replace("'", '"'))


def test_a_warm_listing_imports_no_heavy_library(cache_home):
    assert "pydantic" in list_in_child(cache_home)  # the first listing validates every task
    assert list(cache_home.glob("harness/task-summaries-*.json"))
    assert list_in_child(cache_home) == []


def test_summaries_from_the_cache_equal_fresh_ones(cache_home):
    fresh = task_summaries(use_cache=False)
    task_summaries()  # writes the cache
    assert task_summaries() == fresh
    mlp = next(summary for summary in fresh if summary["name"] == "mnist_mlp")
    assert mlp["layers"] == ["flatten", "dense(128)", "dense(10)"] and mlp["problem"] is None


def test_the_datasets_from_the_cache_equal_fresh_ones_and_name_their_tasks(cache_home):
    fresh = dataset_summaries(use_cache=False)
    dataset_summaries()  # writes the cache
    assert dataset_summaries() == fresh
    by_name = {summary["name"]: summary for summary in fresh}
    assert {"mnist", "fashion_mnist", "sine_waves"} <= set(by_name)
    assert by_name["mnist"]["kind"] == "files" and by_name["mnist"]["input_shape"] == [28, 28]
    assert "mnist_mlp" in by_name["mnist"]["tasks"]
    assert by_name["sine_waves"] == {
        "name": "sine_waves",
        "provider": "harness",
        "kind": "generated",
        "input_shape": [50, 1],
        "num_classes": 0,
        "tasks": ["series_rnn"],
    }


def test_a_damaged_dataset_entry_in_the_cache_is_described_afresh(cache_home):
    fresh = dataset_summaries(use_cache=False)
    dataset_summaries()
    path = summary_cache_path(validation_context())
    cache = json.loads(path.read_text())
    cache["datasets"][0]["input_shape"] = ["28", None]
    path.write_text(json.dumps(cache))
    assert dataset_summaries() == fresh


def test_a_damaged_or_hostile_cache_is_summarised_afresh(cache_home):
    fresh = task_summaries(use_cache=False)
    path = summary_cache_path(validation_context())
    path.parent.mkdir(parents=True)
    for damage in ("{not json", "[]", '{"context": 1}', ""):
        path.write_text(damage)
        assert task_summaries() == fresh
    task_summaries()
    cache = json.loads(path.read_text())
    for entry in cache["tasks"].values():
        entry["summary"] = {"problem": None, "dataset": ["not", "a", "name"]}
    path.write_text(json.dumps(cache))
    assert task_summaries() == fresh


def test_a_changed_task_file_is_summarised_again(cache_home, tmp_path, monkeypatch):
    task = tmp_path / "tiny.toml"
    builtin = task_catalog.builtin_task_files()
    task.write_text(builtin["mnist_mlp"].read_text().replace('name = "mnist_mlp"', 'name = "tiny"'))
    monkeypatch.setattr(task_catalog, "task_files", lambda: {"tiny": task})
    [first] = task_summaries()
    assert first["problem"] is None and first["epochs"] == 5
    text = task.read_text().replace("epochs = 5", "epochs = 7")
    assert text != task.read_text()
    task.write_text(text)
    [second] = task_summaries()
    assert second["epochs"] == 7
    task.write_text("this is = not [toml")
    os.utime(task, ns=(0, 0))  # whatever its times say, its size and change time differ
    [broken] = task_summaries()
    assert broken["problem"]


def test_the_cache_is_keyed_on_files_that_exist():
    """a moved module left the cache keyed on a path that no longer existed: summaries made by
    older validating code would have been served after an upgrade."""
    code = validation_context()["code"]
    assert code and all(identity is not None for identity in code.values()), code
