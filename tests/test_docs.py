"""The plugin author's guide stays true: its examples, hooks, methods and kit tests are real."""

from __future__ import annotations

import inspect
import re
from pathlib import Path

import pytest

from harness.api import hookspecs
from harness.api.adapter import FrameworkAdapter, Session, Trainer
from harness.testing import ConformanceSuite

ROOT = Path(__file__).parent.parent
GUIDE = (ROOT / "docs" / "writing-a-plugin.md").read_text()
SOURCED_BLOCK = re.compile(r"```python\n# from (\S+)\n(.*?)```", re.DOTALL)


def public_names(cls: type) -> list[str]:
    return [name for name in vars(cls) if not name.startswith("_")]


def headings() -> set[str]:
    return set(re.findall(r"^### `(?:Session\.)?(\w+)\(", GUIDE, flags=re.MULTILINE))


@pytest.mark.parametrize(
    ("path", "code"), SOURCED_BLOCK.findall(GUIDE), ids=lambda value: str(value)[:40]
)
def test_every_example_is_copied_from_the_file_it_names(path, code):
    assert code.strip(), f"empty example from {path}"
    assert code.rstrip("\n") in (ROOT / path).read_text(), f"the example from {path} has drifted"


def test_the_guide_has_examples_from_tested_code():
    assert len(SOURCED_BLOCK.findall(GUIDE)) >= 5


def test_every_hook_is_documented_in_the_guide_and_implemented_in_a_test():
    specs = [name for name, _ in inspect.getmembers(hookspecs) if name.startswith("harness_")]
    assert specs, "no hookspecs found"
    tested = "\n".join(path.read_text() for path in (ROOT / "tests").rglob("*.py"))
    for name in specs:
        assert name in headings(), f"hook {name} has no section in docs/writing-a-plugin.md"
        assert f"def {name}(" in tested, f"no test plugin implements hook {name}"


def test_every_adapter_session_and_trainer_method_is_documented():
    methods = [
        name
        for cls in (FrameworkAdapter, Session, Trainer)
        for name in public_names(cls)
        if callable(getattr(cls, name))
    ]
    assert {"setup", "build", "train_epoch", "weights", "parameter_count"} <= set(methods)
    missing = sorted(set(methods) - headings())
    assert not missing, f"undocumented in docs/writing-a-plugin.md: {missing}"


def test_every_class_attribute_an_adapter_sets_is_documented():
    for attribute in (
        "name",
        "import_name",
        "distribution",
        "install_hint",
        "modes",
        "api_version",
    ):
        assert f"| `{attribute}` |" in GUIDE


def test_every_conformance_test_is_explained_in_the_guide():
    tests = [name for name in dir(ConformanceSuite) if name.startswith("test_")]
    assert len(tests) >= 10
    for name in tests:
        assert f"`{name}`" in GUIDE, f"the guide's kit table lacks {name}"


def test_the_scaffold_stubs_every_method_the_runner_calls():
    template = (ROOT / "harness" / "scaffold" / "template" / "adapter.py.j2").read_text()
    required = [
        name
        for name, member in vars(FrameworkAdapter).items()
        if getattr(member, "__isabstractmethod__", False)
    ] + [name for name in public_names(Trainer) if callable(getattr(Trainer, name))]
    for name in required:
        assert f"def {name}(" in template, f"the scaffold's adapter lacks {name}"


def test_every_documented_hook_signature_matches_its_hookspec():
    """As datasette does: the guide's heading for each hook is its exact signature."""
    documented = dict(re.findall(r"^### `(harness_\w+)\(([^)]*)\)`", GUIDE, flags=re.MULTILINE))
    specs = {
        name: spec for name, spec in inspect.getmembers(hookspecs) if name.startswith("harness_")
    }
    assert documented.keys() == specs.keys()
    for name, spec in specs.items():
        parameters = ", ".join(inspect.signature(spec).parameters)
        assert documented[name] == parameters, f"{name}: the guide says ({documented[name]})"
