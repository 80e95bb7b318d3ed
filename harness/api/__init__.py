"""The public face of harness for plugins: everything a framework, dataset or task plugin may
import, and nothing else. What is listed in ``__all__`` keeps its name and meaning within a
plugin API version (:data:`API_VERSION`); anything imported from elsewhere in ``harness`` may
move without notice.

    from harness.api import FrameworkAdapter, RuntimeInfo, Session, UnsupportedSpec
    from harness.api import Dense, Conv2D, Task          # the layer and task specs a session builds
    from harness.api import DatasetInfo                  # what harness_register_datasets registers

Hook implementations are marked with ``harness.hookimpl``; the hooks themselves are documented
in :mod:`harness.api.hookspecs`. The Keras model builder that the TensorFlow and Keras plugins
share is :mod:`harness.api.keras_models` (it imports Keras only when called). The conformance
kit for a plugin's tests is :mod:`harness.testing`.

Names are imported when first used, so that a plugin's adapter module stays cheap to import
(``harness list`` imports every adapter).
"""

from __future__ import annotations

import importlib
from typing import Any

#: public name -> the module that defines it
_SOURCES = {
    # what a framework plugin implements (harness.api.adapter)
    **dict.fromkeys(
        (
            "API_VERSION",
            "DEVICE_KINDS",
            "MODES",
            "PRECISIONS",
            "Availability",
            "Evaluation",
            "FrameworkAdapter",
            "PluginAPIDeprecationWarning",
            "RuntimeInfo",
            "Session",
            "StepClock",
            "Trainer",
            "UnsupportedSpec",
        ),
        "harness.api.adapter",
    ),
    # the task and its layer specs, as a session's build() receives them (harness.workload.tasks)
    **dict.fromkeys(
        (
            "GRU",
            "LAYER_KINDS",
            "LSTM",
            "Adam",
            "BatchNorm",
            "Conv2D",
            "DatasetSpec",
            "Dense",
            "Dropout",
            "Embedding",
            "Flatten",
            "GlobalAvgPool2D",
            "Layer",
            "LayerNorm",
            "Loss",
            "MaxPool2D",
            "MeanPool",
            "ModelSpec",
            "Patches",
            "PositionEmbedding",
            "ResidualBlock",
            "SimpleRNN",
            "Target",
            "Task",
            "Training",
            "WarmupCosine",
            "TransformerEncoder",
        ),
        "harness.workload.tasks",
    ),
    # the profilers a session's profiler() returns, for `harness run --profile`
    **dict.fromkeys(
        ("JaxProfiler", "StepProfiler", "TensorFlowProfiler", "TorchProfiler"),
        "harness.api.profiling",
    ),
    # what a dataset plugin registers (harness.data.datasets)
    "DatasetInfo": "harness.data.datasets",
    "ROLES": "harness.data.datasets",
    # a plugin's framework version, read from its distribution's metadata
    "installed_version": "harness.distributions",
    "name_and_version": "harness.distributions",
}

__all__ = sorted(_SOURCES)


def __getattr__(name: str) -> Any:
    source = _SOURCES.get(name)
    if source is None:
        raise AttributeError(f"module 'harness.api' has no attribute {name!r}")
    value = getattr(importlib.import_module(source), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *__all__])
