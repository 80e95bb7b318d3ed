"""Shared fixtures: a fresh plugin registry, in-process plugins, and running the real CLI."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from harness.registry import plugins

TESTS = Path(__file__).parent
SUPPORT = TESTS / "support"
SHARED_DATA = TESTS.parent.parent / "shared" / "data"

#: a plugin distribution kept as a fixture: its kit runs where a test installs it, not here
collect_ignore = ["support/frozen_plugin_api0"]


@pytest.fixture
def registry() -> Iterator[plugins.Registry]:
    """A registry built afresh from the installed entry points; forgotten afterwards."""
    plugins.reset_registry()
    try:
        yield plugins.get_registry()
    finally:
        plugins.reset_registry()


@pytest.fixture
def register_plugin(registry: plugins.Registry):
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
    """Run the installed ``harness`` command as a user would; returns the CompletedProcess.
    (Every row a command writes is checked against the schema as it is written.)"""
    return subprocess.run(
        [sys.executable, "-m", "harness", *args],
        capture_output=True,
        text=True,
        env=env or harness_env(),
        timeout=timeout,
        cwd=cwd,
    )
