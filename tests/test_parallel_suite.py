"""The suite in two pytest-xdist workers: the tests that share a module's set-up or a
session-wide run go to one worker, so that set-up is made once."""

from __future__ import annotations

import re
import subprocess
import sys

import pytest

from tests.conftest import TESTS

pytest.importorskip("xdist")

#: a conftest that takes the suite's grouping and scheduler, and a session-wide run of its own
CONFTEST = """
import pytest
from tests.conftest import (
    pytest_collection_modifyitems, pytest_configure_node, pytest_unconfigure,
    pytest_xdist_make_scheduler,
)

@pytest.fixture(scope="session")
def reported_run():
    return "made once"
"""

MODULE = """
import pytest

@pytest.mark.parametrize("n", range(4))
def test_{name}(n{fixture}):
    pass
"""


def test_modules_sharing_a_session_run_go_to_one_worker_and_each_module_stays_whole(tmp_path):
    (tmp_path / "conftest.py").write_text(CONFTEST)
    for name, fixture in (("first", ", reported_run"), ("second", ", reported_run")):
        (tmp_path / f"test_{name}.py").write_text(MODULE.format(name=name, fixture=fixture))
    for name in ("third", "fourth"):
        (tmp_path / f"test_{name}.py").write_text(MODULE.format(name=name, fixture=""))
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-n", "2", "--dist", "loadgroup", "-v", "-p",
         "no:cacheprovider", "-o", "addopts=", str(tmp_path)],
        capture_output=True, text=True, cwd=TESTS.parent, timeout=300,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout[-3000:]
    workers: dict[str, set[str]] = {}
    for worker, module in re.findall(r"\[(gw\d)\] .*PASSED \S*?(test_\w+)\.py::", result.stdout):
        workers.setdefault(module, set()).add(worker)
    assert set(workers) == {"test_first", "test_second", "test_third", "test_fourth"}
    assert all(len(ran_on) == 1 for ran_on in workers.values()), workers
    assert workers["test_first"] == workers["test_second"]
