"""``harness plugin new``: the distribution it writes installs, registers and runs the kit."""

from __future__ import annotations

import subprocess
import sys
import tomllib

from .conftest import harness_env, run_harness

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
    assert "1 failed, 92 errors" in kit.stdout  # the whole kit ran; nothing passed by accident


def test_a_filled_in_scaffold_passes_the_conformance_kit(tmp_path):
    folder = new_plugin(tmp_path)
    (folder / "harness_myfw" / "adapter.py").write_text(FILLED_IN)
    env = install(folder, tmp_path)

    kit = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(folder / "tests")],
        capture_output=True, text=True, env=env, cwd=folder, timeout=600,
    )  # fmt: skip
    assert kit.returncode == 0, kit.stdout[-3000:]
    assert "93 passed" in kit.stdout


def test_a_bad_name_or_an_existing_folder_is_one_line(tmp_path):
    bad = run_harness("plugin", "new", "My-FW", "--dir", str(tmp_path))
    assert bad.returncode == 2
    assert "'My-FW' is not a usable plugin name" in bad.stderr
    new_plugin(tmp_path)
    again = run_harness("plugin", "new", "myfw", "--dir", str(tmp_path))
    assert again.returncode == 2 and "already exists" in again.stderr
    taken = run_harness("plugin", "new", "torch", "--dir", str(tmp_path))
    assert taken.returncode == 2 and "'torch' is taken" in taken.stderr
    assert "Traceback" not in bad.stderr + again.stderr + taken.stderr
