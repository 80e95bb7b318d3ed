"""``harness run --profile``: after the timed cells, one profiled pass per cell in a process of
its own, a Chrome trace per cell with every profiled step marked, and each step split into
categories that add up to the step the harness's clock measured."""

from __future__ import annotations

import json

import pytest

from harness.api.adapter import availability_of
from harness.api.profiling import CATEGORIES
from harness.benchmark import plan_run
from harness.checks.profiling import PROFILED_STEPS, read_profiles
from harness.commands.run import recorded_task
from harness.errors import HarnessError
from harness.registry.plugins import get_registry
from harness.store.results import RunDir
from harness.testing.fixtures import read_rows
from tests.conftest import run_harness

#: the parts of a step add up to the measured step within this share (docs/measuring.md)
SUM_TOLERANCE = 0.05

RUN = ("run", "--task", "mnist_mlp", "--epochs", "1", "--train-subset", "640")


def installed(*names: str) -> list[str]:
    registry = get_registry()
    return [name for name in names if availability_of(registry.framework(name)).available]


def make_profiled_run(tmp_path_factory):
    frameworks = installed("torch", "jax")
    if len(frameworks) < 2:
        pytest.skip("needs PyTorch and JAX")
    out = tmp_path_factory.mktemp("profiled")
    args = [arg for name in frameworks for arg in ("-f", name)]
    result = run_harness(*RUN, *args, "--mode", "all", "--profile", "--out", str(out))
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    [run_dir] = [path for path in out.iterdir() if path.is_dir()]
    return run_dir, result.stdout


def test_every_cell_leaves_a_chrome_trace_with_each_profiled_step_marked(profiled_run):
    run_dir, _ = profiled_run
    profiles = read_profiles(run_dir)
    assert {p["cell"] for p in profiles} == {
        f"mnist_mlp-{framework}-{mode}-auto"
        for framework in ("torch", "jax")
        for mode in ("eager", "compiled")
    }
    for profile in profiles:
        assert profile["status"] == "ok", profile["error"]
        trace = json.loads((run_dir / profile["trace"]).read_text())
        names = [e["name"] for e in trace["traceEvents"] if e.get("ph") == "X"]
        assert names.count("harness epoch") == 1
        steps = sorted(name for name in names if name.startswith("harness step "))
        if profile["metrics"]["marked"] == "steps":
            assert steps == sorted(f"harness step {n}" for n in range(PROFILED_STEPS))
        else:  # a scanned epoch: one program, no single step to mark
            assert (profile["framework"], profile["mode"]) == ("jax", "compiled")
            assert steps == []


def test_the_categories_add_up_to_the_measured_step(profiled_run):
    run_dir, _ = profiled_run
    for profile in read_profiles(run_dir):
        metrics = profile["metrics"]
        parts = metrics["seconds_per_step"]
        assert set(parts) == set(CATEGORIES)
        assert all(value >= 0 for value in parts.values())
        measured = metrics["measured_seconds_per_step"]
        assert sum(parts.values()) == pytest.approx(measured, rel=SUM_TOLERANCE), profile["cell"]
        assert sum(metrics["shares"].values()) == pytest.approx(1.0)
        # the profiler's cost is measured: the unprofiled steps ran in the same process
        if metrics["marked"] == "steps":
            assert metrics["unprofiled_step_seconds"] > 0
            assert metrics["profiler_slowdown"] > 0


def test_the_timing_rows_are_the_cells_of_a_run_without_profile(profiled_run):
    run_dir, stdout = profiled_run
    rows = read_rows(run_dir)
    # the cells a run of the recorded configuration plans, as one without --profile runs them
    opened, config = RunDir.open(run_dir)
    planned = plan_run(recorded_task(opened, config), config, []).cells
    assert sorted(r["cell_id"] for r in rows) == sorted(cell.id for cell in planned)
    # one row per cell, and no row or metric of them is the profiled pass's
    assert len(rows) == 4
    assert not any("profile" in key for row in rows for key in row["metrics"])
    assert "where a step's time goes" in stdout
    assert "torch (eager):" in stdout and "of a step outside operations" in stdout


def test_the_report_has_the_breakdown(profiled_run):
    run_dir, _ = profiled_run
    markdown = (run_dir / "report.md").read_text()
    assert "## Where a step's time goes" in markdown
    assert "- torch (compiled): " in markdown
    assert (run_dir / "charts" / "step-breakdown.svg").exists()


def test_show_profile_prints_the_breakdown_and_its_records_as_json(profiled_run):
    run_dir, _ = profiled_run
    shown = run_harness("show", "--profile", str(run_dir))
    assert shown.returncode == 0, shown.stderr
    assert "where a step's time goes" in shown.stdout
    assert shown.stdout.count("of a step outside operations") == 4
    as_json = run_harness("show", "--profile", "--json", str(run_dir))
    assert json.loads(as_json.stdout) == read_profiles(run_dir)


def planted(folder, optimizer: float, step: float) -> None:
    """A profiles file as --profile writes it: one torch cell, its optimizer's time planted."""
    parts = dict.fromkeys(CATEGORIES, 0.0) | {"matmul": 2e-4, "optimizer": optimizer}
    record = {
        "cell": "mnist_mlp-torch-eager-cpu", "task": "mnist_mlp", "framework": "torch",
        "mode": "eager", "precision": "float32", "device": "cpu", "status": "ok", "trace": "t",
        "metrics": {"seconds_per_step": parts, "shares": parts, "measured_seconds_per_step": step},
    }  # fmt: skip
    folder.mkdir()
    (folder / "profiles.json").write_text(json.dumps({"profiles": [record]}))


def test_compare_names_the_category_that_moved_most(tmp_path):
    from harness.analysis.profiles import profile_changes

    planted(tmp_path / "a", optimizer=1e-4, step=3e-4)
    planted(tmp_path / "b", optimizer=4e-4, step=6e-4)
    [change] = profile_changes(tmp_path / "a", tmp_path / "b")
    assert (change.category, change.a, change.b) == ("optimizer", 1e-4, 4e-4)
    assert change.sentence() == (
        "torch (eager): profiled step 0.30 → 0.60 ms; optimizer moved most: 0.10 → 0.40 ms "
        "(+0.30 ms)"
    )


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("[1, 2", "unreadable profiles"),
        ('{"profiles": 3}', "not a harness profiles file"),
        ('{"profiles": [{"cell": "x"}]}', "profile 1 is damaged: task is not text"),
        (
            json.dumps({"profiles": [{**{k: "x" for k in ("cell", "task", "framework", "mode",
             "precision", "device")}, "status": "ok", "trace": "t",
             "metrics": {"shares": {"matmul": "most"}, "seconds_per_step": {}}}]}),
            "metrics.shares is not an object of numbers",
        ),
    ],
)  # fmt: skip
def test_a_damaged_profiles_file_is_one_line_not_a_traceback(tmp_path, text, problem):
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    (run_dir / "run.json").write_text(json.dumps({"schema": 1}))
    (run_dir / "profiles.json").write_text(text)
    with pytest.raises(HarnessError, match=problem):
        read_profiles(run_dir)
