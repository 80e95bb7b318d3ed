"""The built-in plugins against the conformance kit, as any third-party plugin is tested.

Each class runs the whole contract (``harness.testing``) for one framework in a child process:
every layer kind against the numpy reference (a wrong gate order, a transposed kernel or
channels-first flattening fails here), parameter counts, weights in and out, training steps
against a numpy reference, and ``UnsupportedSpec`` for a layer kind the plugin doesn't know.
"""

import pytest

from harness.testing import ConformanceSuite
from harness.testing.probes import PROBES
from harness.testing.suite import conformance_report

from .conftest import SUPPORT


class TestTorch(ConformanceSuite):
    framework = "torch"


class TestTensorFlow(ConformanceSuite):
    framework = "tensorflow"


class TestJax(ConformanceSuite):
    framework = "jax"


@pytest.mark.parametrize(
    ("framework", "wrong"),
    [("tanh_gelu", "GELU's tanh approximation"), ("post_norm", "post-norm encoder blocks")],
)
def test_the_kit_catches_a_plugin_whose_encoder_computes_something_else(
    monkeypatch, framework, wrong
):
    monkeypatch.setenv("HARNESS_PLUGINS", "harness_test_plugins")
    monkeypatch.setenv("PYTHONPATH", str(SUPPORT))
    report = conformance_report(framework)
    probes = {probe.name: probe for probe in PROBES}
    suite = TestTorch()
    for name in ("transformer_encoder", "vision_transformer"):
        result = report["probes"][name]
        assert result["status"] == "ok", result
        assert result["output_difference"] > probes[name].rtol, (wrong, result)
        with pytest.raises(AssertionError, match=f"{name}: output differs from the reference"):
            suite.test_layer_output_matches_the_numpy_reference(report, probes[name])
    # every other layer is the built-in plugin's, and passes: the failure names the wrong layer
    for name in ("layer_norm", "patches", "dense_sequence", "position_embedding", "mean_pool"):
        suite.test_layer_output_matches_the_numpy_reference(report, probes[name])
