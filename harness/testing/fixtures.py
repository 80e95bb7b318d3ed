"""pytest fixtures and helpers for testing harness plugins and harness itself.

Installed as a pytest plugin (the ``pytest11`` entry point ``harness``), so a plugin's tests
get the fixtures without importing anything::

    def test_my_plugin_registers_its_dataset(register_plugin, registry):
        register_plugin(MyPlugin(), "mine")
        assert "my_dataset" in registry.datasets

    def test_my_framework_trains(tmp_path):
        result = run_cli("run", "--task", "mnist_mlp", "-f", "myfw", "--out", str(tmp_path))
        [row] = read_rows(tmp_path)
        assert result.returncode == 0 and row["status"] == "ok"

(``run_cli`` and ``read_rows`` are imported from this module.)
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from harness.registry import plugins


@pytest.fixture
def registry() -> Iterator[plugins.Registry]:
    """A plugin registry built afresh from the installed entry points; forgotten afterwards."""
    plugins.reset_registry()
    try:
        yield plugins.get_registry()
    finally:
        plugins.reset_registry()


@pytest.fixture
def register_plugin(registry: plugins.Registry) -> Iterator[Callable[[object, str], None]]:
    """Register a plugin in-process: ``register_plugin(MyPlugin(), "name")``; removed at teardown."""
    names: list[str] = []

    def register(plugin: object, name: str) -> None:
        registry.add_plugin(plugin, name=name)
        names.append(name)

    try:
        yield register
    finally:
        for name in names:
            if registry.manager.has_plugin(name):
                registry.remove_plugin(name)


def run_cli(
    *args: str,
    env: dict[str, str] | None = None,
    timeout: float = 900,
    cwd: Path | None = None,
) -> subprocess.CompletedProcess[str]:
    """Run the installed ``harness`` command as a user would (``python -m harness ARGS``)."""
    return subprocess.run(
        [sys.executable, "-m", "harness", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=timeout,
        cwd=cwd,
    )


def read_rows(folder: Path) -> list[dict[str, Any]]:
    """The result rows of ``folder``, a run folder or an ``--out`` folder holding exactly one."""
    folder = Path(folder)
    if not (folder / "results.jsonl").exists():
        runs = [path for path in folder.iterdir() if (path / "run.json").exists()]
        assert len(runs) == 1, f"{folder} holds {len(runs)} run folders, not one"
        folder = runs[0]
    lines = (folder / "results.jsonl").read_text().splitlines()
    return [json.loads(line) for line in lines if line.strip()]
