"""A causal transformer block hides later steps: a plugin that builds it without the mask
fails the kit's probe, and the built-in PyTorch plugin, which masks, passes it."""

import os

import pytest

from harness.testing import ConformanceSuite
from harness.testing.probes import ENCODER_RTOL, PROBES
from harness.testing.suite import conformance_report

from .conftest import SUPPORT

CAUSAL = next(probe for probe in PROBES if probe.name == "causal_transformer_encoder")


def test_the_kit_catches_a_causal_block_built_without_its_mask(monkeypatch):
    monkeypatch.setenv("HARNESS_PLUGINS", "harness_test_plugins")
    path = os.pathsep.join(filter(None, [str(SUPPORT), os.environ.get("PYTHONPATH")]))
    monkeypatch.setenv("PYTHONPATH", path)
    unmasked = conformance_report("torch_nocausal")
    result = unmasked["probes"][CAUSAL.name]
    assert result["status"] == "ok", result
    assert result["output_difference"] > 100 * ENCODER_RTOL, result
    with pytest.raises(AssertionError, match="output differs from the reference"):
        ConformanceSuite().test_layer_output_matches_the_numpy_reference(unmasked, CAUSAL)
    masked = conformance_report("torch")["probes"][CAUSAL.name]
    assert masked["output_difference"] <= ENCODER_RTOL, masked
