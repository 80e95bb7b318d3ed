"""The task file format is published from the task model: docs/task.schema.json for editors,
docs/task-reference.md for readers; both stay what the model says."""

from __future__ import annotations

import json
import tomllib
from pathlib import Path

import jsonschema
import pytest

from harness.registry.task_files import builtin_task_files
from harness.workload.task_schema import json_schema, reference_markdown

DOCS = Path(__file__).parent.parent / "docs"


def test_the_published_schema_and_reference_are_generated_from_the_model():
    regenerate = "regenerate: python -m harness.workload.task_schema json|markdown > docs/…"
    assert json.loads((DOCS / "task.schema.json").read_text()) == json_schema(), regenerate
    assert (DOCS / "task-reference.md").read_text() == reference_markdown(), regenerate


@pytest.mark.parametrize("name", sorted(builtin_task_files()))
def test_every_built_in_task_file_is_valid_under_the_schema(name):
    data = tomllib.loads(builtin_task_files()[name].read_text())
    jsonschema.Draft202012Validator(json_schema()).validate(data)


@pytest.mark.parametrize(
    ("change", "where"),
    [
        (lambda t: t["training"].update(batchsize=32), "batchsize"),
        (lambda t: t["model"]["layers"][1].update(kind="dense_v2"), "dense_v2"),
        (lambda t: t.pop("seed"), "seed"),
    ],
)
def test_the_schema_catches_what_validation_catches(change, where):
    data = tomllib.loads(builtin_task_files()["mnist_mlp"].read_text())
    change(data)
    errors = list(jsonschema.Draft202012Validator(json_schema()).iter_errors(data))
    assert errors and any(where in str(error.message) for error in errors)


def test_the_reference_names_every_section_and_key_a_task_file_may_hold():
    reference = reference_markdown()
    for key in ("`learning_rate`", "`divide_by`", "`train_samples`", "`by_dataset`", "`heads`"):
        assert key in reference
    assert "| `seed` | integer ≥ 0 < 4294967296 | *(must be given)* |" in reference
