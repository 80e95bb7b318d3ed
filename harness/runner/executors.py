"""Executors: how the cells of a run are carried out, behind one protocol.

``local`` runs each cell in a child process of its own on this machine, one after another (the
default, and the only one whose measurements are comparable cell to cell on one machine);
``ray`` runs every cell as a Ray task on a cluster (``pip install 'harness[ray]'``);
``inline`` runs each cell in the harness's own process, to debug a plugin under pdb.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol, runtime_checkable

from harness.errors import HarnessError
from harness.runner.inline import run_inline
from harness.runner.process import run_child

if TYPE_CHECKING:
    from harness.registry.plugins import Registry
    from harness.runner import Cell, Observer, RunSettings
    from harness.store.results import RunDir


@runtime_checkable
class Executor(Protocol):
    """Carries out ``cells``, appending each one's row to ``run_dir`` as it finishes."""

    @property
    def name(self) -> str: ...

    def execute(
        self,
        cells: list[Cell],
        settings: RunSettings,
        run_dir: RunDir,
        registry: Registry,
        observer: Observer | None = None,
    ) -> None: ...


@dataclass(frozen=True)
class LocalExecutor:
    """Each cell in a child process of its own, one at a time (:func:`run_child`)."""

    name: str = "local"

    def execute(self, cells, settings, run_dir, registry, observer=None) -> None:
        from harness import runner

        runner.execute(cells, settings, run_dir, registry, observer, launch=run_child)


@dataclass(frozen=True)
class InlineExecutor:
    """Each cell in this process (:func:`run_inline`): for debugging, never for measuring."""

    name: str = "inline"

    def execute(self, cells, settings, run_dir, registry, observer=None) -> None:
        from harness import runner

        runner.execute(cells, settings, run_dir, registry, observer, launch=run_inline)


@dataclass(frozen=True)
class RayExecutor:
    """Every cell a Ray task on the cluster at ``address`` (a local Ray when ``None``)."""

    address: str | None = None
    name: str = "ray"

    def execute(self, cells, settings, run_dir, registry, observer=None) -> None:
        from harness.runner import ray_executor  # imports ray: only when asked for

        ray_executor.execute(cells, settings, run_dir, address=self.address, observer=observer)


#: the executors by the name ``--executor`` takes
EXECUTOR_NAMES = ("local", "ray", "inline")


def get_executor(name: str, *, address: str | None = None) -> Executor:
    """The executor called ``name`` (``--executor``)."""
    if name == "local":
        return LocalExecutor()
    if name == "inline":
        return InlineExecutor()
    if name == "ray":
        return RayExecutor(address)
    raise HarnessError(f"unknown executor {name!r} (known: {', '.join(EXECUTOR_NAMES)})")
