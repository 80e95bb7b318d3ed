"""Precision is a cell dimension: ``--precision`` plans a cell per precision, each row says its
precision and what the framework computed in, an adapter without a precision says so in a
skipped row, and float32 means float32 in every framework (the kit's float32 product)."""

from __future__ import annotations

import json
import os

import pytest

from harness.analysis.compare import cell_label
from harness.analysis.summary import summarise
from harness.registry.catalog import load_task
from harness.runner import plan
from harness.testing.fixtures import read_rows
from harness.workload.precision import PRECISION_ENVIRONMENT
from harness.workload.tasks import REDUCED_PRECISION_TOLERANCES, Agreement, Tolerances

from .conftest import harness_env, run_harness


def run_all_precisions(tmp_path, framework: str) -> list[dict]:
    result = run_harness(
        "run", "--task", "mnist_mlp", "-f", framework, "--precision", "all",
        "--train-subset", "200", "--epochs", "1", "--out", str(tmp_path), "--no-report",
        env=harness_env(HARNESS_PLUGINS="harness_test_plugins"),
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-2000:]
    return read_rows(tmp_path)


def test_every_precision_is_a_row_with_its_manifest(tmp_path):
    rows = run_all_precisions(tmp_path, "centroid_precise")
    assert [row["precision"] for row in rows] == ["float32", "bfloat16", "mixed"]
    assert all(row["status"] == "ok" for row in rows)
    for row in rows:
        manifest = row["precision_manifest"]
        assert manifest["precision"] == row["precision"]
        assert manifest["compute"] == ("float32" if row["precision"] == "float32" else "bfloat16")
        # the switches the harness sets in every cell's process, before any framework loads
        assert manifest["environment"] == PRECISION_ENVIRONMENT
    # float32 keeps the cell ids of runs from before precisions; the others name theirs
    assert [row["cell_id"].split("-")[2:4] for row in rows] == [
        ["eager", "auto"],
        ["eager", "bfloat16"],
        ["eager", "mixed"],
    ]
    run = json.loads(next(tmp_path.glob("*/run.json")).read_text())
    assert run["precisions"] == ["float32", "bfloat16", "mixed"]


def test_an_adapter_without_a_precision_says_so_in_a_skipped_row(tmp_path):
    rows = run_all_precisions(tmp_path, "centroid")  # plugin API 0: float32 only
    by_precision = {row["precision"]: row for row in rows}
    assert by_precision["float32"]["status"] == "ok"
    assert by_precision["float32"]["precision_manifest"] == {"reported": False}
    for precision in ("bfloat16", "mixed"):
        row = by_precision[precision]
        assert (row["status"], row["kind"]) == ("skipped", "unsupported")
        assert row["error"] == f"centroid has no {precision!r} precision (it has: float32)"


def test_each_precision_is_its_own_group_and_cell():
    task = load_task("mnist_mlp")
    cells = plan(task, ["torch", "jax"], "cpu", precisions=["float32", "mixed"])
    assert [(c.framework, c.precision) for c in cells] == [
        ("torch", "float32"),
        ("torch", "mixed"),
        ("jax", "float32"),
        ("jax", "mixed"),
    ]
    rows = [
        {"task": "mnist_mlp", "framework": "torch", "device": "cpu", "status": "ok",
         "precision": precision, "metrics": {"steady_epoch_seconds": seconds}}
        for precision, seconds in (("float32", 2.0), ("mixed", 1.0))
    ]  # fmt: skip
    groups = summarise(rows)
    assert [(g.precision, g.fastest) for g in groups] == [("float32", False), ("mixed", True)]
    assert (
        cell_label("mnist_mlp", "torch", "eager", "mixed", "cpu")
        == "mnist_mlp/torch/eager/mixed/cpu"
    )
    assert (
        cell_label("mnist_mlp", "torch", "eager", "float32", "cpu") == "mnist_mlp/torch/eager/cpu"
    )


def test_reduced_precisions_have_their_own_agreement_tolerances():
    default = Agreement()
    assert default.tolerances("float32") == Tolerances(loss_rtol=1e-4, weights_rtol=1e-3)
    assert default.tolerances("mixed") == REDUCED_PRECISION_TOLERANCES["mixed"]
    stated = Agreement.model_validate({"bfloat16": {"loss_rtol": 0.1, "weights_rtol": 0.2}})
    assert stated.tolerances("bfloat16") == Tolerances(loss_rtol=0.1, weights_rtol=0.2)


@pytest.mark.parametrize("precision", ["bfloat16", "mixed"])
def test_the_agreement_verdict_of_a_precision_is_its_own(precision):
    from harness.checks.agreement import task_digest

    task = load_task("mnist_mlp")
    assert task_digest(task) != task_digest(task, precision=precision)
    assert task_digest(task) == task_digest(task, precision="float32")


def test_the_kit_catches_float32_products_rounded_to_fewer_bits(monkeypatch):
    from harness.testing import ConformanceSuite
    from harness.testing.suite import conformance_report

    from .conftest import SUPPORT

    monkeypatch.setenv("HARNESS_PLUGINS", "harness_test_plugins")
    path = os.pathsep.join(filter(None, [str(SUPPORT), os.environ.get("PYTHONPATH")]))
    monkeypatch.setenv("PYTHONPATH", path)
    rounding = conformance_report("torch_rounding")["float32_products"]
    assert rounding["status"] == "ok" and not rounding["exact"], rounding
    assert rounding["output"] == 1.0  # (1 + 2**-11) rounded to bfloat16's 8 bits is 1
    with pytest.raises(AssertionError, match="rounded to fewer than float32's bits"):
        ConformanceSuite().test_float32_products_keep_every_float32_bit(
            {"float32_products": rounding}
        )
    exact = conformance_report("torch")["float32_products"]
    assert exact["exact"] and exact["output"] == 1 + 2**-10 + 2**-22, exact


def test_a_float32_cell_of_every_framework_computes_in_float32(all_frameworks_run):
    """Each built-in framework's float32 row: its manifest, read back from the framework,
    says float32 with TF32 off; the kit's float32 product (tests/test_conformance.py and the
    Keras plugin's kit) checks the arithmetic itself."""
    rows, _ = all_frameworks_run
    assert {"torch", "jax", "tensorflow", "keras_jax", "keras_torch"} <= set(rows)
    for framework, row in rows.items():
        manifest = row["precision_manifest"]
        assert row["status"] == "ok", (framework, row["error"])
        assert (manifest["precision"], manifest["compute"]) == ("float32", "float32"), framework
        assert manifest["tf32"] is False, (framework, manifest)
    assert rows["jax"]["precision_manifest"]["jax_default_matmul_precision"] == "highest"
    assert rows["keras_jax"]["precision_manifest"]["keras_dtype_policy"] == "float32"
    assert rows["tensorflow"]["precision_manifest"]["tensor_float_32_execution"] is False
    assert rows["torch"]["precision_manifest"]["cudnn_conv_fp32"] == "ieee"
