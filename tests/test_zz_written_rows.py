"""Every row a command wrote during this pytest run validates against the published schema.

Named to run last among the suite's modules: it reads the rows that :func:`conftest.run_harness`
saw commands append (runs, resumed runs, agreement checks; ok, failed and skipped cells alike).
Rows that tests damage on purpose are written by the tests, not by a command, and are not here.
"""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema

from harness.store.schema import SCHEMA_VERSION

from .conftest import WRITTEN_ROWS, harness_env, run_harness

SCHEMA = json.loads((Path(__file__).parents[1] / "docs" / "results.schema.json").read_text())


def test_every_row_a_command_wrote_in_this_pytest_run_matches_the_published_schema(tmp_path):
    if not WRITTEN_ROWS:  # this module run on its own: write some rows first
        run_harness(
            "run", "--task", "mnist_mlp", "-f", "centroid", "-f", "nan", "-f", "missing",
            "--epochs", "1", "--train-subset", "500", "--no-report", "--out", str(tmp_path),
            env=harness_env(HARNESS_PLUGINS="harness_test_plugins"),
        )  # fmt: skip
    validator = jsonschema.Draft202012Validator(SCHEMA)
    problems = []
    for path, line in WRITTEN_ROWS:
        row = json.loads(line)
        errors = sorted(validator.iter_errors(row), key=lambda error: list(error.path))
        problems += [f"{path}: {list(error.path)}: {error.message}" for error in errors[:3]]
        if row.get("schema") != SCHEMA_VERSION:
            problems.append(f"{path}: schema {row.get('schema')!r}, not {SCHEMA_VERSION}")
    assert not problems, "\n".join(problems[:20])
    statuses = {json.loads(line)["status"] for _, line in WRITTEN_ROWS}
    assert "ok" in statuses  # the suite's runs include finished cells, not only failures
