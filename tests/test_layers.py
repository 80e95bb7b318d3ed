"""The package's layers hold: no import runs up a layer, no circle, and plugins use only the
public face (``harness.api``)."""

from __future__ import annotations

import ast
import subprocess
import sys
import tomllib
import warnings
from pathlib import Path

import pytest

ROOT = Path(__file__).parent.parent
PLUGINS = ROOT / "plugins"
#: what a plugin's code may import from harness (its tests may use the kit, harness.testing)
PUBLIC = {"harness", "harness.api", "harness.api.keras_models"}


def test_the_import_contract_holds_and_has_no_exceptions():
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["importlinter"]
    for contract in config["contracts"]:
        assert "ignore_imports" not in contract, "the contract lists exceptions"
    lint_imports = Path(sys.executable).with_name("lint-imports")  # import-linter's command
    result = subprocess.run(
        [str(lint_imports), "--config", str(ROOT / "pyproject.toml")],
        capture_output=True,
        text=True,
        cwd=ROOT,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Contracts: 1 kept, 0 broken." in result.stdout


def harness_imports(path: Path) -> list[tuple[int, str]]:
    """Each ``harness…`` module that the file imports, with its line (function-level too)."""
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module]
        elif isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        else:
            continue
        found += [(node.lineno, n) for n in names if n == "harness" or n.startswith("harness.")]
    return found


def plugin_modules() -> list[Path]:
    return sorted(p for p in PLUGINS.rglob("*.py") if "tests" not in p.relative_to(PLUGINS).parts)


def test_plugins_import_only_the_public_face():
    assert len(plugin_modules()) >= 12
    outside = [
        f"{path.relative_to(ROOT)}:{line}: {module}"
        for path in plugin_modules()
        for line, module in harness_imports(path)
        if module not in PUBLIC
    ]
    assert outside == []


def test_the_public_face_exports_exactly_what_it_lists():
    import harness.api

    assert harness.api.__all__ == sorted(set(harness.api.__all__))
    for name in harness.api.__all__:
        assert getattr(harness.api, name) is not None
    with pytest.raises(AttributeError):
        harness.api.open_session  # noqa: B018  (the runner's, not a plugin's)


@pytest.mark.parametrize(
    ("old", "new"),
    [
        ("harness.adapter", "harness.api.adapter"),
        ("harness.tasks", "harness.workload.tasks"),
        ("harness.keras_support", "harness.api.keras_models"),
        ("harness.plugins", "harness.registry.plugins"),
        ("harness.report", "harness.present.report"),
    ],
)
def test_a_moved_module_keeps_its_old_path_with_a_deprecation_warning(old, new):
    code = (
        "import importlib, warnings\n"
        "with warnings.catch_warnings(record=True) as caught:\n"
        "    warnings.simplefilter('always')\n"
        f"    old = importlib.import_module({old!r})\n"
        f"assert old is importlib.import_module({new!r})\n"
        "print([str(w.message) for w in caught if w.category is DeprecationWarning])\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert f"{old} moved to {new}" in result.stdout


def test_load_task_from_its_old_module_still_works_with_a_warning():
    from harness.workload import tasks

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        task = tasks.load_task("mnist_mlp")
    assert task.name == "mnist_mlp"
    assert any("harness.registry.catalog" in str(w.message) for w in caught)


#: the longest a function in harness/ or plugins/ may be, counted from its def to its last line
LONGEST_FUNCTION = 60


def test_no_function_is_longer_than_sixty_lines():
    too_long = []
    for path in sorted([*(ROOT / "harness").rglob("*.py"), *plugin_modules()]):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                lines = node.end_lineno - node.lineno + 1
                if lines > LONGEST_FUNCTION:
                    too_long.append(f"{path.relative_to(ROOT)}::{node.name}: {lines} lines")
    assert too_long == []
