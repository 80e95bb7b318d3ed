"""harness: compare deep-learning frameworks on the same training work.

The public API for plugin authors lives in :mod:`harness.adapter` (what a framework
implements) and :mod:`harness.hookspecs` (how it is registered); ``hookimpl`` marks a
plugin's hook implementations.
"""

from importlib.metadata import PackageNotFoundError, version

import pluggy

try:
    __version__ = version("harness")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0.0.0+unknown"

hookimpl = pluggy.HookimplMarker("harness")

__all__ = ["__version__", "hookimpl"]
