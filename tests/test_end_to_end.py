"""Each built-in framework trains mnist_mlp on real MNIST through the real CLI."""

import json
import re

import pandas as pd
import pytest

from harness.data import datasets
from harness.testing.fixtures import read_rows

from .conftest import run_harness

ROW_KEYS = {
    "task",
    "framework",
    "framework_version",
    "device",
    "device_name",
    "status",
    "error",
    "metrics",
    "settings",
    "seed",
    "threads",
    "run_id",
    "cell_id",
    "met_target",
    "mode",
}
METRIC_KEYS = {
    "test_accuracy",
    "test_loss",
    "train_loss",
    "fit_seconds",
    "epoch_seconds",
    "samples_per_second",
    "peak_rss_bytes",
    "peak_device_memory_bytes",
    "setup_seconds",
    "startup_seconds",
    "first_epoch_seconds",
    "validation_scores",
    "time_to_target_seconds",
    "step_seconds_sampled",
    "training_flops",
    "achieved_flops_per_second",
}


def read_run(out):
    [run_dir] = out.iterdir()
    rows = read_rows(run_dir)
    return run_dir, rows


@pytest.mark.parametrize("framework", ["tensorflow", "torch", "jax"])
def test_trains_mnist_mlp_on_real_mnist(tmp_path, framework):
    result = run_harness(
        "run",
        "--task",
        "mnist_mlp",
        "--framework",
        framework,
        "--device",
        "cpu",
        "--epochs",
        "1",
        "--train-subset",
        "15000",
        "--out",
        str(tmp_path),
    )
    assert result.returncode == 0, result.stdout + result.stderr
    run_dir, [row] = read_run(tmp_path)

    assert row.keys() >= ROW_KEYS and row["metrics"].keys() >= METRIC_KEYS
    assert (row["task"], row["framework"], row["device"], row["status"]) == (
        "mnist_mlp",
        framework,
        "cpu",
        "ok",
    )
    metrics = row["metrics"]
    assert metrics["test_accuracy"] > 0.9  # chance is 0.1: it learned
    assert metrics["test_samples"] == 10000 and metrics["train_samples"] == 15000
    assert len(metrics["epoch_seconds"]) == 1 and metrics["fit_seconds"] > 0
    assert metrics["peak_rss_bytes"] > 50 * 2**20
    assert row["settings"]["threads"] == row["threads"]

    environment = json.loads((run_dir / "environment.json").read_text())
    assert environment["framework_versions"] == {framework: row["framework_version"]}
    assert environment["seed"] == 42 and environment["cpu_model"]
    table = pd.read_csv(run_dir / "results.csv")
    assert table.loc[0, "metrics.test_accuracy"] == pytest.approx(metrics["test_accuracy"])
    assert framework in result.stdout and "ok" in result.stdout


def test_fashion_mnist_is_a_drop_in_for_an_mnist_task(tmp_path):
    result = run_harness(
        "run",
        "--task",
        "mnist_mlp",
        "--framework",
        "torch",
        "--dataset",
        "fashion_mnist",
        "--epochs",
        "1",
        "--train-subset",
        "15000",
        "--no-report",
        "--out",
        str(tmp_path),
    )
    assert result.returncode == 0, result.stdout + result.stderr
    run_dir, [row] = read_run(tmp_path)
    assert row["status"] == "ok" and row["metrics"]["test_accuracy"] > 0.75
    config = json.loads((run_dir / "run.json").read_text())
    assert config["task"]["dataset"]["name"] == "fashion_mnist"
    assert config["task"]["target"]["min"] == 0.85
    # the row names what it loaded: Fashion-MNIST's four verified files, not MNIST's
    fashion, mnist = (datasets.DATASETS[name] for name in ("fashion_mnist", "mnist"))
    assert row["dataset"]["sha256"] == datasets.digest_of_files(datasets.file_sums(fashion))
    assert row["dataset"]["sha256"] != datasets.digest_of_files(datasets.file_sums(mnist))


def test_frameworks_start_from_the_same_weights_and_batches(all_frameworks_run):
    """Same data, weights and batch order: the first epoch's mean loss agrees closely."""
    rows, result = all_frameworks_run
    assert result.returncode == 0, result.stdout + result.stderr
    losses = {name: row["metrics"]["train_loss"] for name, row in rows.items()}
    assert {"tensorflow", "torch", "jax"} <= set(losses)  # and any installed plugin's
    assert max(losses.values()) - min(losses.values()) < 0.01 * min(losses.values()), losses


@pytest.mark.slow  # twelve cells, three of them compiling; -m slow runs it
def test_repeats_and_modes_each_get_a_row_with_their_raw_values(tmp_path):
    result = run_harness(
        "run",
        "--task",
        "mnist_mlp",
        "-f",
        "tensorflow",
        "-f",
        "torch",
        "-f",
        "jax",
        "--device",
        "cpu",
        "--repeats",
        "2",
        "--mode",
        "all",
        "--epochs",
        "2",
        "--train-subset",
        "3000",
        "--out",
        str(tmp_path),
    )
    assert result.returncode == 0, result.stdout + result.stderr
    _, rows = read_run(tmp_path)
    cells = {(row["framework"], row["mode"], row["repeat"]) for row in rows}
    assert cells == {
        (fw, mode, repeat)
        for fw in ("tensorflow", "torch", "jax")
        for mode in ("eager", "compiled")
        for repeat in (0, 1)
    }
    for row in rows:
        metrics = row["metrics"]
        assert row["status"] == "ok", row
        assert row["settings"]["mode"] == row["mode"]
        assert len(metrics["epoch_seconds"]) == 2 and len(metrics["validation_scores"]) == 2
        assert metrics["validation_samples"] == 5000 and metrics["train_samples"] == 3000
        assert metrics["achieved_flops_per_second"] > 0
        scanned = row["framework"] == "jax" and row["mode"] == "compiled"
        if not scanned:  # a whole epoch in one lax.scan has no single steps to time
            assert (
                metrics["step_seconds_sampled"]
                and 0 < metrics["step_seconds_p50"] <= metrics["step_seconds_p99"]
            )
    settings = {(row["framework"], row["mode"]): row["settings"] for row in rows}
    assert settings[("torch", "compiled")]["compiler"] == "torch.compile"
    assert "optimizer step" in settings[("torch", "compiled")]["compiled_unit"]
    assert settings[("torch", "compiled")]["compile_cache"] == "empty at the start of the cell"
    assert settings[("tensorflow", "compiled")]["jit_compile"] is True
    assert settings[("jax", "compiled")]["compiled_unit"] == "epoch (lax.scan)"
    # the terminal table has one line per framework and mode, with the repeats' spread
    assert len(re.findall(r"(?<!busy )\b2/2\b", result.stdout)) == 6 and "±" in result.stdout


@pytest.mark.slow
@pytest.mark.parametrize("task", ["mnist_mlp", "mnist_cnn", "series_rnn", "mnist_rnn", "mnist_vit"])
def test_the_full_recipe_reaches_its_target_in_every_built_in_framework(tmp_path, task):
    result = run_harness(
        "run", "--task", task, "-f", "tensorflow", "-f", "torch", "-f", "jax",
        "--out", str(tmp_path), "--no-report", timeout=3600,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    _, rows = read_run(tmp_path)
    assert {row["framework"] for row in rows} == {"tensorflow", "torch", "jax"}
    for row in rows:
        assert row["status"] == "ok" and row["met_target"], row
