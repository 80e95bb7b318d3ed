"""A batch norm's moving statistics follow the task's convention (Keras's momentum, the
biased variance): a plugin passing PyTorch's own momentum through unconverted fails the kit's
check, and the built-in PyTorch plugin, which converts, passes it."""

import os

import pytest

from harness.testing import ConformanceSuite
from harness.testing.suite import MOVING_STATISTICS_RTOL, conformance_report

from .conftest import SUPPORT


def test_the_kit_catches_pytorchs_momentum_convention_passed_through(monkeypatch):
    monkeypatch.setenv("HARNESS_PLUGINS", "harness_test_plugins")
    # the test plugins importable, and the harness this test runs (a checkout's, not an install's)
    path = os.pathsep.join(filter(None, [str(SUPPORT), os.environ.get("PYTHONPATH")]))
    monkeypatch.setenv("PYTHONPATH", path)
    wrong = conformance_report("torch_momentum")["batch_norm_statistics"]
    assert wrong["status"] == "ok", wrong
    assert all(d > MOVING_STATISTICS_RTOL for d in wrong["differences"].values()), wrong
    with pytest.raises(AssertionError, match="after one step is"):
        ConformanceSuite().test_batch_norm_keeps_its_moving_statistics_as_the_task_says(
            conformance_report("torch_momentum")
        )
    right = conformance_report("torch")["batch_norm_statistics"]
    assert right["status"] == "ok", right
    assert all(d <= MOVING_STATISTICS_RTOL for d in right["differences"].values()), right
