"""``mnist_vit`` in the built-in plugins: it learns in every framework and mode, and a plugin
that can't express one of its layers records a skipped cell naming that layer."""

import pytest

from harness.testing.fixtures import read_rows

from .conftest import run_harness
from .test_tasks import TASKS


@pytest.mark.parametrize(
    "mode",
    # every framework trains a minute or more: -m slow (the conformance kit checks the
    # encoder's layers against the numpy reference in every framework by default)
    [
        pytest.param("eager", marks=pytest.mark.slow),
        pytest.param("compiled", marks=pytest.mark.slow),
    ],
)
def test_the_vision_transformer_learns_in_every_framework_and_mode(tmp_path, mode):
    result = run_harness(
        "run", "--task", "mnist_vit", "-f", "torch", "-f", "tensorflow", "-f", "jax",
        "--mode", mode, "--epochs", "1", "--train-subset", "2000", "--threads", "1",
        "--out", str(tmp_path), "--no-report",
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    rows = read_rows(tmp_path)
    assert {(row["framework"], row["mode"]) for row in rows} == {
        (framework, mode) for framework in ("torch", "tensorflow", "jax")
    }
    for row in rows:
        assert row["status"] == "ok", row["error"]
        assert row["metrics"]["parameters"] == 71_946
        # 16 steps of 128 images: well above chance (0.1), far from the target
        assert row["metrics"]["test_accuracy"] > 0.3, (row["framework"], row["mode"])


def test_a_plugin_that_cannot_express_the_encoder_records_a_skipped_cell_naming_it(tmp_path):
    # 4 heads of 8 values in a width of 64: PyTorch's encoder layer splits the width among heads
    text = (TASKS / "mnist_vit.toml").read_text().replace("key_dim = 16", "key_dim = 8")
    task = tmp_path / "narrow_heads.toml"
    task.write_text(text)
    out = tmp_path / "out"
    result = run_harness(
        "run", "--task", str(task), "-f", "torch", "--epochs", "1", "--train-subset", "500",
        "--out", str(out), "--no-report",
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    [row] = read_rows(out)
    assert (row["status"], row["kind"]) == ("skipped", "unsupported")
    assert "transformer_encoder" in row["error"] and "heads x key_dim" in row["error"]
