"""A busy machine is measured, said, and never crowned: the noise verdict end to end."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import psutil
import pytest

from harness.measure.noise import INTERVAL, CpuTimes, _Sample, _tree_cpu_seconds, judge
from harness.testing.fixtures import read_rows

from .conftest import SUPPORT, harness_env, run_harness

SPIN = harness_env(HARNESS_PLUGINS="harness_test_plugins", PYTHONPATH=str(SUPPORT))


def samples(other_cores: list[float], steal_share: float = 0.0, cores: int = 2) -> list[_Sample]:
    """Samples INTERVAL apart in which other processes used the given cores, the cell one core."""
    machine = CpuTimes(busy=0.0, steal=0.0, total=0.0)
    result = [_Sample(0.0, machine, cell=0.0, runner=0.0)]
    for index, others in enumerate(other_cores, start=1):
        busy = machine.busy + (1.0 + others) * INTERVAL
        steal = machine.steal + steal_share * cores * INTERVAL
        machine = CpuTimes(busy=busy, steal=steal, total=machine.total + cores * INTERVAL)
        result.append(_Sample(index * INTERVAL, machine, cell=index * INTERVAL, runner=0.0))
    return result


def test_a_machine_whose_other_processes_sip_the_cpu_is_quiet():
    noise = judge(samples([0.02, 0.05, 0.0, 0.1] * 5), [0.1, 0.1], [])
    assert noise.verdict == "quiet"
    assert noise.other_cores_mean == pytest.approx(0.0425, abs=1e-3)
    assert noise.busy_share == 0.0


def test_others_taking_a_core_for_part_of_the_fit_make_it_busy_and_say_how_much():
    noise = judge(samples([1.5] * 6 + [0.0] * 4), [2.0, 2.1], [2400.0, 2450.0])
    assert noise.verdict == "busy"
    assert noise.busy_share == pytest.approx(0.6)
    assert "other processes used 1.5 of" in noise.reason and "for 60% of the fit" in noise.reason
    assert noise.cpu_mhz == [2400, 2450] and noise.load_average == [2.0, 2.1]


def test_a_short_burst_below_the_share_is_not_called_busy():
    noise = judge(samples([0.6] + [0.0] * 19), [], [])
    assert noise.verdict == "quiet"  # 5 % of the fit, under 0.2 cores on average


def test_steal_time_alone_makes_it_busy():
    noise = judge(samples([0.0] * 10, steal_share=0.1), [], [])
    assert noise.verdict == "busy" and "steal" in noise.reason


def spin_run(out: Path) -> dict:
    result = run_harness(
        "run", "--task", "mnist_mlp", "-f", "spin", "--epochs", "2", "--train-subset", "2000",
        "--threads", "1", "--no-report", "--out", str(out), env=SPIN,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    [row] = read_rows(out)
    assert row["status"] == "ok"
    return row


GRANDCHILD_BURNS = (
    "import time\nstart = time.process_time()\nwhile time.process_time() - start < 0.5:\n    pass"
)
CHILD_REAPS_IT = (
    "import subprocess, sys, time\n"
    f"subprocess.run([sys.executable, '-c', {GRANDCHILD_BURNS!r}], check=True)\n"
    "print('reaped', flush=True)\ntime.sleep(60)"
)


def test_cpu_of_a_worker_reaped_inside_the_cell_stays_the_cells():
    # cell -> pool -> worker: torch.compile's worker pool burns CPU and exits mid-fit; its time
    # must stay in the tree (with whoever reaped it), not turn into "other processes"
    cell = subprocess.Popen(
        [
            sys.executable,
            "-c",
            f"import subprocess, sys\nsubprocess.run([sys.executable, '-c', {CHILD_REAPS_IT!r}])",
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert cell.stdout is not None and cell.stdout.readline().strip() == "reaped"
        seconds = _tree_cpu_seconds(psutil.Process(cell.pid))
        assert seconds is not None and seconds >= 0.5
    finally:
        for process in psutil.Process(cell.pid).children(recursive=True):
            process.kill()
        cell.kill()
        cell.wait()


def test_a_cell_beside_cpu_burners_is_judged_busy(tmp_path):
    # the burners take every core this test may use, so other processes certainly used more than
    # half a core whatever else the machine runs; how fast the cell went is not asserted
    burners = [
        subprocess.Popen([sys.executable, "-c", "while True: pass"])
        for _ in range(len(os.sched_getaffinity(0)))
    ]
    try:
        busy_row = spin_run(tmp_path / "busy")
    finally:
        for burner in burners:
            burner.kill()
            burner.wait()
    noise = busy_row["noise"]
    assert noise["verdict"] == "busy" and "other processes used" in noise["reason"], noise
    assert noise["samples"] >= 2 and noise["other_cores_mean"] > 0.5


def plant_run(source: Path, target: Path, *, fit_factor: float, verdict: str) -> Path:
    """A copy of the run folder ``source`` whose one row took ``fit_factor`` times as long and
    whose machine was ``verdict``: what compare and show are given, decided by the test."""
    shutil.copytree(source, target)
    rows_file = target / "results.jsonl"
    [row] = [json.loads(line) for line in rows_file.read_text().splitlines()]
    for name in ("fit_seconds", "steady_epoch_seconds", "step_seconds_p50", "step_seconds_p99"):
        if isinstance(row["metrics"].get(name), float):
            row["metrics"][name] *= fit_factor
    row["noise"]["verdict"] = verdict
    row["noise"]["reason"] = "planted by the test"
    rows_file.write_text(json.dumps(row) + "\n")
    return target


def test_compare_will_not_call_a_slower_busy_cell_a_regression_and_show_does_not_rank_it(tmp_path):
    spin_run(tmp_path / "measured")
    [measured] = (tmp_path / "measured").iterdir()
    quiet_run = plant_run(measured, tmp_path / "quiet", fit_factor=1.0, verdict="quiet")
    busy_run = plant_run(measured, tmp_path / "busy", fit_factor=3.0, verdict="busy")

    compare = run_harness("compare", str(quiet_run), str(busy_run), "--json")
    [cell] = json.loads(compare.stdout)["cells"]
    verdicts = {metric["metric"]: metric["verdict"] for metric in cell["metrics"]}
    assert verdicts["fit_seconds"] == "inconclusive: busy machine", verdicts

    assert compare.returncode == 0  # without --fail-on-regression: only reported
    text = run_harness("compare", str(quiet_run), str(busy_run), "--fail-on-regression")
    # not a regression, but not a pass either: the gate could not judge the change of time
    assert text.returncode == 7, text.stdout + text.stderr
    folded = " ".join(text.stdout.split())  # long lines wrap
    assert "inconclusive: busy machine" in folded and "not counted as regressions" in folded
    assert "exits 7" in folded
    helped = " ".join(run_harness("compare", "--help").stdout.split())
    assert "7 with --fail-on-regression when no cell regressed but at least one change" in helped
    gate = run_harness("compare", str(quiet_run), str(busy_run), "--json", "--fail-on-regression")
    assert gate.returncode == 7, gate.stdout + gate.stderr  # --json: the same exit codes
    payload = json.loads(gate.stdout)
    assert payload["regressions"] == 0 and payload["inconclusive_busy"] >= 1
    # a quiet rerun of the same change is judged: a regression, exit 4, not 7
    slow_quiet = plant_run(measured, tmp_path / "slow-quiet", fit_factor=3.0, verdict="quiet")
    judged = run_harness("compare", str(quiet_run), str(slow_quiet), "--fail-on-regression")
    assert judged.returncode == 4, judged.stdout + judged.stderr

    shown = run_harness("show", str(busy_run))
    folded = " ".join(shown.stdout.split())  # the caption may wrap
    assert "busy 1/1" in folded and "so the row is not ranked" in folded


DOCTOR_CHECKS = {
    "cores",
    "load",
    "other processes",
    "steal",
    "cpu governor",
    "turbo boost",
    "SMT (hyper-threading)",
    "cgroup CPU quota",
    "memory",
    "swap",
    "thread variables",
}


def test_harness_doctor_reports_every_check_as_json():
    result = run_harness(
        "doctor", "--json", "--sample", "0.2", env=harness_env(OMP_WAIT_POLICY="PASSIVE")
    )
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    findings = {finding["check"]: finding for finding in report["findings"]}
    assert findings.keys() >= DOCTOR_CHECKS
    assert any(check.startswith("GPU") for check in findings)
    for finding in report["findings"]:
        assert finding["verdict"] in ("ok", "warn", "info", "unknown"), finding
        assert finding["value"], finding
    assert report["warnings"] == sum(f["verdict"] == "warn" for f in report["findings"])
    assert findings["cores"]["data"] == len(os.sched_getaffinity(0))
    assert len(findings["load"]["data"]) == 2
    assert findings["thread variables"]["data"]["OMP_WAIT_POLICY"] == "PASSIVE"
    assert "OMP_WAIT_POLICY=PASSIVE" in findings["thread variables"]["value"]
    assert isinstance(findings["other processes"]["data"], list)
    assert findings["memory"]["data"] > 0


def row(framework: str, fit: float, verdict: str, steady: float | None = None) -> dict:
    metrics = {"fit_seconds": fit, "peak_rss_bytes": 2**30}
    if steady is not None:
        metrics["steady_epoch_seconds"] = steady
    return {
        "task": "mnist_mlp",
        "framework": framework,
        "device": "cpu",
        "status": "ok",
        "metrics": metrics,
        "noise": {"verdict": verdict, "reason": "planted"},
    }


def test_a_busy_row_is_neither_crowned_nor_the_row_others_are_measured_against():
    from harness.analysis.summary import summarise

    quiet = summarise([row("jax", 4.0, "quiet"), row("torch", 6.0, "quiet")])
    assert [group.fastest for group in quiet] == [True, False]
    assert [group.relative_time for group in quiet] == [1.0, 1.5]

    busy = summarise([row("jax", 4.0, "busy"), row("torch", 6.0, "quiet")])
    assert not any(group.fastest or group.leanest for group in busy)
    # the quiet row is the measure: the busy one is shown against it, not the other way
    assert [group.relative_time for group in busy] == [pytest.approx(4 / 6), 1.0]
    assert [group.busy for group in busy] == [1, 0]

    # what the tables show of it: no multiple on the busy row, and every × against the quiet ones
    from harness.analysis.summary import summary_line
    from harness.workload.tasks import Target

    target = Target(metric="test_accuracy", min=0.9)
    busy = summarise([row("jax", 4.0, "busy"), row("torch", 6.0, "quiet"), row("tf", 9.0, "quiet")])
    lines = [summary_line(group, target) for group in busy]
    assert [line["relative_time"] for line in lines] == ["busy", "1.00×", "1.50×"]
    assert [line["relative_memory"] for line in lines] == ["busy", "1.00×", "1.00×"]
    assert [line["marks"] for line in lines] == ["busy 1/1", "", ""]


def test_the_fastest_row_is_the_one_the_time_multiples_are_measured_against():
    """Crowned by the figure × time divides (the steady epochs), never one × time calls slower:
    a row with the shorter fit (its first epoch compiled less) is not fastest at 1.74×."""
    from harness.analysis.summary import summarise

    groups = summarise(
        [row("jax", 5.0, "quiet", steady=1.0), row("torch", 4.0, "quiet", steady=1.74)]
    )
    assert [group.relative_time for group in groups] == [1.0, pytest.approx(1.74)]
    assert [group.fastest for group in groups] == [True, False]
