"""Every layer kind in every built-in plugin, against the numpy reference.

One small model per probe (see ``harness.conformance``), random weights and biases, random
inputs: the plugin's output must match ``harness.reference`` to float32 precision. This is the
test that catches a wrong gate order, a transposed kernel or channels-first flattening.
"""

from __future__ import annotations

import numpy as np
import pytest

from harness.conformance import (
    PROBES,
    expected_output,
    probe_inputs,
    probe_task,
    probe_weights,
)
from harness.fairness import parameter_count
from harness.plugins import get_registry

FRAMEWORKS = ("torch", "tensorflow", "jax")
_ready: dict[str, object] = {}


def ready_adapter(name: str):
    """The framework's adapter, set up once per test process (thread settings can't change)."""
    adapter = get_registry().framework(name)
    if not adapter.availability().available:
        pytest.fail(f"{name} is not installed")
    if name not in _ready:
        adapter.setup(device="cpu", threads=1, mode="eager")
        _ready[name] = adapter
    return _ready[name]


@pytest.mark.parametrize("probe", PROBES, ids=lambda probe: probe.name)
@pytest.mark.parametrize("framework", FRAMEWORKS)
def test_layer_output_matches_the_numpy_reference(framework, probe):
    adapter = ready_adapter(framework)
    task = probe_task(probe)
    weights = probe_weights(task)
    x = probe_inputs(task)
    trainer = adapter.build(task, weights, x, np.zeros(len(x), np.float32))

    output = trainer.predict(x)

    expected = expected_output(task, weights, x)
    assert output.shape == expected.shape
    np.testing.assert_allclose(output, expected, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("probe", PROBES, ids=lambda probe: probe.name)
@pytest.mark.parametrize("framework", FRAMEWORKS)
def test_weights_round_trip_and_parameters_are_counted(framework, probe):
    adapter = ready_adapter(framework)
    task = probe_task(probe)
    weights = probe_weights(task)
    x = probe_inputs(task)
    trainer = adapter.build(task, weights, x, np.zeros(len(x), np.float32))

    returned = trainer.weights()

    assert trainer.parameter_count() == parameter_count(task)
    assert len(returned) == len(weights)
    for given, got in zip(weights, returned, strict=True):
        assert given.keys() == got.keys()
        for name in given:
            np.testing.assert_array_equal(got[name], given[name])
