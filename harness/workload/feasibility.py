"""What can be checked before any cell starts: that the task fits its data and this machine.

A task can be valid on paper and still fail every cell: it holds out more validation samples
than the training set has, or its model needs more memory than the machine (or
``--memory-limit``) allows. Both are cheap to know in advance (the dataset's size is in its
files' headers, the parameter count follows from the layer shapes), so they are refused with
the figures before a run folder is made, not discovered by every cell in turn.
"""

from __future__ import annotations

import math
from pathlib import Path

import psutil

from harness.data.idx import read_idx_shape
from harness.errors import DataError, HarnessError
from harness.workload.tasks import GRU, LSTM, Conv2D, Dense, SimpleRNN, Task

#: gate blocks each recurrent kind stacks in its kernels (as in :mod:`harness.workload.fairness`)
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


def sample_counts(task: Task, data_paths: dict[str, Path]) -> tuple[int, int]:
    """How many training and test samples the task's dataset has: read from the labels files'
    headers, or, for a dataset made from the seed, counted in what its ``generate`` makes (as
    each cell will make it)."""
    info = task.dataset_info
    if info.generate is not None:
        try:
            (x_train, _), (x_test, _) = info.generate(task.seed)
            return len(x_train), len(x_test)
        except DataError:
            raise  # the data itself is missing or damaged: already one line naming the file
        except Exception as exc:  # a plugin's function: any error is that plugin's
            raise HarnessError(
                f"dataset {info.name!r}: its generate function failed: {type(exc).__name__}: {exc}"
            ) from None
    counts = []
    for role in ("train_labels", "test_labels"):
        shape = read_idx_shape(data_paths[role])
        if not shape:
            raise DataError(f"{data_paths[role]}: an IDX file of no dimensions, so no labels")
        counts.append(shape[0])
    return counts[0], counts[1]


def largest_layer_output(task: Task) -> int:
    """Values in the largest of one sample's layer outputs (its input included): a batch's
    worth of them exists at once however a framework trains."""
    shapes = [task.model.input_shape, *task.model.output_shapes()]
    return max(math.prod(shape) for shape in shapes)


def check(
    task: Task,
    data_paths: dict[str, Path],
    *,
    memory_limit: int | None,
    usable: tuple[int, str] | None = None,
) -> None:
    """Refuse a task that can't run here, with the figure that rules it out.

    The memory figure is a floor every framework needs at once: the weights, gradients and
    Adam's two moments, the largest layer output for a batch, and the dataset as float32
    (each cell holds it all).
    """
    train, test = sample_counts(task, data_paths)
    held_out = task.training.validation_samples
    if held_out >= train:
        raise Infeasible(
            f"task {task.name}: training.validation_samples is {held_out:,}, but dataset "
            f"{task.dataset.name!r} has only {train:,} training samples; hold out fewer"
        )
    wanted = task.dataset.train_samples
    if wanted is not None and wanted > train - held_out:
        raise Infeasible(
            f"task {task.name}: dataset.train_samples is {wanted:,}, but dataset "
            f"{task.dataset.name!r} has {train - held_out:,} training samples once "
            f"{held_out:,} are held out for validation; train on fewer"
        )
    parameters = parameter_count(task)
    batch = max(task.training.batch_size, task.training.eval_batch_size)
    state = parameters * 4 * COPIES_IN_TRAINING
    activations = batch * largest_layer_output(task) * 4
    data = (train + test) * math.prod(task.model.input_shape) * 4
    needed = state + activations + data
    machine, where = usable or (psutil.virtual_memory().total, "this machine's memory")
    room, what = (
        (memory_limit, "--memory-limit")
        if memory_limit is not None and memory_limit < machine
        else (machine, where)
    )
    if needed > room:
        raise Infeasible(
            f"task {task.name}: the model has {parameters:,} parameters; training them with "
            f"{task.training.optimizer.name} needs at least {_size(needed)} ({_size(state)} for "
            f"weights, gradients and two moments in float32, {_size(activations)} for the "
            f"largest layer output of a batch of {batch:,}, {_size(data)} for the data), more "
            f"than {what}, {_size(room)}"
        )


def _size(count: int) -> str:
    for unit, scale in (("TiB", 2**40), ("GiB", 2**30), ("MiB", 2**20)):
        if count >= scale:
            return f"{count / scale:,.1f} {unit}"
    return f"{count:,} bytes"
