"""The cross-framework agreement check: its arithmetic, its cache, and the real check per task."""

from __future__ import annotations

import json

import numpy as np
import pytest

from harness.checks import agreement
from harness.registry.catalog import load_task
from harness.testing.fixtures import read_rows

from .conftest import harness_env, run_harness

#: every built-in task; the default suite checks the first, the rest with `-m slow` (each of
#: their layers, batch norm's moving statistics and the causal mask included, is checked against
#: the numpy reference in every framework by the conformance kit, in the default suite)
TASKS = (
    "mnist_mlp",
    pytest.param("mnist_cnn", marks=pytest.mark.slow),
    pytest.param("series_rnn", marks=pytest.mark.slow),
    pytest.param("mnist_rnn", marks=pytest.mark.slow),
    pytest.param("mnist_vit", marks=pytest.mark.slow),
    pytest.param("fashion_resnet", marks=pytest.mark.slow),  # batch norm in every framework
    pytest.param("text_gpt", marks=pytest.mark.slow),  # embedding, causal blocks
)


def test_loss_difference_is_relative_to_the_larger_loss_and_names_the_worst_step():
    difference, step = agreement.relative_loss_difference([2.0, 1.0, 0.5], [2.0, 1.001, 0.5])
    assert difference == pytest.approx(0.001 / 1.001)
    assert step == 2


def test_a_nan_loss_is_an_infinite_difference():
    difference, _ = agreement.relative_loss_difference([1.0, float("nan")], [1.0, 0.9])
    assert difference == float("inf")


def test_weights_difference_is_relative_to_each_arrays_scale():
    a = [{}, {"kernel": np.array([[10.0, -20.0]]), "bias": np.array([0.001])}]
    b = [{}, {"kernel": np.array([[10.0, -20.2]]), "bias": np.array([0.001])}]
    assert agreement.weights_difference(a, b) == pytest.approx(0.01)
    assert agreement.weights_difference(a, None) is None


def test_arrays_the_task_leaves_out_are_not_compared_but_their_layout_still_is():
    # an attention key bias has no gradient in exact arithmetic (the softmax ignores a shift of
    # a query's scores): Adam moves it by each framework's rounding noise alone
    a = [{"key_kernel": np.ones((2, 2)), "key_bias": np.array([1e-5, -2e-5])}]
    b = [{"key_kernel": np.ones((2, 2)), "key_bias": np.array([-3e-5, 1e-5])}]
    assert agreement.weights_difference(a, b) == pytest.approx(2.0)
    assert agreement.weights_difference(a, b, ["key_bias"]) == 0.0
    task = load_task("mnist_vit")
    assert task.agreement.weights_not_compared == ["key_bias"]
    verdict = agreement.compare(
        agreement.Trace("a", "1", losses=[1.0], weights=a),
        agreement.Trace("b", "1", losses=[1.0], weights=b),
        task,
    )
    assert verdict.passed and verdict.weights_difference == 0.0
    with pytest.raises(ValueError, match="shapes differ"):
        agreement.weights_difference(a, [{"key_kernel": np.ones((2, 2)), "key_bias": np.ones(3)}])


def test_nan_weights_never_read_as_agreement():
    a = [{"kernel": np.array([1.0, 2.0])}]
    b = [{"kernel": np.array([1.0, np.nan])}]
    assert agreement.weights_difference(a, b) == float("inf")
    assert agreement.weights_difference(b, a) == float("inf")


def test_weights_in_another_layout_fail_the_pair_with_the_reason():
    task = load_task("mnist_mlp")
    good = agreement.Trace("a", "1", losses=[1.0], weights=[{"kernel": np.zeros((3, 2))}])
    transposed = agreement.Trace("b", "1", losses=[1.0], weights=[{"kernel": np.zeros((2, 3))}])
    verdict = agreement.compare(good, transposed, task)
    assert not verdict.passed
    assert (
        verdict.problem
        == "weights not comparable: layer 0 kernel: shapes differ: (3, 2) and (2, 3)"
    )


def test_a_verdict_is_cached_per_task_definition_and_framework_version(tmp_path, monkeypatch):
    monkeypatch.setattr(agreement, "cache_path", lambda: tmp_path / "agreement.json")
    task = load_task("mnist_cnn")
    traces = [
        agreement.Trace("a", "1.0", losses=[1.0, 0.5], parameters=34_826),
        agreement.Trace("b", "2.0", losses=[1.0, 0.5000001], parameters=34_826),
        agreement.Trace("c", "3.0", losses=[1.0, 0.6], parameters=34_826),
    ]
    pairs = [
        agreement.compare(x, y, task) for x, y in ((traces[0], traces[1]), (traces[0], traces[2]))
    ]
    check = agreement.Check(task=task.without_dropout(), steps=2, traces=traces, pairs=pairs)

    agreement.record(check)

    assert agreement.status_for(task, "a", "1.0") == "fail (2 steps)"  # its pair with c failed
    assert agreement.status_for(task, "b", "2.0") == "pass (2 steps)"
    assert agreement.status_for(task, "b", "2.1") is None  # another version: not checked
    assert agreement.status_for(task.with_epochs(3), "b", "2.0") == "pass (2 steps)"
    assert agreement.status_for(task.model_copy(update={"seed": 7}), "b", "2.0") is None
    assert agreement.status_for(task.with_dataset("fashion_mnist"), "b", "2.0") is None


def test_a_verdict_holds_only_for_the_data_it_was_checked_on(tmp_path, monkeypatch):
    """A plugin's dataset changing under the same name (a new version) voids the verdict."""
    monkeypatch.setattr(agreement, "cache_path", lambda: tmp_path / "agreement.json")
    task = load_task("mnist_mlp")
    checked_on, changed = "a" * 64, "b" * 64
    traces = [
        agreement.Trace(name, "1", losses=[1.0, 0.5], parameters=101_770, data_sha256=checked_on)
        for name in ("x", "y")
    ]
    pairs = [agreement.compare(*traces, task)]
    agreement.record(
        agreement.Check(task=task.without_dropout(), steps=2, traces=traces, pairs=pairs)
    )

    assert agreement.status_for(task, "x", "1", checked_on) == "pass (2 steps)"
    assert agreement.status_for(task, "x", "1", changed) is None
    assert agreement.status_for(task, "x", "1") is None  # a row that doesn't say what it loaded


@pytest.mark.parametrize("task", TASKS)
def test_the_built_in_frameworks_agree_on_the_first_steps_of_every_task(task, tmp_path):
    steps = min(8, load_task(task).agreement.steps)  # within the horizon the task states
    result = run_harness(
        "check-agreement",
        "--task",
        task,
        "--steps",
        str(steps),
        "--threads",
        "1",
        env=harness_env(XDG_CACHE_HOME=str(tmp_path)),
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"agree over {steps} steps" in result.stdout
    for pair in ("jax vs tensorflow", "jax vs torch", "tensorflow vs torch"):
        assert pair in result.stdout


def test_run_rows_carry_the_verdict_of_the_latest_check(tmp_path):
    env = harness_env(XDG_CACHE_HOME=str(tmp_path / "cache"))
    checked = run_harness(
        "check-agreement", "--task", "mnist_mlp", "--steps", "3", "--threads", "1",
        "-f", "torch", "-f", "jax", env=env,
    )  # fmt: skip
    assert checked.returncode == 0, checked.stdout + checked.stderr

    run = run_harness(
        "run", "--task", "mnist_mlp", "-f", "torch", "-f", "tensorflow", "--epochs", "1",
        "--train-subset", "1000", "--out", str(tmp_path / "out"), env=env,
    )  # fmt: skip

    assert run.returncode == 0, run.stdout + run.stderr
    [run_dir] = (tmp_path / "out").iterdir()
    shown = run_harness("show", str(run_dir), "--json", env=env)
    rows = {row["framework"]: row for row in json.loads(shown.stdout)}
    assert rows["torch"]["agreement"] == "pass (3 steps)"
    assert rows["tensorflow"]["agreement"] is None  # not part of that check
    assert "| pass (3 steps) |" in (run_dir / "report.md").read_text()
    raw = read_rows(run_dir)
    assert all("agreement" not in row for row in raw)  # joined in when read, never stored


def test_a_plugin_whose_model_has_other_parameters_fails_its_cell(tmp_path):
    env = harness_env(HARNESS_PLUGINS="harness_test_plugins")
    run = run_harness(
        "run", "--task", "mnist_mlp", "-f", "padded", "--epochs", "1", "--train-subset", "500",
        "--out", str(tmp_path), "--no-report", env=env,
    )  # fmt: skip
    assert run.returncode == 1
    [run_dir] = tmp_path.iterdir()
    [row] = read_rows(run_dir)
    assert (row["status"], row["kind"]) == ("failed", "parameter_mismatch")
    assert "101,780 trainable parameters; the task has 101,770" in row["error"]


def test_a_subtly_different_training_run_fails_the_check(tmp_path):
    env = harness_env(HARNESS_PLUGINS="harness_test_plugins", XDG_CACHE_HOME=str(tmp_path))
    result = run_harness(
        "check-agreement",
        "--task",
        "mnist_mlp",
        "--steps",
        "5",
        "--threads",
        "1",
        "-f",
        "torch",
        "-f",
        "sloppy",
        "-f",
        "padded",
        env=env,
    )
    assert result.returncode == 5, result.stdout + result.stderr
    assert "DISAGREE" in result.stdout
    assert "torch vs sloppy" in result.stdout and "FAIL" in result.stdout
    assert "the task has 101,770 parameters" in result.stdout  # padded counted 101,780


def test_check_agreement_json_gives_each_pair_and_the_verdict(tmp_path):
    env = harness_env(HARNESS_PLUGINS="harness_test_plugins", XDG_CACHE_HOME=str(tmp_path))
    result = run_harness(
        "check-agreement", "--task", "mnist_mlp", "--steps", "3", "--threads", "1",
        "-f", "torch", "-f", "sloppy", "--json", env=env,
    )  # fmt: skip
    assert result.returncode == 5, result.stdout + result.stderr
    [check] = json.loads(result.stdout)  # the tables went to stderr
    assert check["task"] == "mnist_mlp" and check["steps"] == 3
    assert check["verdict"] == "disagree"
    [pair] = check["pairs"]
    assert (pair["a"], pair["b"], pair["passed"]) == ("torch", "sloppy", False)
    assert (
        pair["loss_difference"] > pair["loss_rtol"]
        or pair["weights_difference"] > pair["weights_rtol"]
    )
    assert {framework["framework"] for framework in check["frameworks"]} == {"torch", "sloppy"}
    assert "torch vs sloppy" in result.stderr
