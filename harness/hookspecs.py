"""Every hook a harness plugin can implement, in one place.

Plugins are modules (or objects) with functions marked ``@harness.hookimpl`` and named like
the specs below. They are found through the ``harness`` entry-point group, or the
comma-separated module names in the ``HARNESS_PLUGINS`` environment variable. Hooks are
always called with keyword arguments, so an implementation may accept fewer arguments than
the spec names, and new arguments can be added without breaking existing plugins.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

import pluggy

if TYPE_CHECKING:
    from harness.adapter import FrameworkAdapter

hookspec = pluggy.HookspecMarker("harness")


# -------------------------------------------------------------------------
# Frameworks
# -------------------------------------------------------------------------


@hookspec
def harness_register_frameworks(register: Callable[[FrameworkAdapter], None]) -> None:
    """Register the framework adapters this plugin provides.

    Called once per process, when the plugin registry is first built: in the command-line
    process for ``harness list`` and to plan a run, and again in every cell's child process.
    It must be cheap and must not import the framework itself; adapters import theirs
    lazily, inside :meth:`~harness.adapter.FrameworkAdapter.setup`.

    :param register: call it once per adapter, ``register(MyAdapter())``. The adapter's
        ``name`` is the ``--framework`` value; two adapters with the same name are an error
        naming both plugins.

    Results are not combined: every implementation is called, and the adapters they
    register are collected.
    """
