"""The built-in plugins against the conformance kit, as any third-party plugin is tested.

Each class runs the whole contract (``harness.testing``) for one framework in a child process:
every layer kind against the numpy reference (a wrong gate order, a transposed kernel or
channels-first flattening fails here), parameter counts, weights in and out, training steps
against a numpy reference, and ``UnsupportedSpec`` for a layer kind the plugin doesn't know.
"""

from harness.testing import ConformanceSuite


class TestTorch(ConformanceSuite):
    framework = "torch"


class TestTensorFlow(ConformanceSuite):
    framework = "tensorflow"


class TestJax(ConformanceSuite):
    framework = "jax"
