"""``harness plugin new``: the distribution it writes installs, registers and runs the kit."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import tomllib

from .conftest import SUPPORT, harness_env, run_harness

FILLED_IN = '''
from harness_torch.adapter import TorchAdapter


class MyfwAdapter(TorchAdapter):
    """A filled-in adapter: here, PyTorch under another name."""

    name = "myfw"
'''


def new_plugin(tmp_path):
    result = run_harness("plugin", "new", "myfw", "--dir", str(tmp_path))
    assert result.returncode == 0, result.stderr
    return tmp_path / "harness-myfw"


def install(folder, tmp_path):
    """Install the distribution as pip would (entry points included) into a folder of its own."""
    site = tmp_path / "site"
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation",
         "--target", str(site), str(folder)],
        check=True, capture_output=True,
    )  # fmt: skip
    return harness_env(PYTHONPATH=str(site))


def test_the_scaffold_is_a_distribution_with_the_entry_point_adapter_readme_and_tests(tmp_path):
    folder = new_plugin(tmp_path)

    project = tomllib.loads((folder / "pyproject.toml").read_text())
    assert project["project"]["name"] == "harness-myfw"
    assert project["project"]["entry-points"]["harness"] == {"myfw": "harness_myfw"}
    adapter = (folder / "harness_myfw" / "adapter.py").read_text()
    assert "class MyfwAdapter(FrameworkAdapter):" in adapter and "def build(" in adapter
    assert "ConformanceSuite" in (folder / "tests" / "test_conformance.py").read_text()
    assert "pytest" in (folder / "README.md").read_text()
    for path in folder.rglob("*.py"):
        compile(path.read_text(), str(path), "exec")


def test_an_installed_scaffold_is_listed_and_the_kit_tells_what_is_missing(tmp_path):
    folder = new_plugin(tmp_path)
    env = install(folder, tmp_path)

    listing = run_harness("list", env=env)
    assert "myfw" in listing.stdout and "harness-myfw 0.1.0" in listing.stdout
    assert "myfw is not installed" in listing.stdout  # import_name still names the placeholder

    kit = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(folder / "tests")],
        capture_output=True, text=True, env=env, cwd=folder, timeout=600,
    )  # fmt: skip
    assert kit.returncode == 1
    assert "myfw is not installed: pip install myfw" in kit.stdout
    # the whole kit ran, and only the check of the declared plugin API passed
    assert "1 failed, 1 passed, 125 errors" in kit.stdout


def test_the_kit_on_an_empty_skeleton_names_the_first_thing_to_fill_in(tmp_path):
    # a framework that is installed (its module json, its distribution harness), and a plugin
    # with nothing implemented yet
    result = run_harness(
        "plugin", "new", "myfw", "--dir", str(tmp_path), "--distribution", "harness",
        "--import-name", "json",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    folder = tmp_path / "harness-myfw"
    adapter = (folder / "harness_myfw" / "adapter.py").read_text()
    assert 'import_name = "json"' in adapter and 'distribution = "harness"' in adapter
    env = install(folder, tmp_path)

    kit = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(folder / "tests")],
        capture_output=True, text=True, env=env, cwd=folder, timeout=600,
    )  # fmt: skip
    assert kit.returncode == 1
    first_thing = "NotImplementedError: fill in setup(): import json and apply the settings"
    # every test that needs the framework fails with it (the checks ran once, not per test)
    assert kit.stdout.count(first_thing) >= 70, kit.stdout[-3000:]


def test_a_plugin_written_against_plugin_api_0_passes_the_kit_unchanged_with_a_warning(tmp_path):
    """tests/support/frozen_plugin_api0 is harness 0.1's scaffold, filled in per that version's
    guide (setup() returns RuntimeInfo, the adapter builds), and kept as it was."""
    frozen = SUPPORT / "frozen_plugin_api0"
    env = install(frozen, tmp_path)
    # its tests run from a checkout of its own, so that this repository's pytest settings
    # (its parallel workers among them) are not theirs
    checkout = tmp_path / "checkout"
    shutil.copytree(frozen, checkout, ignore=shutil.ignore_patterns("build", "*.egg-info"))

    kit = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(checkout / "tests")],
        capture_output=True, text=True, env=env, cwd=tmp_path, timeout=600,
    )  # fmt: skip
    assert kit.returncode == 0, kit.stdout[-3000:]
    # two warnings: the API 0 adapter, and its import of harness.adapter (now harness.api.adapter);
    # the probes of what came with APIs 1, 2 and 3 that it refuses are skipped, naming why
    assert re.search(r"\b75 passed, 52 skipped, 2 warnings\b", kit.stdout), kit.stdout[-2000:]
    assert "PluginAPIDeprecationWarning" in kit.stdout
    assert "harness.adapter moved to harness.api.adapter" in kit.stdout
    assert "speaks plugin API 0" in kit.stdout and "api_version = 1" in kit.stdout

    # and its cells run, and their rows say nothing of the API they came through
    run = run_harness(
        "run", "--task", "mnist_mlp", "--framework", "frozen", "--device", "cpu", "--epochs", "1",
        "--train-subset", "2000", "--no-report", "--out", str(tmp_path / "results"), env=env,
    )  # fmt: skip
    assert run.returncode == 0, run.stdout + run.stderr
    results = next((tmp_path / "results").rglob("results.jsonl")).read_text().splitlines()
    assert [json.loads(line)["status"] for line in results] == ["ok"]


def test_a_filled_in_scaffold_passes_the_conformance_kit(tmp_path):
    folder = new_plugin(tmp_path)
    (folder / "harness_myfw" / "adapter.py").write_text(FILLED_IN)
    env = install(folder, tmp_path)

    kit = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(folder / "tests")],
        capture_output=True, text=True, env=env, cwd=folder, timeout=600,
    )  # fmt: skip
    assert kit.returncode == 0, kit.stdout[-3000:]
    # the filled-in adapter is the built-in PyTorch one, plugin API 4: every check runs
    assert "127 passed" in kit.stdout and "skipped" not in kit.stdout
    assert "warning" not in kit.stdout


FILLED_IN_DATA = """
import numpy as np


def generate(seed):
    rng = np.random.default_rng(seed)
    centres = rng.normal(0, 2, (2, 8)).astype(np.float32)

    def draw(count):
        labels = rng.integers(0, 2, count)
        points = centres[labels] + rng.normal(0, 0.5, (count, 8)).astype(np.float32)
        return points.astype(np.float32), labels

    return draw(1000), draw(200)
"""


def run_kit(folder, env):
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(folder / "tests")],
        capture_output=True, text=True, env=env, cwd=folder, timeout=600,
    )  # fmt: skip


def test_a_dataset_plugin_from_the_scaffold_is_listed_checked_and_trains(tmp_path):
    made = run_harness("plugin", "new", "mydata", "--kind", "dataset", "--dir", str(tmp_path))
    assert made.returncode == 0, made.stderr
    folder = tmp_path / "harness-mydata"
    env = install(folder, tmp_path)
    listed = json.loads(run_harness("list", "--json", env=env).stdout)
    assert {"mydata"} == {d["name"] for d in listed["datasets"] if d["provider"] != "harness"}
    assert "mydata_mlp" in {task["name"] for task in listed["tasks"]}

    skeleton = run_kit(folder, env)
    assert skeleton.returncode == 1
    assert "fill in generate(): return the train and test arrays" in skeleton.stdout

    (folder / "harness_mydata" / "data.py").write_text(FILLED_IN_DATA)
    env = install(folder, tmp_path / "filled_in")  # pip --target doesn't replace a package
    kit = run_kit(folder, env)
    assert kit.returncode == 0, kit.stdout[-3000:]
    assert "7 passed" in kit.stdout
    ran = run_harness(
        "run", "--task", "mydata_mlp", "-f", "torch", "--no-report",
        "--out", str(tmp_path / "results"), env=env,
    )  # fmt: skip
    assert ran.returncode == 0, ran.stdout + ran.stderr
    [row] = [json.loads(line) for line in next(tmp_path.rglob("results.jsonl")).open()]
    assert (
        row["status"] == "ok"
        and row["dataset"]["provider"] == "plugin 'mydata' (harness-mydata 0.1.0)"
    )


def test_a_task_plugin_from_the_scaffold_passes_its_kit_as_written(tmp_path):
    made = run_harness("plugin", "new", "mytask", "--kind", "task", "--dir", str(tmp_path))
    assert made.returncode == 0, made.stderr
    folder = tmp_path / "harness-mytask"
    env = install(folder, tmp_path)
    kit = run_kit(folder, env)
    assert kit.returncode == 0, kit.stdout[-3000:]
    assert "2 passed" in kit.stdout
    shown = run_harness("list", env=env).stdout
    assert "mytask" in shown


def test_a_bad_name_or_an_existing_folder_is_one_line(tmp_path):
    bad = run_harness("plugin", "new", "My-FW", "--dir", str(tmp_path))
    assert bad.returncode == 2
    assert "'My-FW' is not a usable plugin name" in bad.stderr
    new_plugin(tmp_path)
    again = run_harness("plugin", "new", "myfw", "--dir", str(tmp_path))
    assert again.returncode == 2 and "already exists" in again.stderr
    taken = run_harness("plugin", "new", "torch", "--dir", str(tmp_path))
    assert taken.returncode == 2 and "'torch' is taken" in taken.stderr
    task_taken = run_harness("plugin", "new", "mnist_mlp", "--kind", "task", "--dir", str(tmp_path))
    assert task_taken.returncode == 2 and "'mnist_mlp' is taken" in task_taken.stderr
    wrong = run_harness("plugin", "new", "x", "--kind", "task", "--distribution", "y")
    assert wrong.returncode == 2 and "are for --kind framework" in wrong.stderr
    assert "Traceback" not in bad.stderr + again.stderr + taken.stderr
