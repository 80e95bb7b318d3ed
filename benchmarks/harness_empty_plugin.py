"""A framework that trains nothing, for ``benchmarks/cell_footprint.py``: whatever its cell
costs in memory and start-up time is the harness's own share of every cell."""

from __future__ import annotations

import numpy as np

import harness
from harness.api.adapter import Evaluation, FrameworkAdapter, RuntimeInfo


class EmptyTrainer:
    def __init__(self, classes: int) -> None:
        self.classes = classes

    def train_epoch(self, batch_order: np.ndarray) -> float:
        return 0.0

    def evaluate(self, x: np.ndarray, y: np.ndarray) -> Evaluation:
        return Evaluation(loss=0.0, accuracy=float((y == 0).mean()))


class EmptyAdapter(FrameworkAdapter):
    name = "empty"
    import_name = "numpy"
    distribution = "numpy"

    def devices(self):
        return ["cpu"]

    def setup(self, *, device, threads):
        return RuntimeInfo(device=device, device_name="cpu", settings={})

    def build(self, task, weights, x, y):
        return EmptyTrainer(task.model.layers[-1].units)

    def parameter_count(self, trainer) -> None:
        return None


@harness.hookimpl
def harness_register_frameworks(register):
    register(EmptyAdapter())
