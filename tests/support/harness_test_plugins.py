"""Frameworks that misbehave on purpose, for the runner's isolation tests.

Loaded in the test's ``harness`` processes through ``HARNESS_PLUGINS=harness_test_plugins``.
``centroid`` is a well-behaved numpy "framework" (a nearest-class-mean classifier), and each
of the others fails in one particular way during training.

Most of them are written against plugin API 0 (``setup`` returns ``RuntimeInfo``, the adapter
builds), so the suite keeps exercising what an older third-party plugin does; ``sloppy`` and
``padded`` wrap the built-in PyTorch adapter and speak API 1.
"""

from __future__ import annotations

import os
import signal
import tempfile
import time

import numpy as np

import harness
from harness.api.adapter import Availability, Evaluation, FrameworkAdapter, RuntimeInfo, Session


class CentroidTrainer:
    def __init__(self, x: np.ndarray, y: np.ndarray, classes: int) -> None:
        self.x = x.reshape(len(x), -1)
        self.y = y
        self.centroids = np.zeros((classes, self.x.shape[1]), dtype=np.float32)

    def train_epoch(self, batch_order: np.ndarray) -> float:
        for label in range(len(self.centroids)):
            self.centroids[label] = self.x[self.y == label].mean(axis=0)
        return float(self._distances(self.x).min(axis=1).mean())

    def evaluate(self, x: np.ndarray, y: np.ndarray) -> Evaluation:
        distances = self._distances(x.reshape(len(x), -1))
        return Evaluation(
            loss=float(distances.min(axis=1).mean()),
            accuracy=float((distances.argmin(axis=1) == y).mean()),
        )

    def _distances(self, x: np.ndarray) -> np.ndarray:
        return ((x[:, None, :] - self.centroids[None]) ** 2).sum(axis=2)


class CentroidAdapter(FrameworkAdapter):
    name = "centroid"
    import_name = "numpy"
    distribution = "numpy"

    def devices(self):
        return ["cpu"]

    def setup(self, *, device, threads):
        return RuntimeInfo(device=device, device_name="cpu", settings={"mode": "numpy"})

    def build(self, task, weights, x, y):
        return CentroidTrainer(x, y, task.model.layers[-1].units)


class TempFolderAdapter(CentroidAdapter):
    """Reports the temporary folder its cell got, whether it started empty, and leaves a file
    there, as a compiler's cache would."""

    name = "tempfolder"

    def setup(self, *, device, threads):
        folder = tempfile.gettempdir()
        empty = not os.listdir(folder)
        with open(os.path.join(folder, "cache-entry"), "w") as handle:
            handle.write("compiled kernels")
        settings = {"mode": "numpy", "tmpdir": folder, "tmpdir_was_empty": empty}
        return RuntimeInfo(device=device, device_name="cpu", settings=settings)


class RaisingTrainer(CentroidTrainer):
    def train_epoch(self, batch_order):
        raise ValueError("loss went sideways")


class RaisingAdapter(CentroidAdapter):
    name = "raises"

    def build(self, task, weights, x, y):
        return RaisingTrainer(x, y, 10)


class MarkupTrainer(CentroidTrainer):
    def train_epoch(self, batch_order):
        raise ValueError("<script>alert('from a plugin')</script>")


class MarkupAdapter(CentroidAdapter):
    """Fails with markup in its message: reports must show it as text."""

    name = "markup"

    def build(self, task, weights, x, y):
        return MarkupTrainer(x, y, 10)


class SegfaultAdapter(CentroidAdapter):
    name = "segfaults"

    def build(self, task, weights, x, y):
        os.kill(os.getpid(), signal.SIGSEGV)


class HangingAdapter(CentroidAdapter):
    name = "hangs"

    def build(self, task, weights, x, y):
        time.sleep(3600)


class ImportErrorAdapter(CentroidAdapter):
    name = "imports"

    def setup(self, *, device, threads):
        import harness_no_such_framework  # noqa: F401

        return super().setup(device=device, threads=threads)


class NanTrainer(CentroidTrainer):
    epochs = 0

    def train_epoch(self, batch_order):
        NanTrainer.epochs += 1
        print(f"epoch {NanTrainer.epochs}", flush=True)
        return float("nan")


class NanAdapter(CentroidAdapter):
    name = "nan"

    def build(self, task, weights, x, y):
        return NanTrainer(x, y, 10)


class MemoryHogAdapter(CentroidAdapter):
    """Allocates (and touches) 64 MiB at a time, up to 8 GiB."""

    name = "hog"

    def build(self, task, weights, x, y):
        hoard = []
        for _ in range(128):
            hoard.append(np.ones(64 * 2**20, dtype=np.uint8))
            time.sleep(0.02)
        return CentroidTrainer(x, y, 10)


class SlowAdapter(CentroidAdapter):
    """Sleeps ``HARNESS_TEST_SLOW_SECONDS`` (default 60) before building."""

    name = "slow"

    def build(self, task, weights, x, y):
        time.sleep(float(os.environ.get("HARNESS_TEST_SLOW_SECONDS", "60")))
        return super().build(task, weights, x, y)


class ParentKillerAdapter(CentroidAdapter):
    """Kills the process that started the cell: under Ray, the worker running the cell's task,
    as when a node is lost. (Never run it with the local executor: that parent is the runner.)"""

    name = "kills-parent"

    def build(self, task, weights, x, y):
        os.kill(os.getppid(), signal.SIGKILL)
        time.sleep(60)


class MissingAdapter(CentroidAdapter):
    name = "missing"

    def availability(self):
        return Availability(False, "missingfw is not installed: pip install missingfw")


class TweakedSession(Session):
    """A built-in session whose ``build`` goes through the adapter's ``tweaked_build``."""

    def __init__(self, inner: Session, tweaked_build) -> None:
        super().__init__(inner.runtime)
        self.inner = inner
        self.tweaked_build = tweaked_build

    def build(self, task, weights, x, y):
        return self.tweaked_build(self.inner, task, weights, x, y)


class SloppyTorchAdapter(FrameworkAdapter):
    """The built-in PyTorch adapter with a learning rate 2 % off: a subtly different training
    run that only a cross-framework check would notice."""

    name = "sloppy"
    import_name = "torch"
    distribution = "torch"
    api_version = 1

    def __init__(self) -> None:
        from harness_torch.adapter import TorchAdapter

        self.inner = TorchAdapter()

    def devices(self):
        return ["cpu"]

    def setup(self, *, device, threads, mode="eager"):
        inner = self.inner.setup(device=device, threads=threads, mode=mode)
        return TweakedSession(inner, self.tweaked_build)

    @staticmethod
    def tweaked_build(inner, task, weights, x, y):
        adam = task.training.optimizer
        faster = adam.model_copy(update={"learning_rate": adam.learning_rate * 1.02})
        training = task.training.model_copy(update={"optimizer": faster})
        return inner.build(task.model_copy(update={"training": training}), weights, x, y)


class PaddedTorchAdapter(SloppyTorchAdapter):
    """Reports ten parameters more than the task has, like a plugin that added a layer's bias."""

    name = "padded"

    @staticmethod
    def tweaked_build(inner, task, weights, x, y):
        trainer = inner.build(task, weights, x, y)
        counted = trainer.parameter_count()
        trainer.parameter_count = lambda: counted + 10
        return trainer


class RichMarkupTrainer(CentroidTrainer):
    def train_epoch(self, batch_order):
        raise ValueError("[/] closed nothing [bold]; pip install 'harness[jax]' [link=x]y[/link]")


class RichMarkupAdapter(CentroidAdapter):
    """Fails with rich markup in its message: the terminal must print it as text, not style."""

    name = "richmarkup"

    def build(self, task, weights, x, y):
        return RichMarkupTrainer(x, y, 10)


@harness.hookimpl
def harness_register_frameworks(register):
    for adapter in (
        CentroidAdapter,
        TempFolderAdapter,
        RaisingAdapter,
        MarkupAdapter,
        SegfaultAdapter,
        HangingAdapter,
        ImportErrorAdapter,
        NanAdapter,
        MemoryHogAdapter,
        SlowAdapter,
        ParentKillerAdapter,
        MissingAdapter,
        SloppyTorchAdapter,
        PaddedTorchAdapter,
        RichMarkupAdapter,
    ):
        register(adapter())


# -- appended: frameworks that decline a task ------------------------------------------------


class DecliningAdapter(CentroidAdapter):
    """Declines every task with :class:`UnsupportedSpec`, as a plugin does for a model it can't
    express: its cells are skipped, and the agreement check leaves it out."""

    name = "declines"

    def build(self, task, weights, x, y):
        from harness.api.adapter import UnsupportedSpec

        raise UnsupportedSpec(f"{self.name} can't express {task.name}'s model")


class ModulesTrainer(CentroidTrainer):
    def train_epoch(self, batch_order):
        import sys

        heavy = [
            name for name in ("pandas", "scipy", "matplotlib", "jinja2") if name in sys.modules
        ]
        raise RuntimeError(f"modules loaded in the cell: {heavy}")


class ModulesAdapter(CentroidAdapter):
    """Fails with the list of heavy libraries its cell's process has imported."""

    name = "modules"

    def build(self, task, weights, x, y):
        return ModulesTrainer(x, y, 10)


def _registering_also(registered_above, *adapters):
    """The hook above, plus ``adapters``: lets frameworks be appended without editing its list."""

    @harness.hookimpl
    def harness_register_frameworks(register):
        registered_above(register)
        for adapter in adapters:
            register(adapter())

    return harness_register_frameworks


class SpinTrainer(CentroidTrainer):
    """Spends a fixed amount of CPU work per epoch (about a second on a quiet core)."""

    def train_epoch(self, batch_order):
        total = 0
        for step in range(int(os.environ.get("HARNESS_TEST_SPIN", "15000000"))):
            total += step & 7
        return super().train_epoch(batch_order)


class SpinAdapter(CentroidAdapter):
    """CPU-bound epochs of a fixed amount of work: slower when other processes take the CPU."""

    name = "spin"

    def build(self, task, weights, x, y):
        return SpinTrainer(x, y, task.model.layers[-1].units)


harness_register_frameworks = _registering_also(
    harness_register_frameworks, DecliningAdapter, ModulesAdapter, SpinAdapter
)


# -- appended: transformer blocks computed wrongly, for the conformance kit's layer checks ----


def _encoder_blocks(trainer):
    import torch

    return [m for m in trainer.model.modules() if isinstance(m, torch.nn.TransformerEncoderLayer)]


class TanhGeluTorchAdapter(SloppyTorchAdapter):
    """The built-in PyTorch adapter with GELU's tanh approximation in its encoder blocks, where
    the task specifies the exact (erf) form: close, but not what the task computes."""

    name = "tanh_gelu"

    @staticmethod
    def tweaked_build(inner, task, weights, x, y):
        import functools

        import torch.nn.functional as F

        trainer = inner.build(task, weights, x, y)
        for block in _encoder_blocks(trainer):
            block.activation = functools.partial(F.gelu, approximate="tanh")
            block.activation_relu_or_gelu = 0  # else the fused inference path keeps exact GELU
        return trainer


class PostNormTorchAdapter(SloppyTorchAdapter):
    """The built-in PyTorch adapter with post-norm encoder blocks (``LN(x + MHA(x))``, the
    original Transformer's) where the task specifies pre-norm (``x + MHA(LN(x))``)."""

    name = "post_norm"

    @staticmethod
    def tweaked_build(inner, task, weights, x, y):
        trainer = inner.build(task, weights, x, y)
        for block in _encoder_blocks(trainer):
            block.norm_first = False
        return trainer


harness_register_frameworks = _registering_also(
    harness_register_frameworks, TanhGeluTorchAdapter, PostNormTorchAdapter
)


class StoppedOnceAdapter(CentroidAdapter):
    """At batch size 64, its cell's process sends itself ``HARNESS_TEST_STOP_SIGNAL`` (TERM by
    default) the first time, as ``kill`` or ``pkill`` from outside would; it leaves
    ``HARNESS_TEST_STOP_MARKER`` behind, so a second run (``--resume``) trains."""

    name = "stopped-once"

    def build(self, task, weights, x, y):
        marker = os.environ["HARNESS_TEST_STOP_MARKER"]
        if task.training.batch_size == 64 and not os.path.exists(marker):
            open(marker, "w").close()
            stop = getattr(signal, "SIG" + os.environ.get("HARNESS_TEST_STOP_SIGNAL", "TERM"))
            # as a process with the default handler gets it (a suite started in the
            # background, `pytest &`, hands its children SIGINT ignored)
            signal.signal(stop, signal.SIG_DFL)
            os.kill(os.getpid(), stop)
            time.sleep(60)
        return super().build(task, weights, x, y)


harness_register_frameworks = _registering_also(harness_register_frameworks, StoppedOnceAdapter)


# -- appended: a batch norm with PyTorch's momentum convention, for the moving-statistics check --


class TorchMomentumAdapter(SloppyTorchAdapter):
    """The built-in PyTorch adapter with the task's momentum passed through as PyTorch's own
    (``nn.BatchNorm``'s share of the new value): ``moving = (1 - m) * moving + m * batch``,
    where the task keeps ``m`` of the old statistics. Outputs and parameters are right; only
    the moving statistics drift."""

    name = "torch_momentum"
    api_version = 2

    @staticmethod
    def tweaked_build(inner, task, weights, x, y):
        from harness_torch.model import _BatchNorm

        trainer = inner.build(task, weights, x, y)
        for module in trainer.model.modules():
            if isinstance(module, _BatchNorm):
                # its update keeps `momentum` of the old value: keep PyTorch's 1 - m instead
                module.momentum = 1 - module.momentum
        return trainer


harness_register_frameworks = _registering_also(harness_register_frameworks, TorchMomentumAdapter)


# -- appended: a decoder block without its causal mask, for the kit's probe -------------------


class TorchNoCausalMaskAdapter(SloppyTorchAdapter):
    """The built-in PyTorch adapter building every causal transformer block without its mask,
    as a plugin that doesn't read ``causal`` would: parameters and shapes are right, and the
    last step's output too (it sees every step either way); every other step sees the future."""

    name = "torch_nocausal"
    api_version = 3

    @staticmethod
    def tweaked_build(inner, task, weights, x, y):
        layers = [
            layer.model_copy(update={"causal": False})
            if layer.kind == "transformer_encoder"
            else layer
            for layer in task.model.layers
        ]
        model = task.model.model_copy(update={"layers": layers})
        return inner.build(task.model_copy(update={"model": model}), weights, x, y)


harness_register_frameworks = _registering_also(
    harness_register_frameworks, TorchNoCausalMaskAdapter
)


# -- appended: precisions (plugin API 4) -------------------------------------------------------


class PrecisionTrainer(CentroidTrainer):
    def train_epoch(self, batch_order, clock=None):  # API 1 and later are handed a clock
        return super().train_epoch(batch_order)


class PrecisionSession(Session):
    """A centroid session that reports the precision it was set up in, as API 4 asks."""

    def build(self, task, weights, x, y):
        return PrecisionTrainer(x, y, task.model.layers[-1].units)


class PrecisionAdapter(CentroidAdapter):
    """The centroid "framework" at plugin API 4 in every precision: its manifest says what each
    one means, as a real plugin's helper would report it."""

    name = "centroid_precise"
    api_version = 4
    modes = ("eager",)
    precisions = ("float32", "bfloat16", "mixed")

    def setup(self, *, device, threads, mode="eager", precision="float32"):
        from harness.api.precision import manifest

        runtime = RuntimeInfo(
            device, "cpu", {"mode": "numpy"}, precision=manifest(precision, tf32=False)
        )
        return PrecisionSession(runtime)


harness_register_frameworks = _registering_also(harness_register_frameworks, PrecisionAdapter)


class RoundingTorchAdapter(SloppyTorchAdapter):
    """The built-in PyTorch adapter whose float32 cell computes in bfloat16 while reporting
    float32, like a plugin that leaves a framework's reduced-precision default on (TF32 on a
    GPU): the kit's float32 product catches it."""

    name = "torch_rounding"
    api_version = 4

    def setup(self, *, device, threads, mode="eager", precision="float32"):
        inner = self.inner.setup(device=device, threads=threads, mode=mode, precision="mixed")
        inner.runtime.precision.update(precision="float32", compute="float32", tf32=False)
        return TweakedSession(inner, self.tweaked_build)

    @staticmethod
    def tweaked_build(inner, task, weights, x, y):
        return inner.build(task, weights, x, y)


harness_register_frameworks = _registering_also(harness_register_frameworks, RoundingTorchAdapter)


# -- appended: a profiler that marks nothing, for the kit's profiling check -------------------


class UnmarkedProfilerSession(TweakedSession):
    """The PyTorch session whose profiler leaves no step marker in its trace, as a plugin's
    own profiler that forgot ``region`` would."""

    def profiler(self, directory):
        import contextlib

        from harness.api import TorchProfiler

        class Unmarked(TorchProfiler):
            def region(self, name):
                return contextlib.nullcontext()

        return Unmarked(directory)


class UnmarkedProfilerAdapter(SloppyTorchAdapter):
    name = "torch_unmarked"

    def setup(self, *, device, threads, mode="eager"):
        inner = self.inner.setup(device=device, threads=threads, mode=mode)
        return UnmarkedProfilerSession(inner, lambda inner, *args: inner.build(*args))


harness_register_frameworks = _registering_also(
    harness_register_frameworks, UnmarkedProfilerAdapter
)
