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
    from pathlib import Path

    from harness.api.adapter import FrameworkAdapter
    from harness.data.datasets import DatasetInfo

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
    lazily, inside :meth:`~harness.api.adapter.FrameworkAdapter.setup`.

    :param register: call it once per adapter, ``register(MyAdapter())``. The adapter's
        ``name`` is the ``--framework`` value; two adapters with the same name are an error
        naming both plugins.

    Results are not combined: every implementation is called, and the adapters they
    register are collected.
    """


# -------------------------------------------------------------------------
# Tasks and datasets
# -------------------------------------------------------------------------


@hookspec
def harness_register_tasks(register: Callable[[Path], None]) -> None:
    """Register task files this plugin ships, so ``--task NAME`` finds them.

    Called once per process, with the frameworks' hook. A task file is the same TOML as the
    built-in ones (``tasks/mnist_mlp.toml``); its ``name`` is the name ``--task`` takes and
    ``harness list`` shows. A name that is already taken (a built-in task, or another
    plugin's) is a registration failure of this plugin, listed by ``harness list``.

    :param register: call it once per task file, ``register(Path(__file__).parent / "t.toml")``.

    Results are not combined: every implementation is called, and the files collected.
    """


@hookspec
def harness_register_datasets(register: Callable[[DatasetInfo], None]) -> None:
    """Register datasets this plugin provides, so a task's ``[dataset] name`` can use them.

    Called once per process (in every cell's process too). A dataset is a
    :class:`harness.data.datasets.DatasetInfo`: its name, input shape and number of classes,
    and either its IDX files (``files``, with ``sha256`` sums of their decompressed bytes,
    ``sizes``, and the folders they are looked for in, ``system_dirs``) or a ``generate``
    function that makes ``((x_train, y_train), (x_test, y_test))`` from the task's seed.
    A name already taken is a registration failure of this plugin.

    :param register: call it once per dataset, ``register(DatasetInfo(name="tiny", ...))``.

    Results are not combined: every implementation is called, and the datasets collected.
    """
