"""Verdicts that can change after a run (agreement, utilisation) are joined in when rows are
read: a check or calibration made later shows up in `harness show` of an older run."""

from __future__ import annotations

import json
import os

from harness.checks import agreement, calibration
from harness.registry.catalog import load_task

from .conftest import harness_env, run_harness


def test_a_later_check_and_calibration_show_up_in_an_older_run(tmp_path, monkeypatch):
    cache = tmp_path / "cache"
    env = harness_env(HARNESS_PLUGINS="harness_test_plugins", XDG_CACHE_HOME=str(cache))
    ran = run_harness(
        "run",
        "--task",
        "mnist_mlp",
        "--epochs",
        "1",
        "--train-subset",
        "500",
        "--threads",
        "1",
        "--out",
        str(tmp_path / "out"),
        "-f",
        "centroid",
        "--no-report",
        env=env,
    )
    assert ran.returncode == 0, ran.stderr
    [run_dir] = (tmp_path / "out").iterdir()
    [before] = json.loads(run_harness("show", str(run_dir), "--json", env=env).stdout)
    assert before["agreement"] is None and before["metrics"].get("utilisation") is None

    # afterwards: this machine is calibrated and an agreement check passes, as the commands
    # `harness calibrate` and `harness check-agreement` would record them
    monkeypatch.setenv("XDG_CACHE_HOME", str(cache))
    version = before["framework_version"]
    calibration.save(
        {calibration.entry_key("centroid", version, "cpu", 1): {"flops_per_second": 1e10}}
    )
    task = load_task("mnist_mlp").without_dropout()
    agreement_cache = agreement.cache_path()
    agreement_cache.write_text(
        json.dumps(
            {
                agreement.task_digest(task, before["dataset"]["sha256"]): {
                    "task": "mnist_mlp",
                    "steps": 7,
                    "frameworks": {"centroid": {"version": version, "status": "pass"}},
                }
            }
        )
    )
    assert str(cache) in os.fspath(agreement_cache)

    [after] = json.loads(run_harness("show", str(run_dir), "--json", env=env).stdout)
    assert after["agreement"] == "pass (7 steps)"
    achieved = after["metrics"]["achieved_flops_per_second"]
    assert after["metrics"]["utilisation"] == achieved / 1e10
    raw = json.loads((run_dir / "results.jsonl").read_text().splitlines()[0])
    assert "agreement" not in raw and "utilisation" not in raw["metrics"]  # the file is untouched
