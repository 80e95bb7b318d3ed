"""What can be checked before any cell starts: that the task fits its data and this machine.

A task can be valid on paper and still fail every cell: it holds out more validation samples
than the training set has, or its model needs more memory than the machine (or
``--memory-limit``) allows. Both are cheap to know in advance (the dataset's size is in its
files' headers, the parameter count follows from the layer shapes), so they are refused with
the figures before a run folder is made, not discovered by every cell in turn.
"""

from __future__ import annotations

import gzip
import math
import struct
from pathlib import Path

import psutil

from harness.data import series
from harness.data.datasets import dataset_info
from harness.errors import DataError, HarnessError
from harness.tasks import GRU, LSTM, Conv2D, Dense, SimpleRNN, Task

#: gate blocks each recurrent kind stacks in its kernels (as in :mod:`harness.fairness`)
GATES = {"simple_rnn": 1, "lstm": 4, "gru": 3}
#: float32 copies of the parameters that training with Adam holds at least: the weights, their
#: gradients and the optimizer's two moments
COPIES_IN_TRAINING = 4


class Infeasible(HarnessError):
    """The task can't run on this data or this machine; the message gives the figures."""


def parameter_count(task: Task) -> int:
    """Trainable parameters of the task's model, from the layer shapes alone (no allocation),
    in the harness's weight layout: the count every plugin must report."""
    total = 0
    for layer, shape in zip(task.model.layers, task.model.input_shapes(), strict=True):
        if isinstance(layer, Dense):
            total += shape[0] * layer.units + layer.units
        elif isinstance(layer, Conv2D):
            total += math.prod(layer.kernel_size) * shape[-1] * layer.filters + layer.filters
        elif isinstance(layer, SimpleRNN | LSTM | GRU):
            width = GATES[layer.kind] * layer.units
            bias = 2 * width if isinstance(layer, GRU) else width
            total += shape[-1] * width + layer.units * width + bias
    return total


def training_samples(task: Task, data_paths: dict[str, Path]) -> int:
    """How many training samples the task's dataset has, read from the labels file's header."""
    info = dataset_info(task.dataset.name)
    if info.generate is not None:
        return series.TRAIN_SERIES
    path = data_paths["train_labels"]
    try:
        opener = gzip.open if path.suffix == ".gz" else open
        with opener(path, "rb") as handle:
            header = handle.read(8)
    except (OSError, EOFError) as exc:
        raise DataError(f"{path}: cannot read: {exc}; delete it so a good copy is fetched") from None
    if len(header) < 8:
        raise DataError(f"{path}: truncated IDX header ({len(header)} bytes)")
    return struct.unpack(">I", header[4:8])[0]


def check(task: Task, data_paths: dict[str, Path], *, memory_limit: int | None) -> None:
    """Refuse a task that can't run here, with the figure that rules it out."""
    samples = training_samples(task, data_paths)
    held_out = task.training.validation_samples
    if held_out >= samples:
        raise Infeasible(
            f"task {task.name}: training.validation_samples is {held_out:,}, but dataset "
            f"{task.dataset.name!r} has only {samples:,} training samples; hold out fewer"
        )
    parameters = parameter_count(task)
    needed = parameters * 4 * COPIES_IN_TRAINING
    machine = psutil.virtual_memory().total
    room, what = (
        (memory_limit, "--memory-limit")
        if memory_limit is not None and memory_limit < machine
        else (machine, "this machine's memory")
    )
    if needed > room:
        raise Infeasible(
            f"task {task.name}: the model has {parameters:,} parameters; training them with "
            f"{task.training.optimizer.name} needs at least {_size(needed)} "
            f"(weights, gradients and two moments in float32), more than {what}, {_size(room)}"
        )


def _size(count: int) -> str:
    for unit, scale in (("TiB", 2**40), ("GiB", 2**30), ("MiB", 2**20)):
        if count >= scale:
            return f"{count / scale:,.1f} {unit}"
    return f"{count:,} bytes"
