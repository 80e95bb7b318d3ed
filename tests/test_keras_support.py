"""harness.api.keras_models, the Keras model and Adam that the tensorflow and Keras plugins share.

Keras fixes its backend at its first import, so every check that needs Keras runs in a child
process of its own, one per backend.
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
import textwrap

import pytest

#: the backend each Keras-using plugin runs on, and the module it needs
BACKENDS = {"tensorflow": "tensorflow", "jax": "jax", "torch": "torch"}


def run_python(code: str, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        capture_output=True,
        text=True,
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", **env},
        timeout=600,
    )


def test_importing_it_imports_no_framework_and_works_without_one():
    # every framework import fails, as where none is installed
    child = run_python(
        """
        import sys

        class NoFrameworks:
            def find_spec(self, name, path=None, target=None):
                if name.split(".")[0] in ("keras", "tensorflow", "jax", "torch"):
                    raise ImportError(f"{name} is not installed")

        sys.meta_path.insert(0, NoFrameworks())
        import harness.api.keras_models
        print(sorted(harness.api.keras_models.PARAMETER_NAMES))
        """
    )
    assert child.returncode == 0, child.stderr
    assert "dense" in child.stdout


CHECKS = """
    import json
    import numpy as np
    import keras
    from harness.api.adapter import UnsupportedSpec
    from harness.workload.fairness import initial_weights
    from harness.api.keras_models import build_model, compile_model, layer_weights, paper_adam
    from harness.registry.catalog import load_task

    task = load_task("mnist_mlp")
    weights = initial_weights(task)
    report = {"backend": keras.backend.backend()}

    model = build_model(task.model, weights)
    report["weights_back"] = max(
        float(np.abs(given[name] - got[name]).max())
        for given, got in zip(weights, layer_weights(task.model, model))
        for name in given
    )

    # an epoch of three batches, the last one smaller: the reported loss is the plain mean
    compile_model(model, task.training)
    rng = np.random.default_rng(0)
    x = rng.random((2 * 32 + 5, 28, 28), dtype=np.float32)
    y = rng.integers(0, 10, len(x))
    starts = range(0, len(x), 32)
    probe = build_model(task.model, weights)
    compile_model(probe, task.training)
    batch_losses = [
        probe.fit(x[i : i + 32], y[i : i + 32], batch_size=32, verbose=0).history["loss"][-1]
        for i in starts
    ]
    history = model.fit(x, y, batch_size=32, epochs=1, shuffle=False, verbose=0).history
    report["history_keys"] = sorted(history)
    report["epoch_loss"] = history["loss"][-1]
    report["batch_losses"] = batch_losses
    report["batch_sizes"] = [len(x[i : i + 32]) for i in starts]

    # one step of Adam on one variable, against the paper's Algorithm 1 in float64
    hyper = task.training.optimizer.model_copy(update={"learning_rate": 0.1})
    report["hyper"] = [hyper.learning_rate, hyper.beta_1, hyper.beta_2, hyper.epsilon]
    adam = paper_adam(hyper)
    variable = keras.Variable(np.array([1.0, -2.0, 3e-4], dtype=np.float32))
    gradient = np.array([0.5, 1e-6, -3.0], dtype=np.float32)
    for _ in range(2):
        adam.apply([keras.ops.convert_to_tensor(gradient)], [variable])
    report["adam"] = keras.ops.convert_to_numpy(variable).tolist()

    try:
        build_model(task.model.model_copy(update={"layers": [task.model.layers[0].model_copy(update={"kind": "nope"})]}), [{}])
    except UnsupportedSpec as exc:
        report["unknown_layer"] = str(exc)
    print("REPORT " + json.dumps(report))
"""


def paper_adam_reference(param, gradient, steps, lr, beta_1, beta_2, epsilon):
    import numpy as np

    param, gradient = param.astype(np.float64), gradient.astype(np.float64)
    m = v = np.zeros_like(param)
    for t in range(1, steps + 1):
        m = beta_1 * m + (1 - beta_1) * gradient
        v = beta_2 * v + (1 - beta_2) * gradient**2
        m_hat, v_hat = m / (1 - beta_1**t), v / (1 - beta_2**t)
        param = param - lr * m_hat / (np.sqrt(v_hat) + epsilon)
    return param


@pytest.mark.parametrize("backend", sorted(BACKENDS))
def test_the_shared_model_and_adam_behave_as_the_harness_defines_them(backend):
    for module in ("keras", BACKENDS[backend]):
        if importlib.util.find_spec(module) is None:
            pytest.skip(f"{module} is not installed")
    import numpy as np

    child = run_python(CHECKS, KERAS_BACKEND=backend)
    assert child.returncode == 0, child.stderr[-3000:]
    [line] = [line for line in child.stdout.splitlines() if line.startswith("REPORT ")]
    report = json.loads(line.removeprefix("REPORT "))
    assert report["backend"] == backend

    # the harness's weights go in and come back unchanged
    assert report["weights_back"] == 0.0

    # every batch counts once in the epoch's loss, the smaller last one too (Keras's own
    # tracker would weigh each by its size), and it is the only figure fit reports
    assert report["history_keys"] == ["loss"]
    mean = np.mean(report["batch_losses"])
    weighted = np.average(report["batch_losses"], weights=report["batch_sizes"])
    assert report["epoch_loss"] == pytest.approx(mean, rel=1e-6)
    assert abs(mean - weighted) > 1e-4 * mean  # the test can tell the two apart

    # epsilon outside the bias-corrected sqrt(v_hat); the tiny gradient is where Keras's own
    # Adam (epsilon inside) would differ, by about 0.13. The tolerance is float32's: 1 - beta_2
    # in float32 is 1.3e-5 off, so each step of about 0.1 may be 1e-6 off.
    expected = paper_adam_reference(
        np.array([1.0, -2.0, 3e-4]), np.array([0.5, 1e-6, -3.0]), 2, *report["hyper"]
    )
    np.testing.assert_allclose(report["adam"], expected, rtol=0, atol=1e-5)

    assert report["unknown_layer"] == "layer kind 'nope'"
