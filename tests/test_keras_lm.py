"""A language model through the Keras-using plugins (plugin API 3): labels for every step train,
evaluate and predict as the task says, a smaller last batch included, and the causal mask hides
later steps. The conformance kit checks the layers' outputs against the reference; this covers
the per-step labels (loss and accuracy the mean over every step of every sample) and the
compiled modes: TensorFlow's XLA, Keras on JAX's scanned epoch (full batches scanned, the last
through one step) and Keras on PyTorch's ``torch.compile``.

Keras fixes its backend at its first import, so each framework runs in a child process.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from harness.api.adapter import availability_of
from harness.checks.agreement import max_relative_difference
from harness.registry.plugins import get_registry
from harness.testing.probes import (
    ENCODER_RTOL,
    Probe,
    expected_output,
    probe_task,
    probe_weights,
)
from tests.test_keras_support import run_python

VOCABULARY, STEPS, BATCH, SAMPLES = 7, 6, 4, 11  # batches of 4, 4 and a last one of 3

PROBE = Probe(
    "gpt_steps",
    (STEPS,),
    (
        {"kind": "embedding", "input_dim": VOCABULARY, "output_dim": 6, "stddev": 1.0},
        {"kind": "position_embedding"},
        {"kind": "transformer_encoder", "causal": True, "heads": 3, "key_dim": 2, "mlp_units": 5},
        {"kind": "layer_norm"},
        {"kind": "dense", "units": VOCABULARY, "activation": "softmax"},
    ),
)

TRAIN = """
    import json, os
    import numpy as np
    from harness.api.adapter import build_trainer, open_session
    from harness.registry.plugins import get_registry
    from harness.testing.probes import probe_weights
    from tests.test_keras_lm import VOCABULARY, data, task

    framework, mode = os.environ["LM_FRAMEWORK"], os.environ["LM_MODE"]
    adapter = get_registry().framework(framework)
    session = open_session(adapter, device="cpu", threads=1, mode=mode)
    weights = probe_weights(task())
    x, y, order = data()
    trainer = build_trainer(adapter, session, task(), weights, x, y)
    changed = x.copy()
    changed[:, -1] = (changed[:, -1] + 1) % VOCABULARY
    evaluation = trainer.evaluate(x, y)
    report = {
        "predicted": np.asarray(trainer.predict(x)).tolist(),
        "changed": np.asarray(trainer.predict(changed)).tolist(),
        "evaluation": [evaluation.loss, evaluation.accuracy],
        "before": [], "losses": [],
    }
    for start in range(0, len(order), 4):
        batch = order[start : start + 4]
        report["before"].append(np.asarray(trainer.predict(x[batch])).tolist())
        report["losses"].append(float(trainer.train_epoch(batch)))
        if start == 0:
            report["first_step"] = trainer.weights()[0]["embeddings"].tolist()
    report["epoch_loss"] = float(trainer.train_epoch(order))
    print("REPORT " + json.dumps(report))
"""


def task():
    return probe_task(
        PROBE, loss="sparse_categorical_crossentropy", learning_rate=0.01, batch_size=BATCH
    )


def data() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(11)
    x = rng.integers(0, VOCABULARY, (SAMPLES, STEPS)).astype(np.float32)
    y = rng.integers(0, VOCABULARY, (SAMPLES, STEPS)).astype(np.int64)
    return x, y, rng.permutation(SAMPLES)


def token_loss(outputs: np.ndarray, y: np.ndarray) -> float:
    """The mean over every step of every sample of ``-log p(label)``."""
    return float(-np.log(np.take_along_axis(outputs, y[..., None], axis=-1)).mean())


@pytest.mark.parametrize(
    ("framework", "mode"),
    [
        ("tensorflow", "eager"),
        ("tensorflow", "compiled"),
        ("keras_jax", "eager"),
        ("keras_jax", "compiled"),
        ("keras_torch", "eager"),
        # torch.compile of Keras's step, once per batch shape: two minutes on two cores
        pytest.param("keras_torch", "compiled", marks=pytest.mark.slow),
    ],
)
def test_labels_for_every_step_train_and_evaluate_as_the_task_says(framework, mode):
    availability = availability_of(get_registry().framework(framework))
    if not availability.available:
        pytest.skip(availability.reason)
    child = run_python(TRAIN, LM_FRAMEWORK=framework, LM_MODE=mode)
    assert child.returncode == 0, child.stderr[-3000:]
    [line] = [line for line in child.stdout.splitlines() if line.startswith("REPORT ")]
    report = json.loads(line.removeprefix("REPORT "))
    x, y, order = data()
    expected = expected_output(task(), probe_weights(task()), x)
    predicted = np.asarray(report["predicted"])
    assert predicted.shape == (SAMPLES, STEPS, VOCABULARY)  # eval batches of 4, 4 and 3
    assert max_relative_difference(expected, predicted) <= ENCODER_RTOL

    # the causal mask: a changed last token changes no earlier step's output
    changed = np.asarray(report["changed"])
    assert np.abs(changed[:, :-1] - predicted[:, :-1]).max() <= 1e-6
    assert np.abs(changed[:, -1] - predicted[:, -1]).max() > 1e-3

    loss, accuracy = report["evaluation"]
    assert loss == pytest.approx(token_loss(expected, y), rel=1e-5)
    assert accuracy == pytest.approx(float((expected.argmax(-1) == y).mean()))

    # each step's loss is the mean over its batch's tokens, the last, smaller batch's too
    batches = [order[start : start + BATCH] for start in range(0, SAMPLES, BATCH)]
    for index, (batch, before) in enumerate(zip(batches, report["before"], strict=True)):
        wanted = token_loss(np.asarray(before, np.float64), y[batch])
        assert report["losses"][index] == pytest.approx(wanted, rel=1e-4), (framework, index)
    assert np.isfinite(report["epoch_loss"])

    # Adam's first step moves every parameter with a gradient by the learning rate: an
    # embedding row looked up several times too (its gradient the sum of its lookups'); Adam's
    # epsilon shortens the step of a gradient near 1e-5 by a little
    given = probe_weights(task())[0]["embeddings"]
    moved = np.abs(np.asarray(report["first_step"]) - given)
    seen = np.unique(x[batches[0]].astype(np.int64))
    assert moved[seen] == pytest.approx(np.full(moved[seen].shape, 0.01), rel=5e-3)
    assert not np.delete(moved, seen, axis=0).any()


SAME_RUN = """
    import json
    import numpy as np
    from harness.api.adapter import build_trainer, open_session
    from harness.registry.plugins import get_registry
    from harness.testing.probes import probe_weights
    from tests.test_keras_lm import data, task

    adapter = get_registry().framework("keras_jax")
    x, y, order = data()
    report = {}
    for mode in ("eager", "compiled"):
        session = open_session(adapter, device="cpu", threads=1, mode=mode)
        trainer = build_trainer(adapter, session, task(), probe_weights(task()), x, y)
        losses = [float(trainer.train_epoch(order)) for _ in range(2)]
        weights = [{k: v.tolist() for k, v in layer.items()} for layer in trainer.weights()]
        report[mode] = {"losses": losses, "weights": weights, "settings": session.runtime.settings}
    print("REPORT " + json.dumps(report))
"""


def test_keras_on_jax_compiled_scans_the_same_training_run_as_eager():
    # two epochs of batches 4, 4 and 3: the scan takes the full two, one step the last
    availability = availability_of(get_registry().framework("keras_jax"))
    if not availability.available:
        pytest.skip(availability.reason)
    child = run_python(SAME_RUN)
    assert child.returncode == 0, child.stderr[-3000:]
    [line] = [line for line in child.stdout.splitlines() if line.startswith("REPORT ")]
    report = json.loads(line.removeprefix("REPORT "))
    eager, compiled = report["eager"], report["compiled"]
    assert compiled["settings"]["compiled_unit"] == "epoch (lax.scan of train_step)"
    assert "compiled_unit" not in eager["settings"]
    # the epoch loss is the mean of its three batch losses in both, and the runs are one
    assert compiled["losses"] == pytest.approx(eager["losses"], rel=1e-6)
    assert compiled["losses"][1] < compiled["losses"][0]
    for ours, theirs in zip(compiled["weights"], eager["weights"], strict=True):
        # the key bias's gradient is zero but for rounding (softmax ignores a shift shared by
        # every key), which Adam turns into full steps: left out, as check-agreement does
        for name in set(ours) - {"key_bias"}:
            assert np.asarray(ours[name]) == pytest.approx(np.asarray(theirs[name]), abs=1e-6)
