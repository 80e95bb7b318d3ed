"""A plugin adds a dataset and a task on it through the hooks, and every framework trains it."""

from __future__ import annotations

import json

import pytest

from harness.data.datasets import DatasetInfo
from harness.registry import plugins
from harness.registry.catalog import load_task
from harness.workload.tasks import TaskError

from .conftest import SUPPORT, harness_env, run_harness

TINY = harness_env(HARNESS_PLUGINS="harness_tiny_plugin,harness_test_plugins")


def test_a_plugins_task_and_dataset_are_listed_and_train_end_to_end(tmp_path, monkeypatch):
    listed = json.loads(run_harness("list", "--json", env=TINY).stdout)
    task = next(task for task in listed["tasks"] if task["name"] == "tiny_blobs_mlp")
    assert task["dataset"] == "tiny_blobs" and task["problem"] is None
    dataset = next(found for found in listed["datasets"] if found["name"] == "tiny_blobs")
    assert dataset == {
        "name": "tiny_blobs",
        "provider": "plugin 'harness_tiny_plugin' (HARNESS_PLUGINS)",
        "kind": "generated",
        "input_shape": [4],
        "num_classes": 2,
        "tasks": ["tiny_blobs_mlp"],
    }
    assert "tiny_blobs" in run_harness("list", env=TINY).stdout  # and in the table

    ran = run_harness(
        "run",
        "--task",
        "tiny_blobs_mlp",
        "-f",
        "torch",
        "-f",
        "centroid",
        "--out",
        str(tmp_path),
        "--no-report",
        env=TINY,
    )
    assert ran.returncode == 0, ran.stderr
    [run_dir] = tmp_path.iterdir()
    rows = json.loads(run_harness("show", str(run_dir), "--json", env=TINY).stdout)
    assert {row["framework"]: row["met_target"] for row in rows} == {
        "torch": True,
        "centroid": True,
    }
    assert all(row["metrics"]["train_samples"] == 1_800 for row in rows)  # 2,000 less 200 held out
    # every row names the data it trained on, and who provides it
    providers = {row["dataset"]["provider"] for row in rows}
    assert {row["dataset"]["name"] for row in rows} == {"tiny_blobs"}
    assert providers == {"plugin 'harness_tiny_plugin' (HARNESS_PLUGINS)"}, providers
    # the run's environment names the plugins and what each provided
    environment = json.loads((run_dir / "environment.json").read_text())
    tiny = next(each for each in environment["plugins"] if each["plugin"] == "harness_tiny_plugin")
    assert tiny == {
        "plugin": "harness_tiny_plugin",
        "source": "HARNESS_PLUGINS",
        "frameworks": [],
        "tasks": ["tiny_blobs_mlp"],
        "datasets": ["tiny_blobs"],
    }
    # and what it loaded: the arrays the plugin generates from the task's seed
    from harness.data.datasets import Arrays, Split, digest_of_arrays

    monkeypatch.syspath_prepend(str(SUPPORT))
    from harness_tiny_plugin import tiny_blobs

    (x, y), (x_test, y_test) = tiny_blobs(rows[0]["seed"])
    generated = digest_of_arrays(Split(Arrays(x, y), Arrays(x_test, y_test)))
    assert {row["dataset"]["sha256"] for row in rows} == {generated}


def test_a_taken_name_is_the_plugins_failure_not_a_crash(registry, register_plugin):
    import harness

    class Clash:
        @harness.hookimpl
        def harness_register_datasets(self, register):
            register(
                DatasetInfo(
                    name="mnist", files={}, input_shape=(28, 28), num_classes=10, mirrors=()
                )
            )

        @harness.hookimpl
        def harness_register_tasks(self, register):
            register(SUPPORT.parent.parent / "tasks" / "mnist_mlp.toml")

    register_plugin(Clash(), "clash")
    reasons = [failure.reason for failure in registry.failures if failure.plugin == "clash"]
    assert any("dataset 'mnist'" in reason for reason in reasons)
    assert any("task 'mnist_mlp'" in reason for reason in reasons)
    assert load_task("mnist_mlp").dataset.name == "mnist"  # the built-ins are untouched


def test_without_the_plugin_its_task_is_unknown(registry):
    with pytest.raises(TaskError, match="unknown task 'tiny_blobs_mlp'"):
        load_task("tiny_blobs_mlp")
    assert "tiny_blobs" not in registry.datasets and plugins.get_registry() is registry
