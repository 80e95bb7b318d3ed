"""What a framework plugin implements: a :class:`FrameworkAdapter` and the :class:`Trainer` it builds.

The harness owns everything that must be equal between frameworks: the data and its
preprocessing, the initial weights, the batch order of every epoch, the hyperparameters, the
thread count and the clock. An adapter owns only how its framework computes. In a cell's child
process the runner drives it in this order::

    adapter.setup(device="cpu", threads=4, mode="eager")  # import the framework, apply settings
    trainer = adapter.build(task, weights, x, y)          # model + optimizer, data on the device
    for epoch in range(task.training.epochs):
        loss = trainer.train_epoch(batch_order, clock)    # timed by the harness
        trainer.evaluate(x_validation, y_validation)      # not timed as training
    evaluation = trainer.evaluate(x_test, y_test)
    adapter.peak_device_memory_bytes()

``harness check-agreement`` and the layer tests also call ``trainer.predict``,
``trainer.weights`` and ``trainer.parameter_count``, and train one batch at a time by passing
``train_epoch`` a ``batch_order`` of one batch's indices.

Nothing here imports a framework; adapters import theirs lazily, in ``setup``.
"""

from __future__ import annotations

import abc
import importlib.metadata
import importlib.util
import inspect
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar, Protocol

if TYPE_CHECKING:
    import numpy as np

    from harness.tasks import Task

DEVICE_KINDS = ("cpu", "gpu")
#: ``eager``: the framework's default way of running; ``compiled``: its whole-graph compiler
MODES = ("eager", "compiled")


def call_with_accepted(function: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    """Call ``function`` with only the keyword arguments it accepts.

    So an adapter written before an argument was added (``mode`` to ``setup``, ``clock`` to
    ``train_epoch``) keeps working: as with pluggy hooks, it may accept fewer than offered.
    """
    parameters = inspect.signature(function).parameters
    if not any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters.values()):
        kwargs = {name: value for name, value in kwargs.items() if name in parameters}
    return function(*args, **kwargs)


class UnsupportedSpec(Exception):
    """Raised by :meth:`FrameworkAdapter.build` when the framework can't express the task as written.

    The cell is recorded as ``skipped`` with this message as its reason. Raise it rather than
    silently changing the model.
    """


@dataclass(frozen=True)
class Availability:
    """Whether an adapter can run here, and if not, why and how to fix it."""

    available: bool
    reason: str = ""


@dataclass(frozen=True)
class RuntimeInfo:
    """What :meth:`FrameworkAdapter.setup` actually applied, recorded with every result.

    :param device: the device kind in use, ``"cpu"`` or ``"gpu"``.
    :param device_name: a human-readable name, e.g. ``"cpu"`` or ``"NVIDIA H100 80GB HBM3"``.
    :param settings: the framework's own controls that were set (thread pools, allocator, ...).
    """

    device: str
    device_name: str
    settings: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Evaluation:
    """Mean loss and accuracy over an evaluated split.

    :param loss: the task's loss, averaged over the samples (for ``mean_squared_error`` tasks
        this is the mean squared error the target is judged on).
    :param accuracy: the share of samples whose most probable class is the label; ``None`` for
        a regression task.
    """

    loss: float
    accuracy: float | None


class StepClock:
    """Times a sample of the steps of an epoch, for step-time percentiles.

    A trainer asks :meth:`wants` before each step (0-based within the epoch); for a step it
    wants, the trainer waits for the device to finish earlier work, runs the step, waits for it
    too, and passes the elapsed time to :meth:`record`. Only sampled steps are synchronised, so
    the others keep their overlap of host and device work.
    """

    def __init__(self, every: int = 32) -> None:
        self.every = every
        self.samples: list[float] = []

    def wants(self, step: int) -> bool:
        return step % self.every == self.every // 2

    def record(self, seconds: float) -> None:
        self.samples.append(seconds)


class Trainer(Protocol):
    """A built model with its optimizer state and training data, ready to train."""

    def train_epoch(self, batch_order: np.ndarray, clock: StepClock | None = None) -> float:
        """Run one epoch of optimizer steps and return the mean training loss.

        :param batch_order: a permutation of the training-sample indices; batch ``i`` is
            ``batch_order[i * batch_size:(i + 1) * batch_size]`` (the last batch may be smaller).
        :param clock: when given, time the steps it :meth:`~StepClock.wants`. A mode that runs
            a whole epoch as one compiled program can't time single steps and ignores it.
        :returns: the mean of the per-batch losses. The harness reads its clock when this
            returns, so all device work of the epoch must be finished by then; returning a
            Python ``float`` made from the device's loss value does that.
        """
        ...

    def evaluate(self, x: np.ndarray, y: np.ndarray) -> Evaluation:
        """Return the mean loss and the accuracy of the current model on ``(x, y)``.

        Dropout is off while evaluating.
        """
        ...

    def predict(self, x: np.ndarray) -> np.ndarray:
        """The model's outputs for ``x`` as a float32 array, dropout off.

        The output of the last layer as the task specifies it, activation included: class
        probabilities for a softmax layer even where the framework folds softmax into its loss.
        """
        ...

    def weights(self) -> list[dict[str, np.ndarray]]:
        """The current weights, converted back to the harness's layout (as ``build`` got them)."""
        ...

    def parameter_count(self) -> int:
        """The number of trainable parameters, counted by the framework itself.

        The runner fails a cell whose count differs from the one the harness derives from the
        task (``harness.fairness.parameter_count``): a different count means a different model.
        """
        ...


class FrameworkAdapter(abc.ABC):
    """One deep-learning framework, as the runner drives it.

    Subclasses set the class attributes and implement :meth:`setup`, :meth:`devices` and
    :meth:`build`. Register an instance from the ``harness_register_frameworks`` hook.
    """

    #: The ``--framework`` value, also the entry-point name, e.g. ``"torch"``.
    name: ClassVar[str]
    #: The module whose presence means the framework is installed, e.g. ``"torch"``.
    import_name: ClassVar[str]
    #: The distribution whose version is reported, e.g. ``"torch"`` or ``"tensorflow"``.
    distribution: ClassVar[str]
    #: What a user types to install the framework for this adapter.
    install_hint: ClassVar[str] = ""
    #: The execution modes (of :data:`MODES`) this adapter implements.
    modes: ClassVar[tuple[str, ...]] = ("eager",)

    def availability(self) -> Availability:
        """Whether the framework is installed; must be cheap (no framework import)."""
        if importlib.util.find_spec(self.import_name) is None:
            hint = self.install_hint or f"pip install {self.distribution}"
            return Availability(False, f"{self.distribution} is not installed: {hint}")
        return Availability(True)

    def version(self) -> str | None:
        """The framework's version, read from package metadata without importing it."""
        try:
            return importlib.metadata.version(self.distribution)
        except importlib.metadata.PackageNotFoundError:
            return None

    @abc.abstractmethod
    def setup(self, *, device: str, threads: int, mode: str = "eager") -> RuntimeInfo:
        """Import the framework and apply the cell's settings, before any model is built.

        Called first in the cell's child process, once.

        :param device: ``"cpu"`` or ``"gpu"`` (the runner has resolved ``auto``); on ``"cpu"``
            the framework must not place work on an accelerator.
        :param threads: the intra-op thread count every framework gets, to be set through
            the framework's own controls. (The runner has also pinned the process to that
            many cores.)
        :param mode: one of :attr:`modes`; record in :attr:`RuntimeInfo.settings` exactly what
            it switched on (e.g. ``{"mode": "compiled", "compiler": "torch.compile"}``).
        """

    @abc.abstractmethod
    def devices(self) -> list[str]:
        """The device kinds this framework can use here, a subset of ``("cpu", "gpu")``.

        Called in the cell's child process before :meth:`setup`; may import the framework.
        """

    @abc.abstractmethod
    def build(
        self, task: Task, weights: list[dict[str, np.ndarray]], x: np.ndarray, y: np.ndarray
    ) -> Trainer:
        """Build the task's model and optimizer, load the harness's initial weights, stage the data.

        :param task: the resolved task; ``task.model`` and ``task.training`` say what to build.
        :param weights: one dict per layer of ``task.model.layers``, in the harness's layout
            (see :mod:`harness.fairness`: dense ``kernel (in, out)``, conv ``kernel
            (kh, kw, in, out)``, Keras's gate order in recurrent kernels; layers without
            parameters get an empty dict). Convert to the framework's layout.
        :param x: preprocessed training inputs, ``float32``, shape ``(n, *input_shape)``
            (images channels-last: ``(n, height, width, channels)``).
        :param y: training labels, ``int64``, shape ``(n,)``; for ``mean_squared_error`` tasks
            float32 targets of shape ``(n,)``, to compare with the ``(n, 1)`` output.
        :raises UnsupportedSpec: when a layer, loss or optimizer can't be expressed.
        """

    def peak_device_memory_bytes(self) -> int | None:
        """Peak memory the framework allocated on the accelerator, or ``None`` on a CPU."""
        return None

    def matmul_seconds(self, size: int, repeats: int) -> float:
        """Seconds for ``repeats`` float32 ``size``×``size`` matrix products, device work included.

        Used by ``harness calibrate`` to measure the peak FLOP/s the framework reaches on this
        machine; called after :meth:`setup`. Adapters that don't implement it get no
        utilisation figure.
        """
        raise NotImplementedError
