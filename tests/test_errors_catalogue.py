"""docs/errors.md's hostile-input catalogue and the tests that hold it stay in step."""

from __future__ import annotations

import ast
import re
from pathlib import Path

ROOT = Path(__file__).parent.parent
CATALOGUE = (ROOT / "docs" / "errors.md").read_text()
SECTION = CATALOGUE[CATALOGUE.index("## Hostile input: the catalogue") :]
ROWS = [
    [cell.strip() for cell in line.strip().strip("|").split(" | ")]
    for line in SECTION.splitlines()
    if re.match(r"\| \d+ \|", line)
]
#: the classes of the hardening issue, each with at least one row
CLASSES = set(range(1, 16))


def defined_tests(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    return {
        node.name
        for node in tree.body
        if isinstance(node, ast.FunctionDef) and node.name.startswith("test_")
    }


def test_every_class_has_a_row():
    assert {int(row[0]) for row in ROWS} == CLASSES


def test_every_row_names_a_test_that_exists():
    for row in ROWS:
        module, _, name = row[-1].partition("::")
        assert (ROOT / module).is_file(), row
        assert name in defined_tests(ROOT / module), f"{row[-1]} does not exist"


def test_every_hostile_test_is_in_the_catalogue():
    named = {row[-1] for row in ROWS}
    for path in sorted((ROOT / "tests").glob("test_hostile_*.py")):
        for name in defined_tests(path):
            assert f"tests/{path.name}::{name}" in named, f"{path.name}::{name} is not catalogued"


def test_every_row_gives_an_exit_code_or_says_none_applies():
    for row in ROWS:
        assert re.fullmatch(r"\d+( or \d+| \(\d+\))?|–", row[3]), row
