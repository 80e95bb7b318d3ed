"""The harness conformance kit, run against this plugin: `pytest` in this folder."""

from harness.testing import ConformanceSuite


class TestFrozen(ConformanceSuite):
    framework = "frozen"
    # layer kinds this plugin deliberately refuses (their probes must raise UnsupportedSpec):
    # unsupported_layers = frozenset({"gru"})
