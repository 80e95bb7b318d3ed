"""The conformance kit's profiling check: a session without a profiler is "not profiled", with
the reason; one whose profiler leaves the steps unmarked fails; PyTorch's passes."""

import os

import pytest

from harness.testing import ConformanceSuite
from harness.testing.suite import conformance_report

from .conftest import SUPPORT


@pytest.fixture
def test_plugins(monkeypatch):
    monkeypatch.setenv("HARNESS_PLUGINS", "harness_test_plugins")
    path = os.pathsep.join(filter(None, [str(SUPPORT), os.environ.get("PYTHONPATH")]))
    monkeypatch.setenv("PYTHONPATH", path)


def test_a_session_without_a_profiler_is_not_profiled_and_says_why(test_plugins):
    report = conformance_report("sloppy")  # wraps PyTorch's session, offers no profiler
    assert report["profiler"] == {
        "status": "not_profiled",
        "reason": "TweakedSession offers no profiler (Session.profiler)",
    }
    with pytest.raises(pytest.skip.Exception, match="not profiled: TweakedSession offers no"):
        ConformanceSuite().test_profiles_its_steps_with_each_step_marked(report)


def test_a_profiler_that_marks_no_step_fails_and_pytorchs_passes(test_plugins):
    unmarked = conformance_report("torch_unmarked")
    assert unmarked["profiler"]["status"] == "ok"
    assert unmarked["profiler"]["markers"] == []
    with pytest.raises(AssertionError):
        ConformanceSuite().test_profiles_its_steps_with_each_step_marked(unmarked)
    marked = conformance_report("torch")
    ConformanceSuite().test_profiles_its_steps_with_each_step_marked(marked)
    assert marked["profiler"]["markers"] == ["harness step 0", "harness step 1", "harness step 2"]
