"""The conformance kit: the contract every framework plugin must meet, as a pytest suite.

A plugin's test file needs three lines::

    from harness.testing import ConformanceSuite

    class TestMyFramework(ConformanceSuite):
        framework = "myfw"          # the name the plugin registers

``pytest`` then checks registration and metadata, device and memory reporting, every layer kind
against the numpy reference (:mod:`harness.workload.reference`) with the harness's weights, parameter
counts, loading and returning weights, one-step and several-step training agreement with a
numpy reference (:mod:`harness.testing.reference_training`), what ``train_epoch`` and
``evaluate`` return, and a clear ``UnsupportedSpec`` for a layer kind the plugin doesn't know.
A plugin may declare layer kinds it deliberately leaves out; their probes must then raise
``UnsupportedSpec`` (a ``skipped`` cell in a run), never build something else.

Dataset and task plugins have kits of their own, :class:`DatasetConformanceSuite` and
:class:`TaskConformanceSuite` (:mod:`harness.testing.data_suite`).
"""

from typing import Any

__all__ = ["ConformanceSuite", "DatasetConformanceSuite", "TaskConformanceSuite"]


def __getattr__(name: str) -> Any:
    # imported when asked for: harness's pytest plugin (harness.testing.fixtures) loads with
    # every pytest run, which should not pay for the kit's probes and NumPy
    if name == "ConformanceSuite":
        from harness.testing.suite import ConformanceSuite

        return ConformanceSuite
    if name in ("DatasetConformanceSuite", "TaskConformanceSuite"):
        from harness.testing import data_suite

        return getattr(data_suite, name)
    raise AttributeError(f"module 'harness.testing' has no attribute {name!r}")
