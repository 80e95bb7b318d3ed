"""The conformance kits for dataset and task plugins (harness.testing): the built-in datasets
and a plugin's pass them, and each way a dataset plugin can go wrong fails its own check."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from harness.testing import DatasetConformanceSuite

from .conftest import SUPPORT, harness_env


class TestMnist(DatasetConformanceSuite):
    dataset = "mnist"


class TestFashionMnist(DatasetConformanceSuite):
    dataset = "fashion_mnist"


class TestSineWaves(DatasetConformanceSuite):
    dataset = "sine_waves"


KIT = """
from harness.testing import DatasetConformanceSuite, TaskConformanceSuite


class TestData(DatasetConformanceSuite):
    dataset = "{dataset}"


class TestTask(TaskConformanceSuite):
    task = "{task}"
"""

#: a dataset plugin whose generator goes wrong in the way HARNESS_TEST_FLAW says
FLAWED = """
import os
from pathlib import Path

import numpy as np

import harness
from harness.api import DatasetInfo

FLAW = os.environ.get("HARNESS_TEST_FLAW", "")


def flawed_blobs(seed):
    rng = np.random.default_rng() if FLAW == "unseeded" else np.random.default_rng(seed)
    count = 300 + seed if FLAW == "sizes" else 300

    def draw(n):
        x = rng.normal(size=(n, 4)).astype(np.uint8 if FLAW == "uint8" else np.float32)
        return x, rng.integers(0, 3 if FLAW == "labels" else 2, n)

    return draw(count), draw(100)


@harness.hookimpl
def harness_register_datasets(register):
    register(DatasetInfo(name="flawed_blobs", files={}, input_shape=(4,), num_classes=2,
                         mirrors=(), generate=flawed_blobs))


@harness.hookimpl
def harness_register_tasks(register):
    register(Path(__file__).parent / "flawed_mlp.toml")
"""


def run_kit(folder, dataset, task, **env):
    (folder / "test_kit.py").write_text(KIT.format(dataset=dataset, task=task))
    kit = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-rfE", str(folder)],
        capture_output=True, text=True, cwd=folder, timeout=600,
        env=harness_env(**env),
    )  # fmt: skip
    return kit.returncode, kit.stdout


def test_a_plugins_dataset_and_task_pass_their_kits(tmp_path):
    code, out = run_kit(
        tmp_path, "tiny_blobs", "tiny_blobs_mlp", HARNESS_PLUGINS="harness_tiny_plugin"
    )
    assert code == 0, out[-3000:]
    assert "7 passed" in out


@pytest.fixture
def flawed(tmp_path):
    """A plugin module ``flawed_plugin`` with a task on its dataset; the kit's folder and the
    environment that loads the plugin."""
    plugin = tmp_path / "plugin"
    plugin.mkdir()
    (plugin / "flawed_plugin.py").write_text(FLAWED)
    tiny_task = (SUPPORT / "tiny_blobs_mlp.toml").read_text()
    (plugin / "flawed_mlp.toml").write_text(
        tiny_task.replace('"tiny_blobs_mlp"', '"flawed_mlp"').replace("tiny_blobs", "flawed_blobs")
    )
    tests = tmp_path / "tests"
    tests.mkdir()
    path = os.pathsep.join([str(plugin), harness_env()["PYTHONPATH"]])
    return tests, {"HARNESS_PLUGINS": "flawed_plugin", "PYTHONPATH": path}


@pytest.mark.parametrize(
    ("flaw", "failing"),
    [
        ("", set()),
        ("unseeded", {"TestData::test_what_it_loads_is_identified_by_a_checksum"}),
        ("sizes", {"TestData::test_the_split_is_fixed"}),
    ],
)
def test_each_flaw_of_a_generator_fails_its_own_check(flawed, flaw, failing):
    tests, env = flawed
    code, out = run_kit(tests, "flawed_blobs", "flawed_mlp", HARNESS_TEST_FLAW=flaw, **env)
    failed = {
        line.split("::", 1)[1].split(" ")[0]
        for line in out.splitlines()
        if line.startswith("FAILED ")
    }
    assert failed == failing, out[-3000:]
    assert code == (1 if failing else 0)


@pytest.mark.parametrize(
    ("flaw", "message"),
    [
        (
            "uint8",
            "dataset 'flawed_blobs' from plugin 'flawed_plugin' (HARNESS_PLUGINS): train inputs are uint8",
        ),
        (
            "labels",
            "dataset 'flawed_blobs' from plugin 'flawed_plugin' (HARNESS_PLUGINS): train labels",
        ),
    ],
)
def test_arrays_the_harness_would_refuse_fail_the_kit_with_its_one_line(flawed, flaw, message):
    tests, env = flawed
    code, out = run_kit(tests, "flawed_blobs", "flawed_mlp", HARNESS_TEST_FLAW=flaw, **env)
    assert code == 1
    assert message in out, out[-3000:]
