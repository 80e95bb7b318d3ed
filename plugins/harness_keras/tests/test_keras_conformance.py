"""The harness conformance kit against both Keras backends."""

from harness.testing import ConformanceSuite


class TestKerasOnJax(ConformanceSuite):
    framework = "keras_jax"


class TestKerasOnTorch(ConformanceSuite):
    framework = "keras_torch"
