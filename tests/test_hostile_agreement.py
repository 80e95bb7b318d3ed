"""`harness check-agreement` with frameworks that can't take part: one that declines the task
(its adapter raises ``UnsupportedSpec``) or isn't installed is reported and left out, and never
costs another framework its verdict. Uses the numpy test frameworks of
``tests/support/harness_test_plugins.py``: ``centroid`` and ``tempfolder`` agree, ``declines``
declines every task, ``missing`` isn't installed, ``raises`` fails in its first step."""

from __future__ import annotations

import json

from harness.checks import agreement
from harness.registry.catalog import load_task

from .conftest import harness_env, run_harness

DECLINED = "declined: declines can't express mnist_mlp's model"


def check(tmp_path, *frameworks: str):
    """``harness check-agreement`` of three steps of mnist_mlp, its cache under ``tmp_path``."""
    args = ["check-agreement", "--task", "mnist_mlp", "--steps", "3", "--threads", "1"]
    for framework in frameworks:
        args += ["-f", framework]
    env = harness_env(HARNESS_PLUGINS="harness_test_plugins", XDG_CACHE_HOME=str(tmp_path))
    return run_harness(*args, env=env)


def cached_verdicts(tmp_path) -> dict[str, str] | None:
    """framework -> cached status, or ``None`` when nothing was cached."""
    path = tmp_path / "harness" / "agreement.json"
    if not path.exists():
        return None
    [entry] = json.loads(path.read_text()).values()
    return {name: verdict["status"] for name, verdict in entry["frameworks"].items()}


def test_a_declining_framework_leaving_one_is_an_error(tmp_path):
    """check-agreement with a framework that declines the task, leaving one: exit 2, nothing cached."""
    result = check(tmp_path, "centroid", "declines")

    assert result.returncode == 2, result.stdout + result.stderr
    assert result.stderr.strip().splitlines() == [
        "error: the agreement check needs at least two available frameworks; only centroid can "
        f"run mnist_mlp (declines {DECLINED})"
    ]
    assert cached_verdicts(tmp_path) is None  # no `fail` for centroid, which did nothing wrong


def test_a_declining_framework_is_left_out_of_the_verdict(tmp_path):
    """check-agreement with a framework that declines the task: reported, left out; the rest agree."""
    result = check(tmp_path, "centroid", "declines", "tempfolder")

    assert result.returncode == 0, result.stdout + result.stderr
    assert DECLINED in result.stdout
    assert f"left out of the verdict: declines {DECLINED}" in result.stdout
    assert "the frameworks agree over 3 steps" in result.stdout
    assert "declines vs" not in result.stdout and "vs declines" not in result.stdout
    assert cached_verdicts(tmp_path) == {"centroid": "pass", "tempfolder": "pass"}


def test_a_framework_not_installed_leaving_one_is_an_error(tmp_path):
    """check-agreement with a framework that isn't installed, leaving one: exit 2."""
    result = check(tmp_path, "centroid", "missing")

    assert result.returncode == 2, result.stdout + result.stderr
    assert result.stderr.strip().splitlines() == [
        "error: the agreement check needs at least two available frameworks; only centroid can "
        "run mnist_mlp (missing: missingfw is not installed: pip install missingfw)"
    ]
    assert cached_verdicts(tmp_path) is None


def test_a_framework_not_installed_is_left_out_of_the_verdict(tmp_path):
    """check-agreement with a framework that isn't installed: reported, left out; the rest agree."""
    result = check(tmp_path, "missing", "centroid", "tempfolder")

    assert result.returncode == 0, result.stdout + result.stderr
    assert (
        "left out of the verdict: missing: missingfw is not installed: pip install missingfw"
        in result.stdout
    )
    assert "the frameworks agree over 3 steps" in result.stdout
    assert cached_verdicts(tmp_path) == {"centroid": "pass", "tempfolder": "pass"}


def test_a_framework_that_fails_costs_no_other_its_verdict(tmp_path):
    """check-agreement with a framework that fails its steps: exit 1; only it is cached as `fail`."""
    result = check(tmp_path, "centroid", "raises", "declines")

    assert result.returncode == 1, result.stdout + result.stderr
    assert "could not be compared: raises failed to run the steps" in result.stdout
    assert "DISAGREE" not in result.stdout
    # centroid was compared with nobody: no verdict, rather than a `fail` it didn't earn
    assert cached_verdicts(tmp_path) == {"raises": "fail"}


def test_record_keeps_no_verdict_for_a_framework_that_trained_nothing(tmp_path, monkeypatch):
    """check-agreement cache: a declined or absent framework gets no verdict, the others theirs."""
    monkeypatch.setattr(agreement, "cache_path", lambda: tmp_path / "agreement.json")
    task = load_task("mnist_mlp").without_dropout()
    a = agreement.Trace("a", "1", losses=[1.0, 0.5])
    b = agreement.Trace("b", "1", losses=[1.0, 0.5])
    declined = agreement.Trace(
        "c", "1", status="skipped", kind="unsupported", error="unsupported: no lstm"
    )
    absent = agreement.not_installed("d", None, "d is not installed: pip install d")
    check = agreement.Check(task, 2, [a, declined, b, absent], [agreement.compare(a, b, task)])

    agreement.record(check)

    assert check.passed and check.failed_frameworks == []
    assert [trace.framework for trace in check.skipped] == ["c", "d"]
    assert declined.note == "declined: no lstm"
    assert agreement.verdicts(check) == {
        "a": {"version": "1", "status": "pass"},
        "b": {"version": "1", "status": "pass"},
    }
    assert agreement.status_for(task, "a", "1") == "pass (2 steps)"
    assert agreement.status_for(task, "c", "1") is None
