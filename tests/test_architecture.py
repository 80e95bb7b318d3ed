"""docs/architecture.md names only modules, files and functions that exist."""

from __future__ import annotations

import ast
import re
from pathlib import Path

ROOT = Path(__file__).parent.parent
DOC = (ROOT / "docs" / "architecture.md").read_text()
PATHS = sorted(set(re.findall(r"\b((?:harness|plugins|docs)/[\w/.]*\w)(?:::(\w+))?", DOC)))


def test_the_page_names_many_paths():
    assert len(PATHS) > 30


def test_every_path_and_function_it_names_exists():
    for path, name in PATHS:
        target = ROOT / path
        assert target.exists(), f"{path} does not exist"
        if name:
            tree = ast.parse(target.read_text())
            defined = {
                node.name
                for node in ast.walk(tree)
                if isinstance(node, ast.FunctionDef | ast.ClassDef)
            }
            assert name in defined, f"{path}::{name} does not exist"


def test_every_module_of_the_package_is_on_the_page():
    for module in sorted((ROOT / "harness").rglob("*.py")):
        relative = module.relative_to(ROOT).as_posix()
        if module.name in ("__main__.py",) or "/testing/" in relative or "/scaffold/" in relative:
            continue
        if module.name == "__init__.py" and module.parent.name in ("harness", "commands", "data"):
            continue
        folder = module.parent.relative_to(ROOT).as_posix() + "/"
        assert (
            relative in DOC
            or (module.name == "__init__.py" and folder in DOC)
            or (folder.startswith("harness/commands/") and "harness/commands/" in DOC)
        ), f"{relative} is not on docs/architecture.md"
