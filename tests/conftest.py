"""The suite's own helpers: the test plugins on the path, and the real CLI run with them.

The fixtures ``registry`` and ``register_plugin`` come from harness's pytest plugin,
:mod:`harness.testing.fixtures`, as they do for a plugin author's tests."""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path

import pytest

from harness.testing.fixtures import run_cli

TESTS = Path(__file__).parent
SUPPORT = TESTS / "support"
SHARED_DATA = TESTS.parent.parent / "shared" / "data"

#: a plugin distribution kept as a fixture: its kit runs where a test installs it, not here
collect_ignore = ["support/frozen_plugin_api0"]


def harness_env(**extra: str) -> dict[str, str]:
    """The environment for a ``harness`` child: test plugins importable, nothing inherited that matters."""
    env = dict(os.environ)
    env.pop("HARNESS_PLUGINS", None)
    env.pop("HARNESS_DATA_DIR", None)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(SUPPORT), env.get("PYTHONPATH")]))
    env["COLUMNS"] = "200"
    env.update(extra)
    return env


def run_harness(
    *args: str, env: dict[str, str] | None = None, timeout: float = 900, cwd: Path | None = None
):
    """Run the installed ``harness`` command as a user would, with the test plugins importable;
    returns the CompletedProcess."""
    return run_cli(*args, env=env or harness_env(), timeout=timeout, cwd=cwd)


# -- runs that tests in several modules read: made once a session --------------------------
# (a module-scoped fixture imported into a second module would run a second time there)


@pytest.fixture(scope="session")
def reported_run(tmp_path_factory):
    """A run with its report: one framework finished, one failed with markup in its message."""
    from tests.test_report import make_reported_run

    return make_reported_run(tmp_path_factory)


@pytest.fixture(scope="session")
def swept_run(tmp_path_factory):
    """One small sweep, run through the CLI: its run folder and what it printed."""
    from tests.test_sweep import make_swept_run

    return make_swept_run(tmp_path_factory)


@pytest.fixture(scope="session")
def profiled_run(tmp_path_factory):
    """A run of PyTorch and JAX in both modes with --profile: its folder and what it printed."""
    from tests.test_profile_run import make_profiled_run

    return make_profiled_run(tmp_path_factory)


@pytest.fixture(scope="session")
def wheels(tmp_path_factory):
    """toyframe 1.0 and 2.0 as wheels in a folder (for --find-links)."""
    from tests.test_versions import make_wheels

    return make_wheels(tmp_path_factory)


@pytest.fixture(scope="session")
def toy_env(tmp_path_factory):
    """The toy and tiny test plugins, and a folder of built environments of the session's own."""
    from tests.test_versions import make_toy_env

    return make_toy_env(tmp_path_factory)


@pytest.fixture(scope="session")
def two_versions(wheels, toy_env, tmp_path_factory):
    """A run of the toy task with --with toyframe==1.0 and ==2.0, two repeats each."""
    from tests.test_versions import make_two_versions

    return make_two_versions(wheels, toy_env, tmp_path_factory)


@pytest.fixture(scope="session")
def planted_history(two_versions, tmp_path_factory):
    """Results folders with the toy's regression and a planted busy repeat."""
    from tests.test_versions import make_planted_history

    return make_planted_history(two_versions, tmp_path_factory)


@pytest.fixture(scope="session")
def all_frameworks_run(tmp_path_factory):
    """``mnist_mlp`` for one epoch on 3,000 samples in every registered framework, on the CPU:
    the run folder's rows by framework, and the completed process."""
    from harness.testing.fixtures import read_rows

    out = tmp_path_factory.mktemp("all-frameworks")
    result = run_harness(
        "run", "--task", "mnist_mlp", "--all-frameworks", "--device", "cpu", "--epochs", "1",
        "--train-subset", "3000", "--out", str(out), "--no-report",
    )  # fmt: skip
    [run_dir] = [path for path in out.iterdir() if path.is_dir()]
    return {row["framework"]: row for row in read_rows(run_dir)}, result


# -- running the suite in parallel (pytest-xdist, ``-n``) ----------------------------------
# pytest-xdist's own ``--dist loadgroup`` reads ``xdist_group`` marks by appending the group to
# each test's node id, which pytest 9.2 no longer allows (pytest-dev/pytest-xdist#1386): the
# tests are then dealt out one by one, and every worker makes every module's and session's
# fixtures. So each worker writes the groups it collected to a file, and the controller's own
# scheduler deals out whole groups.

#: the session-wide runs above: the modules that read one run in one worker, so it is made once
SHARED_RUNS = (
    "reported_run",
    "swept_run",
    "profiled_run",
    "wheels",
    "toy_env",
    "two_versions",
    "planted_history",
    "all_frameworks_run",
)
#: modules that start a Ray cluster: two clusters at once would compete for Ray's fixed ports
RAY_MODULES = ("tests.test_ray", "tests.test_hostile_process")
#: where the controller tells its workers to write the groups they collected
GROUPS_KEY = "harness_test_groups"


def test_groups(items) -> dict[str, str]:
    """Each test's group, by node id: a module's tests stay together (its module and class
    fixtures are made once), and modules that share a session-wide run or start a Ray cluster
    form one group."""
    parent: dict[str, str] = {}

    def root(node: str) -> str:
        while parent.setdefault(node, node) != node:
            node = parent[node]
        return node

    def join(a: str, b: str) -> None:
        parent[root(a)] = root(b)

    for item in items:
        module = item.module.__name__
        for name in SHARED_RUNS:
            if name in item.fixturenames:
                join(module, f"run:{name}")
        if module in RAY_MODULES:
            join(module, "ray")
    return {item.nodeid: root(item.module.__name__) for item in items}


def pytest_collection_modifyitems(config, items):
    """On a pytest-xdist worker, write the groups of the tests it collected for the controller."""
    workerinput = getattr(config, "workerinput", None)
    if workerinput is None or GROUPS_KEY not in workerinput:
        return
    path = Path(workerinput[GROUPS_KEY]) / f"{workerinput['workerid']}.json"
    partial = path.with_suffix(".partial")
    partial.write_text(json.dumps(test_groups(items)))
    partial.replace(path)


def groups_folder(config) -> Path:
    """The controller's folder for its workers' group files, made on first use."""
    if not hasattr(config, "_harness_groups"):
        config._harness_groups = Path(tempfile.mkdtemp(prefix="harness-test-groups-"))
    return config._harness_groups


@pytest.hookimpl(optionalhook=True)
def pytest_configure_node(node):
    node.workerinput[GROUPS_KEY] = str(groups_folder(node.config))


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_make_scheduler(config, log):
    """``--dist loadgroup`` deals out the groups of :func:`test_groups`, largest first."""
    if config.getvalue("dist") != "loadgroup":
        return None
    from xdist.scheduler import LoadScopeScheduling

    folder = groups_folder(config)

    class GroupScheduling(LoadScopeScheduling):
        groups: dict[str, str] | None = None

        def _split_scope(self, nodeid: str) -> str:
            # called once every worker has collected, so their files are written
            if self.groups is None:
                self.groups = {}
                for path in sorted(folder.glob("*.json")):
                    self.groups.update(json.loads(path.read_text()))
            return self.groups.get(nodeid, nodeid.split("::")[0])

    return GroupScheduling(config, log)


def pytest_unconfigure(config):
    if hasattr(config, "_harness_groups"):
        shutil.rmtree(config._harness_groups, ignore_errors=True)
