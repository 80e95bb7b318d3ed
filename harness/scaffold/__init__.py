"""``harness plugin new``: write a ready-to-install plugin distribution.

Three kinds: a ``framework`` (an adapter), a ``dataset`` (with a task on it) or a ``task``.
The files come from the templates beside this module (Jinja2, rendered with the plugin's
name); the generated distribution registers itself through the ``harness`` entry-point
group and ships a test file that runs the conformance kit of its kind against it.
"""

from __future__ import annotations

import importlib.util
import re
from importlib.resources import files
from pathlib import Path

import jinja2

from harness.errors import HarnessError
from harness.paths import write_new

NAME_PATTERN = r"[a-z][a-z0-9_]{0,39}"

#: the files every plugin has: template -> path ({package} is the import name)
COMMON = {"pyproject.toml.j2": "pyproject.toml", "README.md.j2": "README.md"}

#: what ``--kind`` writes besides them
FILES = {
    "framework": {
        "__init__.py.j2": "{package}/__init__.py",
        "adapter.py.j2": "{package}/adapter.py",
        "test_conformance.py.j2": "tests/test_conformance.py",
    },
    "dataset": {
        "dataset/__init__.py.j2": "{package}/__init__.py",
        "dataset/data.py.j2": "{package}/data.py",
        "dataset/task.toml.j2": "{package}/{name}_mlp.toml",
        "dataset/test_conformance.py.j2": "tests/test_conformance.py",
    },
    "task": {
        "task/__init__.py.j2": "{package}/__init__.py",
        "task/task.toml.j2": "{package}/{name}.toml",
        "task/test_conformance.py.j2": "tests/test_conformance.py",
    },
}
KINDS = tuple(FILES)


def new_plugin(
    name: str,
    parent: Path,
    *,
    kind: str = "framework",
    distribution: str | None = None,
    import_name: str | None = None,
) -> Path:
    """Write the distribution ``harness-<name>`` into ``parent``; returns its folder.

    :param kind: ``framework``, ``dataset`` (a dataset named ``name`` and the task
        ``<name>_mlp`` on it) or ``task`` (a task named ``name``)
    :param distribution: the framework's own distribution, whose version results record and
        which ``harness list`` tells users to install (e.g. ``paddlepaddle``); default ``name``
    :param import_name: the module whose presence means the framework is installed (e.g.
        ``paddle``); default ``name``
    """
    distribution = distribution or name
    import_name = import_name or name
    _check_names(name, kind, distribution, import_name)
    package = f"harness_{name}"
    taken = _names_in_use()
    if name in taken or importlib.util.find_spec(package) is not None:
        raise HarnessError(
            f"{name!r} is taken (a framework, task, dataset or plugin of that name, or the "
            f"package {package}, already exists here); pick another name"
        )
    folder = parent / f"harness-{name.replace('_', '-')}"
    if folder.exists():
        raise HarnessError(f"{folder} already exists; pick another --dir or remove it")
    environment = jinja2.Environment(
        loader=jinja2.FunctionLoader(_template),
        keep_trailing_newline=True,
        undefined=jinja2.StrictUndefined,
    )
    context = {
        "kind": kind,
        "name": name,
        "package": package,
        "distribution": f"harness-{name.replace('_', '-')}",
        "class_name": "".join(part.capitalize() for part in name.split("_")),
        "framework_distribution": distribution,
        "import_name": import_name,
    }
    try:
        for template, target in {**COMMON, **FILES[kind]}.items():
            path = folder / target.format(package=package, name=name)
            path.parent.mkdir(parents=True, exist_ok=True)
            write_new(path, environment.get_template(template).render(context))
    except OSError as exc:
        raise HarnessError(f"cannot write the plugin into {parent}: {exc.strerror}") from None
    return folder


def _check_names(name: str, kind: str, distribution: str, import_name: str) -> None:
    """:raises HarnessError: for a name, kind, distribution or module that can't be used"""
    if not re.fullmatch(NAME_PATTERN, name):
        raise HarnessError(
            f"{name!r} is not a usable plugin name: use lowercase letters, digits and "
            "underscores, starting with a letter (it becomes the --framework, dataset or "
            "--task value)"
        )
    if kind not in FILES:
        raise HarnessError(f"{kind!r} is not a plugin kind: {', '.join(KINDS)}")
    if not re.fullmatch(r"[A-Za-z0-9]([A-Za-z0-9._-]*[A-Za-z0-9])?", distribution):
        raise HarnessError(f"{distribution!r} is not a distribution name (e.g. paddlepaddle)")
    if not all(part.isidentifier() for part in import_name.split(".")):
        raise HarnessError(f"{import_name!r} is not a module name (e.g. paddle)")


def _names_in_use() -> set[str]:
    """Names registered here: a plugin claiming one breaks the registry (or its own task)."""
    from harness.registry.catalog import known_datasets, task_files
    from harness.registry.plugins import get_registry

    registry = get_registry()
    plugins = {plugin for plugin, _ in registry.manager.list_name_plugin()}
    failed = {failure.plugin for failure in registry.failures}
    return set(registry.frameworks) | set(task_files()) | set(known_datasets()) | plugins | failed


def _template(name: str) -> str:
    return files("harness.scaffold").joinpath("template", name).read_text(encoding="utf-8")
