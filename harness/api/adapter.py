"""What a framework plugin implements: a :class:`FrameworkAdapter`, the :class:`Session` its
``setup`` returns for one cell, and the :class:`Trainer` the session builds.

The harness owns everything that must be equal between frameworks: the data and its
preprocessing, the initial weights, the batch order of every epoch, the hyperparameters, the
thread count and the clock. An adapter owns only how its framework computes. In a cell's child
process the runner drives it in this order (plugin API 1)::

    session = adapter.setup(device="cpu", threads=4, mode="eager")  # import, apply settings
    trainer = session.build(task, weights, x, y)    # model + optimizer, data on the device
    for epoch in range(task.training.epochs):
        loss = trainer.train_epoch(batch_order, clock)    # timed by the harness
        trainer.evaluate(x_validation, y_validation)      # not timed as training
    evaluation = trainer.evaluate(x_test, y_test)
    session.peak_device_memory_bytes()

The registered adapter is shared by every caller in a process and holds no per-cell state:
whatever ``setup`` decides (the device, the mode, caches) lives on the session it returns.

``harness check-agreement`` and the layer tests also call ``trainer.predict``,
``trainer.weights`` and ``trainer.parameter_count``, and train one batch at a time by passing
``train_epoch`` a ``batch_order`` of one batch's indices.

An adapter written against plugin API 0 (``setup`` returns a :class:`RuntimeInfo`; ``build``,
``peak_device_memory_bytes`` and ``matmul_seconds`` are the adapter's own methods) keeps working
unchanged, with a :class:`PluginAPIDeprecationWarning`: :func:`open_session` wraps it.

Nothing here imports a framework; adapters import theirs lazily, in ``setup``.
"""

from __future__ import annotations

import abc
import importlib.util
import inspect
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar, Protocol

# the precisions a cell may train in, re-exported here for plugins (what each means:
# harness.workload.precision); an adapter lists its own in FrameworkAdapter.precisions
from harness.workload.precision import PRECISIONS  # noqa: F401

if TYPE_CHECKING:
    from pathlib import Path

    import numpy as np

    from harness.api.profiling import StepProfiler
    from harness.workload.tasks import Task

DEVICE_KINDS = ("cpu", "gpu")
#: ``eager``: the framework's default way of running; ``compiled``: its whole-graph compiler
MODES = ("eager", "compiled")
#: the plugin API this harness speaks (see :attr:`FrameworkAdapter.api_version`)
API_VERSION = 4
#: where the guide says what changed between plugin API versions
API_CHANGES = "docs/writing-a-plugin.md#plugin-api-versions"


class PluginAPIDeprecationWarning(DeprecationWarning):
    """An adapter uses a part of the plugin API that has moved; it still works, for now."""


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
    :param precision: the precision manifest (plugin API 4): what the cell's matrix products
        really compute in, read back from the framework after ``setup`` set it, e.g.
        ``{"parameters": "float32", "compute": "float32", "tf32": False}``;
        :mod:`harness.api.precision` has a helper per framework. Empty: not reported.
    """

    device: str
    device_name: str
    settings: dict[str, Any] = field(default_factory=dict)
    precision: dict[str, Any] = field(default_factory=dict)


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
        task (``harness.workload.fairness.parameter_count``): a different count means a different model.
        """
        ...


class Session(abc.ABC):
    """The framework set up for one cell: what :meth:`FrameworkAdapter.setup` returns.

    It holds what ``setup`` decided for this cell (the device, the mode, a compile cache) and
    builds the cell's trainers. Subclass it and implement :meth:`build`.

    :param runtime: what ``setup`` applied, recorded with every result. ``build`` may add to
        ``runtime.settings`` what it resolved (e.g. whether XLA compiles the step).
    """

    def __init__(self, runtime: RuntimeInfo) -> None:
        self.runtime = runtime

    @abc.abstractmethod
    def build(
        self, task: Task, weights: list[dict[str, np.ndarray]], x: np.ndarray, y: np.ndarray
    ) -> Trainer:
        """Build the task's model and optimizer, load the harness's initial weights, stage the data.

        :param task: the resolved task; ``task.model`` and ``task.training`` say what to build.
        :param weights: one dict per layer of ``task.model.layers``, in the harness's layout
            (see :mod:`harness.workload.fairness`: dense ``kernel (in, out)``, conv ``kernel
            (kh, kw, in, out)``, Keras's gate order in recurrent kernels; layers without
            parameters get an empty dict). Convert to the framework's layout.
        :param x: preprocessed training inputs, ``float32``, shape ``(n, *input_shape)``
            (images channels-last: ``(n, height, width, channels)``).
        :param y: training labels, ``int64``, shape ``(n,)``; for ``mean_squared_error`` tasks
            float32 targets of shape ``(n,)``, to compare with the ``(n, 1)`` output; for a
            language model (API 3) ``(n, steps)``: a class per step, the loss and accuracy the
            mean over every step of every sample.
        :raises UnsupportedSpec: when a layer, loss or optimizer can't be expressed.
        """

    def peak_device_memory_bytes(self) -> int | None:
        """Peak memory the framework allocated on the accelerator, or ``None`` on a CPU."""
        return None

    def profiler(self, directory: Path) -> StepProfiler:
        """The framework's profiler for ``harness run --profile`` (plugin API 5): a
        :class:`harness.api.profiling.StepProfiler`, usually one of that module's
        (``TorchProfiler(directory)``, ``JaxProfiler(directory)``,
        ``TensorFlowProfiler(directory)``), writing what it records under ``directory``.

        :raises NotImplementedError: (the default) the cell's profile says "not profiled",
            with the exception's message as the reason.
        """
        raise NotImplementedError(f"{type(self).__name__} offers no profiler (Session.profiler)")

    def matmul_seconds(self, size: int, repeats: int) -> float:
        """Seconds for ``repeats`` float32 ``size``×``size`` matrix products, device work included.

        Used by ``harness calibrate`` to measure the peak FLOP/s the framework reaches on this
        machine. Sessions that don't implement it get no utilisation figure.
        """
        raise NotImplementedError


class FrameworkAdapter(abc.ABC):
    """One deep-learning framework, as the runner drives it.

    Subclasses set the class attributes and implement :meth:`devices` and :meth:`setup`, which
    returns a :class:`Session`. Register an instance from the ``harness_register_frameworks``
    hook: one instance serves every cell of a process, so it keeps no per-cell state.
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
    #: The precisions (of :data:`PRECISIONS`) this adapter implements; a cell in another one is
    #: a ``skipped`` row that says so.
    precisions: ClassVar[tuple[str, ...]] = ("float32",)
    #: The plugin API the adapter was written against: ``1`` for ``setup`` returning a
    #: :class:`Session`; ``2`` (:data:`API_VERSION`) when it also builds the ResNet layers
    #: (``batch_norm``, ``global_avg_pool2d``, ``residual_block``: an API 1 adapter may refuse
    #: them with :class:`UnsupportedSpec`); ``3`` when it also builds a language model
    #: (``embedding``, a ``causal`` transformer encoder, labels for every step: the harness
    #: skips an older adapter's cells of such a task, since it could ignore ``causal``
    #: unknowingly); ``4`` when ``setup`` takes ``precision`` and the session's runtime reports
    #: a precision manifest. An adapter that doesn't say is taken as API 0.
    api_version: ClassVar[int] = 0

    def availability(self) -> Availability:
        """Whether the framework is installed; must be cheap (no framework import)."""
        if self.api_version > API_VERSION:
            return Availability(
                False,
                f"written for plugin API {self.api_version}; this harness speaks API "
                f"{API_VERSION}: upgrade harness",
            )
        if importlib.util.find_spec(self.import_name) is None:
            hint = self.install_hint or f"pip install {self.distribution}"
            return Availability(False, f"{self.distribution} is not installed: {hint}")
        return Availability(True)

    def version(self) -> str | None:
        """The framework's version, read from package metadata without importing it."""
        from harness.distributions import installed_version

        return installed_version(self.distribution)

    @abc.abstractmethod
    def setup(
        self, *, device: str, threads: int, mode: str = "eager", precision: str = "float32"
    ) -> Session:
        """Import the framework, apply the cell's settings, and return the cell's :class:`Session`.

        Called first in the cell's child process, once per cell.

        :param device: ``"cpu"`` or ``"gpu"`` (the runner has resolved ``auto``); on ``"cpu"``
            the framework must not place work on an accelerator.
        :param threads: the intra-op thread count every framework gets, to be set through
            the framework's own controls. (The runner has also pinned the process to that
            many cores.)
        :param mode: one of :attr:`modes`; record in the session's ``runtime.settings`` exactly
            what it switched on (e.g. ``{"mode": "compiled", "compiler": "torch.compile"}``).
        :param precision: one of :attr:`precisions` (API 4; an adapter without the argument
            gets only ``float32`` cells). Set the framework so that ``float32`` products really
            compute in float32 (no TF32), and report what it computes in as
            ``runtime.precision`` (:mod:`harness.api.precision`).
        """

    @abc.abstractmethod
    def devices(self) -> list[str]:
        """The device kinds this framework can use here, a subset of ``("cpu", "gpu")``.

        Called in the cell's child process before :meth:`setup`; may import the framework.
        """

    # Plugin API 0 had these on the adapter, with these defaults, and API 0 adapters that
    # don't override them still inherit them; an API 1 adapter has them on its Session.

    def peak_device_memory_bytes(self) -> int | None:
        """Plugin API 0 only: see :meth:`Session.peak_device_memory_bytes`."""
        return None

    def matmul_seconds(self, size: int, repeats: int) -> float:
        """Plugin API 0 only: see :meth:`Session.matmul_seconds`."""
        raise NotImplementedError


def build_trainer(
    adapter: FrameworkAdapter,
    session: Session,
    task: Task,
    weights: list[dict[str, np.ndarray]],
    x: np.ndarray,
    y: np.ndarray,
) -> Trainer:
    """``session.build(...)``, refused with :class:`UnsupportedSpec` when the task needs a newer
    plugin API than the adapter speaks (see :attr:`FrameworkAdapter.api_version`)."""
    from harness.workload.tasks import NEEDS

    needed, declared = task.plugin_api_needed(), getattr(adapter, "api_version", 0)
    if declared < needed:
        raise UnsupportedSpec(
            f"the task needs plugin API {needed} ({NEEDS[needed]}); the "
            f"{adapter.name!r} adapter speaks API {declared}"
        )
    return session.build(task, weights, x, y)


# -- plugin API 0, still accepted -----------------------------------------------------------


def availability_of(adapter: FrameworkAdapter) -> Availability:
    """``adapter.availability()``; a check that raises says so as the reason, so that one
    plugin's bug makes its framework unavailable, not the command line fail."""
    try:
        found = adapter.availability()
    except Exception as exc:
        return Availability(False, f"its availability check raised {type(exc).__name__}: {exc}")
    if not isinstance(found, Availability):
        return Availability(False, f"its availability check returned {found!r}, not Availability")
    return found


def open_session(
    adapter: FrameworkAdapter, *, device: str, threads: int, mode: str, precision: str = "float32"
) -> Session:
    """Set ``adapter`` up for one cell and return its session, whichever plugin API it speaks.

    ``precision`` reaches ``setup`` only when it takes the argument (API 4): an older adapter
    gets only float32 cells, which the caller has checked against :attr:`~FrameworkAdapter.precisions`.

    :raises TypeError: when an adapter that declares API 1 returns something else from ``setup``.
    """
    if getattr(adapter, "api_version", 0) >= 1:
        session = call_with_accepted(
            adapter.setup, device=device, threads=threads, mode=mode, precision=precision
        )
        if not isinstance(session, Session):
            raise TypeError(
                f"{adapter.name}: setup() returned {type(session).__name__}; an adapter of plugin "
                f"API {adapter.api_version} returns a harness.api.adapter.Session"
            )
        return session
    warnings.warn(api0_message(adapter), PluginAPIDeprecationWarning, stacklevel=2)
    runtime = call_with_accepted(adapter.setup, device=device, threads=threads, mode=mode)
    return _API0Session(adapter, runtime)


def api0_message(adapter: FrameworkAdapter) -> str:
    """What to tell the author of an adapter that speaks plugin API 0."""
    return (
        f"the {adapter.name!r} adapter speaks plugin API 0 (setup() returns RuntimeInfo and the "
        f"adapter builds): it still works, but will stop in a later harness. Declare "
        f"api_version = 1 or later and return a harness.api.adapter.Session (see {API_CHANGES})"
    )


class _API0Session(Session):
    """An API-0 adapter seen as a session: the adapter builds, and its trainer's
    ``train_epoch`` gets only the arguments it accepts."""

    def __init__(self, adapter: Any, runtime: RuntimeInfo) -> None:
        super().__init__(runtime)
        self._adapter = adapter

    def build(self, task, weights, x, y) -> Trainer:
        return _API0Trainer(self._adapter.build(task, weights, x, y))

    def peak_device_memory_bytes(self) -> int | None:
        return self._adapter.peak_device_memory_bytes()

    def matmul_seconds(self, size: int, repeats: int) -> float:
        return self._adapter.matmul_seconds(size, repeats)


class _API0Trainer:
    """A trainer from an API-0 adapter: ``clock`` reaches ``train_epoch`` only if it takes it."""

    def __init__(self, trainer: Any) -> None:
        self._trainer = trainer

    def train_epoch(self, batch_order: np.ndarray, clock: StepClock | None = None) -> float:
        return call_with_accepted(self._trainer.train_epoch, batch_order, clock=clock)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._trainer, name)
