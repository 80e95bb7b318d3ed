"""The suite's own helpers: the test plugins on the path, and the real CLI run with them.

The fixtures ``registry`` and ``register_plugin`` come from harness's pytest plugin,
:mod:`harness.testing.fixtures`, as they do for a plugin author's tests."""

from __future__ import annotations

import os
from pathlib import Path

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
