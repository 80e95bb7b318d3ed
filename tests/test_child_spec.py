"""The one typed boundary to a child process: its spec, and the entry it names."""

from __future__ import annotations

import pytest

from harness.runner.child_spec import TRAIN, ChildSpec
from harness.runner.worker import entry_for, run_cell


def test_a_spec_crosses_the_boundary_unchanged():
    spec = ChildSpec(
        framework="torch",
        threads=2,
        entry="harness.checks.agreement:run_agreement",
        data_paths={"train_images": "data/train.gz"},
        options={"steps": 5, "weights_path": "/tmp/w.npz"},
    )
    assert ChildSpec.from_json(spec.to_json()) == spec
    assert spec.with_absolute_paths().data_paths["train_images"].startswith("/")


def test_a_field_the_child_does_not_know_is_an_error_not_ignored():
    with pytest.raises(TypeError, match="action"):
        ChildSpec.from_json('{"framework": "torch", "threads": 1, "action": "agree"}')
    with pytest.raises(ValueError, match="JSON object"):
        ChildSpec.from_json("[1, 2]")


def test_the_worker_runs_the_entry_a_spec_names_and_only_harness_code():
    from harness.checks.agreement import run_agreement

    assert entry_for(ChildSpec(framework="torch", threads=1)) is run_cell
    assert TRAIN == "harness.runner.worker:run_cell"
    named = ChildSpec(framework="torch", threads=1, entry="harness.checks.agreement:run_agreement")
    assert entry_for(named) is run_agreement
    for entry in ("os:system", "harness.checks.agreement:run agreement", "harnessx.evil:main"):
        with pytest.raises(ValueError, match="not an entry of harness"):
            entry_for(ChildSpec(framework="torch", threads=1, entry=entry))
