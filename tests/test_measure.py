import json
import os
import subprocess
import sys

import pytest

from harness.measure.training_log import TrainingLog
from harness.workload.tasks import Target

ACCURACY_TARGET = Target(min=0.97)


def log_of(epochs, target=ACCURACY_TARGET):
    log = TrainingLog(target=target)
    for seconds, score in epochs:
        log.add_epoch(seconds, loss=0.1, score=score, eval_seconds=0.5)
    return log


def test_time_to_target_counts_training_time_only_up_to_the_first_epoch_that_reaches_it():
    log = log_of([(3.0, 0.95), (2.0, 0.969), (2.0, 0.97), (2.0, 0.98)])
    assert log.time_to_target() == (7.0, 3)  # 3 + 2 + 2 seconds; evaluation time left out


def test_a_mean_squared_error_target_is_reached_from_above():
    target = Target(metric="test_mse", max=0.005)
    log = log_of([(3.0, 0.02), (2.0, 0.0051), (2.0, 0.005), (2.0, 0.004)], target)
    assert log.time_to_target() == (7.0, 3)
    assert log.metrics(1000, [])["validation_metric"] == "mse"


def test_never_reaching_the_target():
    assert log_of([(1.0, 0.5), (1.0, 0.6)]).time_to_target() == (None, None)
    assert log_of([(1.0, None)]).time_to_target() == (None, None)  # no validation split


def test_metrics_separate_the_first_epoch_from_the_steady_state():
    log = log_of([(5.0, 0.9), (2.0, 0.98), (2.2, 0.99)])
    log.first_epoch_steps = 2
    metrics = log.metrics(train_samples=1000, step_samples=[0.9, 0.8, 0.010, 0.012, 0.011])
    assert metrics["fit_seconds"] == pytest.approx(9.2)
    assert metrics["first_epoch_seconds"] == 5.0
    assert metrics["steady_epoch_seconds"] == pytest.approx(2.1)
    assert metrics["first_epoch_extra_seconds"] == pytest.approx(2.9)
    assert metrics["samples_per_second"] == pytest.approx(3000 / 9.2)
    assert metrics["time_to_target_seconds"] == 7.0 and metrics["target_reached_epoch"] == 2
    # the first epoch's (compiling) steps are kept raw but left out of the percentiles
    assert metrics["step_seconds_sampled"] == [0.9, 0.8, 0.010, 0.012, 0.011]
    assert metrics["step_seconds_p50"] == 0.011 and metrics["step_seconds_p99"] == 0.012


def test_one_epoch_has_no_steady_state():
    metrics = log_of([(5.0, 0.9)]).metrics(train_samples=10, step_samples=[])
    assert metrics["steady_epoch_seconds"] is None and metrics["first_epoch_extra_seconds"] is None
    assert "step_seconds_p50" not in metrics


COMPILE_CACHE_PROBE = """
import json, os
from harness_torch.adapter import TorchAdapter
session = TorchAdapter().setup(device="cpu", threads=1, mode="compiled")
folder = os.environ["TORCHINDUCTOR_CACHE_DIR"]
print(json.dumps({"folder": folder, "listing": os.listdir(os.path.dirname(folder)),
                  "record": session.runtime.settings["compile_cache"]}))
"""


@pytest.mark.parametrize("preset", [None, "/tmp/users-own-cache"])
def test_torch_compiled_cells_compile_from_an_empty_cache_unless_the_user_names_one(preset):
    pytest.importorskip("torch")
    env = {k: v for k, v in os.environ.items() if k != "TORCHINDUCTOR_CACHE_DIR"}
    if preset:
        env["TORCHINDUCTOR_CACHE_DIR"] = preset
    out = subprocess.run(
        [sys.executable, "-c", COMPILE_CACHE_PROBE], capture_output=True, text=True, env=env
    )
    assert out.returncode == 0, out.stderr
    probe = json.loads(out.stdout)
    if preset:  # the user's cache is used, and the record says it may be warm
        assert probe["folder"] == preset and "may be warm" in probe["record"]
    else:  # a new folder of the cell's own, gone when the cell's process ends
        assert probe["record"] == "empty at the start of the cell"
        assert probe["listing"] == []
        assert not os.path.exists(os.path.dirname(probe["folder"]))


def test_the_memory_preflight_heeds_a_cgroup_limit_below_the_machines(tmp_path, monkeypatch):
    """a container's (or CI runner's) memory limit is what cells get, not the machine's RAM."""
    from harness.data import datasets
    from harness.errors import HarnessError
    from harness.measure import environment, monitor
    from harness.registry.catalog import load_task
    from harness.workload import feasibility

    (tmp_path / "memory.events").write_text("oom_kill 0\n")
    (tmp_path / "memory.max").write_text(f"{64 * 2**20}\n")  # 64 MiB
    monkeypatch.setattr(monitor, "_cgroup_oom_file", lambda: tmp_path / "memory.events")
    assert monitor.cgroup_memory_limit() == 64 * 2**20
    usable = environment.usable_memory()
    assert usable == (64 * 2**20, "this process's cgroup memory limit")

    task = load_task("mnist_mlp")
    with pytest.raises(HarnessError, match="more than this process's cgroup memory limit, 64"):
        feasibility.check(task, datasets.locate("mnist"), memory_limit=None, usable=usable)

    (tmp_path / "memory.max").write_text("max\n")  # cgroup v2's "no limit"
    assert monitor.cgroup_memory_limit() is None
