"""harness: compare deep-learning frameworks on the same training work.

The public API for plugin authors lives in :mod:`harness.api.adapter` (what a framework
implements) and :mod:`harness.api.hookspecs` (how it is registered); ``hookimpl`` marks a
plugin's hook implementations.
"""

from typing import Any

from harness import _moved

_moved.install()  # the import paths of harness 0.2's flat layout keep working, with a warning


def __getattr__(name: str) -> Any:
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


__all__ = ["__version__", "hookimpl"]
