"""A plugin that adds a dataset and a task on it, through the task and dataset hooks.

``tiny_blobs``: points in four dimensions around two centres, drawn from the task's seed; the
task ``tiny_blobs_mlp`` trains a small MLP on them. Loaded with
``HARNESS_PLUGINS=harness_tiny_plugin``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

import harness
from harness.api import DatasetInfo


def tiny_blobs(seed: int):
    """((x_train, y_train), (x_test, y_test)): 2,000 and 500 points of two classes."""
    rng = np.random.default_rng([seed, 7])
    centres = np.array([[1.0, 1.0, -1.0, 0.5], [-1.0, -0.5, 1.0, -1.0]], np.float32)

    def draw(count: int):
        labels = rng.integers(0, 2, count)
        points = centres[labels] + rng.normal(0, 0.6, (count, 4)).astype(np.float32)
        return points.astype(np.float32), labels.astype(np.int64)

    return draw(2_000), draw(500)


@harness.hookimpl
def harness_register_datasets(register):
    register(
        DatasetInfo(
            name="tiny_blobs",
            files={},
            input_shape=(4,),
            num_classes=2,
            mirrors=(),
            generate=tiny_blobs,
        )
    )


@harness.hookimpl
def harness_register_tasks(register):
    register(Path(__file__).parent / "tiny_blobs_mlp.toml")
