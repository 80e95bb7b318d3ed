"""Modules that moved when the package was grouped into layers, and the finder that keeps their
old import paths working (with a :class:`DeprecationWarning`), so a plugin written against an
older layout keeps running: ``import harness.tasks`` returns :mod:`harness.workload.tasks` itself."""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.machinery
import sys
import warnings
from types import ModuleType
from typing import Any

#: old dotted name -> where the module lives now
MOVED = {
    "harness.adapter": "harness.api.adapter",
    "harness.hookspecs": "harness.api.hookspecs",
    "harness.keras_support": "harness.api.keras_models",
    "harness.keras_vit": "harness.api.keras_vit",
    "harness.tasks": "harness.workload.tasks",
    "harness.variants": "harness.workload.variants",
    "harness.fairness": "harness.workload.fairness",
    "harness.flops": "harness.workload.flops",
    "harness.reference": "harness.workload.reference",
    "harness.feasibility": "harness.workload.feasibility",
    "harness.plugins": "harness.registry.plugins",
    "harness.task_catalog": "harness.registry.catalog",
    "harness.noise": "harness.measure.noise",
    "harness.energy": "harness.measure.energy",
    "harness.environment": "harness.measure.environment",
    "harness.doctor": "harness.measure.doctor",
    "harness.runner.monitor": "harness.measure.monitor",
    "harness.schema": "harness.store.schema",
    "harness.results": "harness.store.results",
    "harness.locking": "harness.store.locking",
    "harness.agreement": "harness.checks.agreement",
    "harness.calibration": "harness.checks.calibration",
    "harness.runs": "harness.analysis.runs",
    "harness.annotate": "harness.analysis.annotate",
    "harness.summary": "harness.analysis.summary",
    "harness.compare": "harness.analysis.compare",
    "harness.scaling": "harness.analysis.scaling",
    "harness.console": "harness.present.console",
    "harness.columns": "harness.present.columns",
    "harness.report": "harness.present.report",
    "harness.report.charts": "harness.present.report.charts",
}


class _MovedLoader(importlib.abc.Loader):
    def __init__(self, new_name: str) -> None:
        self.new_name = new_name

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> ModuleType:
        warnings.warn(
            f"{spec.name} moved to {self.new_name}; import it from there, or what a plugin "
            "needs from harness.api (the old path will be removed in harness 1.0)",
            DeprecationWarning,
            stacklevel=2,
        )
        return importlib.import_module(self.new_name)

    def exec_module(self, module: ModuleType) -> None:
        pass  # the module ran where it lives now


class MovedModuleFinder(importlib.abc.MetaPathFinder):
    """Answers the old names in :data:`MOVED` with the module that now has them."""

    def find_spec(self, fullname, path=None, target=None):  # type: ignore[no-untyped-def]
        new_name = MOVED.get(fullname)
        if new_name is None:
            return None
        return importlib.machinery.ModuleSpec(fullname, _MovedLoader(new_name))


def moved_attribute(module: str, name: str, new_module: str) -> Any:
    """``name`` from ``new_module``, where it lives now, with a warning for the code that still
    takes it from ``module`` (for a module's ``__getattr__``; imported by name, so that no
    static import runs up a layer)."""
    warnings.warn(
        f"{module}.{name} moved to {new_module}.{name}; import it from there",
        DeprecationWarning,
        stacklevel=3,
    )
    return getattr(importlib.import_module(new_module), name)


def install() -> None:
    if not any(isinstance(finder, MovedModuleFinder) for finder in sys.meta_path):
        sys.meta_path.insert(0, MovedModuleFinder())
