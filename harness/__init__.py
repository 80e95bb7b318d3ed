"""harness: compare deep-learning frameworks on the same training work.

The public API for plugin authors lives in :mod:`harness.api.adapter` (what a framework
implements) and :mod:`harness.api.hookspecs` (how it is registered); ``hookimpl`` marks a
plugin's hook implementations.
"""

import os
import sys
from typing import Any

# `python -m harness` puts the current folder first on the path, where a planted numpy.py or
# json.py would be imported in place of the real one; the runner imports nothing from there
if sys.argv[:1] == ["-m"] and sys.path and os.path.abspath(sys.path[0] or ".") == os.getcwd():
    del sys.path[0]

from harness import _moved  # noqa: E402  (after the path is made safe)

_moved.install()  # the import paths of harness 0.2's flat layout keep working, with a warning


def __getattr__(name: str) -> Any:
    # harness.run(...): a benchmark from Python (harness.benchmark), imported when first used
    if name in ("run", "RunResult"):
        import importlib  # by name: the layers below import this package for its version

        return getattr(importlib.import_module("harness.benchmark"), name)
    # pluggy is imported when a plugin first asks for ``hookimpl``: `harness --help` needs none
    if name == "hookimpl":
        import pluggy

        globals()["hookimpl"] = marker = pluggy.HookimplMarker("harness")
        return marker
    # the version is looked up when first asked for: importlib.metadata costs every command
    # (even `harness --help`) tens of milliseconds
    if name == "__version__":
        from importlib.metadata import PackageNotFoundError, version

        try:
            return version("harness")
        except PackageNotFoundError:  # a source tree that was never installed
            return "0.0.0+unknown"
    raise AttributeError(f"module 'harness' has no attribute {name!r}")


__all__ = ["RunResult", "__version__", "hookimpl", "run"]
