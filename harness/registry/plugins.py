"""Finding plugins and collecting the framework adapters they register.

Plugins come from the ``harness`` entry-point group (the built-in ones too), from the module
names in ``HARNESS_PLUGINS``, or from code that registers one in-process (tests do). A plugin
that fails to import or to register is recorded with its reason and left out, so one broken
plugin never breaks the command line; set ``HARNESS_STRICT_PLUGINS=1`` to re-raise instead.
"""

from __future__ import annotations

import dataclasses
import importlib
import os
import sys
from dataclasses import dataclass, field
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any

import pluggy

from harness.api import hookspecs
from harness.api.adapter import FrameworkAdapter
from harness.distributions import name_and_version
from harness.errors import HarnessError, unknown_name_message

ENTRY_POINT_GROUP = "harness"
PLUGINS_ENV = "HARNESS_PLUGINS"
#: a task file is a few KB (the same cap as ``--task PATH``)
MAX_TASK_FILE_BYTES = 1 << 20
STRICT_ENV = "HARNESS_STRICT_PLUGINS"


class PluginError(HarnessError):
    """A plugin conflicts with another (e.g. two adapters claim one name)."""


class FrameworkClash(PluginError):
    """Two plugins register one framework name: which one a run would use is unknowable."""


class UnknownFramework(HarnessError):
    """No registered adapter has the name asked for."""


@dataclass(frozen=True)
class PluginFailure:
    """A plugin that could not be loaded or could not register, and why."""

    plugin: str
    source: str
    reason: str


@dataclass(frozen=True)
class TaskEntry:
    """A task file a plugin registered, and where it came from."""

    path: Path
    plugin: str
    source: str


@dataclass(frozen=True)
class DatasetEntry:
    """A dataset a plugin registered, and where it came from."""

    info: Any  # harness.data.datasets.DatasetInfo (imported lazily: it imports numpy)
    plugin: str
    source: str


@dataclass(frozen=True)
class FrameworkEntry:
    """A registered adapter and where it came from."""

    adapter: FrameworkAdapter
    plugin: str
    source: str


@dataclass
class Registry:
    """The plugin manager of this process and the adapters its plugins registered."""

    strict: bool = False
    manager: pluggy.PluginManager = field(init=False)
    frameworks: dict[str, FrameworkEntry] = field(default_factory=dict)
    #: task files and datasets that plugins registered, by name
    tasks: dict[str, TaskEntry] = field(default_factory=dict)
    datasets: dict[str, DatasetEntry] = field(default_factory=dict)
    _load_failures: list[PluginFailure] = field(default_factory=list)
    _registration_failures: list[PluginFailure] = field(default_factory=list)
    _sources: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.manager = pluggy.PluginManager("harness")
        self.manager.add_hookspecs(hookspecs)

    # -- loading -----------------------------------------------------------

    def load_entry_points(self) -> None:
        found = []
        for ep in entry_points(group=ENTRY_POINT_GROUP):
            dist = ep.dist
            if dist is None:
                source = "entry point"
            else:
                name, version = name_and_version(dist)
                source = "built-in" if name == "harness" else f"{name} {version}"
            found.append((source != "built-in", ep.name, source, ep))
        # the built-in plugins first: a distribution can't take their place by naming its
        # entry point "torch"; it fails, named, instead
        for _, name, source, ep in sorted(found, key=lambda item: item[:2]):
            self._load(name, source, ep.load)

    def load_env_plugins(self) -> None:
        for module_name in filter(None, os.environ.get(PLUGINS_ENV, "").split(",")):
            module_name = module_name.strip()
            self._load(module_name, PLUGINS_ENV, lambda m=module_name: importlib.import_module(m))

    def _load(self, name: str, source: str, load: Any) -> None:
        if self.manager.has_plugin(name):
            if self._sources.get(name) != source:
                taken = PluginError(
                    f"the plugin name {name!r} is taken by {self._sources.get(name)}; "
                    "give the entry point another name"
                )
                self._fail(name, source, taken)
            return
        try:
            plugin = load()
        except (Exception, SystemExit) as exc:  # a plugin's sys.exit() must not end harness
            if self.strict:
                raise
            self._fail(name, source, exc)
            return
        self.add_plugin(plugin, name=name, source=source)

    def _fail(self, name: str, source: str, exc: BaseException) -> None:
        reason = f"{type(exc).__name__}: {exc}".strip()
        import logging  # imported when a plugin fails: `harness list` stays quick
        import traceback

        logging.getLogger(__name__).debug("plugin %s failed:\n%s", name, traceback.format_exc())
        self._load_failures.append(PluginFailure(plugin=name, source=source, reason=reason))

    @property
    def failures(self) -> list[PluginFailure]:
        """Plugins that failed to import or to register, with the reason."""
        return self._load_failures + self._registration_failures

    def contributions(self) -> list[dict[str, Any]]:
        """Each plugin other than the built-in ones, its source, and the frameworks, tasks
        and datasets it registered (what a run's ``environment.json`` records)."""
        kinds: dict[str, dict[str, Any]] = {
            "frameworks": self.frameworks,
            "tasks": self.tasks,
            "datasets": self.datasets,
        }
        found: dict[str, dict[str, Any]] = {}
        for kind, entries in kinds.items():
            for name, entry in sorted(entries.items()):
                if entry.source == "built-in":
                    continue
                plugin = found.setdefault(
                    entry.plugin,
                    {"plugin": entry.plugin, "source": entry.source} | {each: [] for each in kinds},
                )
                plugin[kind].append(name)
        return [found[name] for name in sorted(found)]

    # -- in-process registration -------------------------------------------

    def add_plugin(self, plugin: object, *, name: str, source: str = "in-process") -> None:
        """Register a plugin object or module and collect the adapters it registers."""
        self.manager.register(plugin, name=name)
        self.manager.check_pending()
        self._sources[name] = source
        self.collect()

    def remove_plugin(self, name: str) -> None:
        """Unregister a plugin and forget its adapters."""
        self.manager.unregister(name=name)
        self._sources.pop(name, None)
        self.collect()

    def collect(self) -> None:
        """(Re)build :attr:`frameworks`, :attr:`tasks` and :attr:`datasets` from the hooks."""
        self.frameworks.clear()
        self.tasks.clear()
        self.datasets.clear()
        self._registration_failures.clear()
        self._call_each("harness_register_frameworks", self._register_adapter, reraise=True)
        self._call_each("harness_register_tasks", self._register_task)
        self._call_each("harness_register_datasets", self._register_dataset)

    def _call_each(self, hook_name: str, accept: Any, *, reraise: bool = False) -> None:
        """Call each implementation of a registration hook on its own, so that a plugin that
        raises is contained and everything is attributed to the plugin that registered it."""
        for impl in getattr(self.manager.hook, hook_name).get_hookimpls():  # registration order
            plugin_name = impl.plugin_name
            source = self._sources.get(plugin_name, "in-process")

            def register(item: Any, _plugin: str = plugin_name, _source: str = source) -> None:
                accept(item, _plugin, _source)

            try:
                impl.function(**{arg: register for arg in impl.argnames})
            except FrameworkClash:
                if reraise:
                    raise
                self._registration_failures.append(
                    PluginFailure(plugin_name, source, str(sys.exc_info()[1]))
                )
            except PluginError:
                self._registration_failures.append(
                    PluginFailure(plugin_name, source, str(sys.exc_info()[1]))
                )
            except (Exception, SystemExit) as exc:  # contained, whatever the plugin raised
                if self.strict:
                    raise
                self._registration_failures.append(
                    PluginFailure(plugin_name, source, f"{type(exc).__name__}: {exc}")
                )

    def _register_task(self, path: Any, plugin: str, source: str) -> None:
        import tomllib

        from harness.paths import read_regular
        from harness.registry.task_files import builtin_task_files

        path = Path(path)
        try:
            text = read_regular(path, MAX_TASK_FILE_BYTES).decode("utf-8")
            name = tomllib.loads(text).get("name") or path.stem
        except (OSError, ValueError, HarnessError) as exc:
            raise PluginError(
                f"plugin {plugin!r} registered an unreadable task file {path}: {exc}"
            ) from None
        taken = self.tasks.get(name)
        if name in builtin_task_files() or taken is not None:
            owner = taken.plugin if taken else "harness"
            raise PluginError(f"plugin {plugin!r} registered task {name!r}, which {owner!r} has")
        self.tasks[str(name)] = TaskEntry(path, plugin, source)

    def _register_dataset(self, info: Any, plugin: str, source: str) -> None:
        from harness.data.datasets import DATASETS, DatasetInfo

        if not isinstance(info, DatasetInfo):
            raise PluginError(f"plugin {plugin!r} registered {info!r}, which is not a DatasetInfo")
        taken = self.datasets.get(info.name)
        if info.name in DATASETS or taken is not None:
            owner = taken.plugin if taken else "harness"
            raise PluginError(
                f"plugin {plugin!r} registered dataset {info.name!r}, which {owner!r} has"
            )
        provided = dataclasses.replace(info, provider=f"plugin {plugin!r} ({source})")
        self.datasets[info.name] = DatasetEntry(provided, plugin, source)

    def _register_adapter(self, adapter: Any, plugin: str, source: str) -> None:
        if not isinstance(adapter, FrameworkAdapter):
            raise PluginError(
                f"plugin {plugin!r} registered {adapter!r}, which is not a FrameworkAdapter"
            )
        declared = getattr(adapter, "api_version", 0)
        if not isinstance(declared, int) or isinstance(declared, bool) or declared < 0:
            raise PluginError(
                f"plugin {plugin!r}: adapter {adapter.name!r} declares api_version "
                f"{declared!r}; it must be a whole number (1 for this harness's plugin API)"
            )
        existing = self.frameworks.get(adapter.name)
        if existing is not None:
            raise FrameworkClash(
                f"framework {adapter.name!r} is registered by two plugins: "
                f"{existing.plugin!r} ({existing.source}) and {plugin!r} ({source}); "
                "uninstall one of them"
            )
        self.frameworks[adapter.name] = FrameworkEntry(adapter, plugin, source)

    # -- lookup ------------------------------------------------------------

    def framework(self, name: str) -> FrameworkAdapter:
        """The adapter registered as ``name``; an :class:`UnknownFramework` error otherwise."""
        try:
            return self.frameworks[name].adapter
        except KeyError:
            raise UnknownFramework(
                unknown_name_message("framework", name, self.frameworks)
            ) from None

    def failure(self, name: str) -> PluginFailure | None:
        return next((f for f in self.failures if f.plugin == name), None)


_registry: Registry | None = None


def get_registry() -> Registry:
    """This process's registry, built on first use from entry points and ``HARNESS_PLUGINS``."""
    global _registry
    if _registry is None:
        strict = os.environ.get(STRICT_ENV, "") not in ("", "0", "false")
        registry = Registry(strict=strict)
        registry.load_entry_points()
        registry.load_env_plugins()
        _registry = registry
    return _registry


def reset_registry() -> None:
    """Forget the registry, so the next :func:`get_registry` rediscovers plugins."""
    global _registry
    _registry = None
