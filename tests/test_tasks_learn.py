"""Every new task learns in every built-in framework: short runs on a subset, through the CLI.

The full recipes (and their targets) take minutes per framework; these runs show that each
task's data, model and loss are wired so that training makes progress, and that the rows carry
what the task measures (accuracy, or mean squared error next to the harness's baselines).
"""

import pytest

from harness.testing.fixtures import read_rows

from .conftest import run_harness

FRAMEWORKS = ("torch", "tensorflow", "jax")


def run_task(tmp_path, task, *args):
    frameworks = [part for name in FRAMEWORKS for part in ("-f", name)]
    result = run_harness("run", "--task", task, *frameworks, "--out", str(tmp_path), *args)
    assert result.returncode == 0, result.stdout + result.stderr
    [run_dir] = tmp_path.iterdir()
    rows = read_rows(run_dir)
    assert sorted(row["framework"] for row in rows) == sorted(FRAMEWORKS)
    assert all(row["status"] == "ok" for row in rows), [row["error"] for row in rows]
    return rows


# a minute of training each in every framework: -m slow (each layer and step is checked against
# the numpy reference by the conformance kit in the default suite)
@pytest.mark.slow
@pytest.mark.parametrize(("task", "better_than"), [("mnist_cnn", 0.6), ("mnist_rnn", 0.3)])
def test_an_image_task_learns_well_above_chance(tmp_path, task, better_than):
    rows = run_task(tmp_path, task, "--epochs", "1", "--train-subset", "4000", "--no-report")
    for row in rows:
        assert row["metrics"]["test_accuracy"] > better_than, row["framework"]
        assert row["metrics"]["parameters"] in (34_826, 81_674)


def test_the_forecasting_task_beats_predicting_zero_and_reports_the_baselines(tmp_path):
    rows = run_task(tmp_path, "series_rnn", "--epochs", "2", "--train-subset", "3000")
    for row in rows:
        metrics = row["metrics"]
        assert "test_accuracy" not in metrics
        # predicting 0 for these series costs about 0.15; the naive forecast about 0.021
        assert metrics["test_mse"] < 0.05, (row["framework"], metrics["test_mse"])
        assert metrics["naive_forecast_mse"] == pytest.approx(0.0208, abs=0.002)
        assert metrics["linear_forecast_mse"] < metrics["naive_forecast_mse"]
        assert metrics["validation_metric"] == "mse"
    [run_dir] = tmp_path.iterdir()
    report = (run_dir / "report.md").read_text()
    assert "(target test_mse ≤ 0.004)" in report and "| test MSE |" in report
    assert (run_dir / "charts" / "series_rnn-to-target.svg").exists()  # validation MSE over time
