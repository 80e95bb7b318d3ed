"""Profiling a cell's steps with the framework's own profiler (plugin API 5).

``harness run --profile`` runs, after a cell's timed repeats, one more pass of the cell in a
process of its own: a few steps to warm up, a few timed without the profiler, then the same
number under the framework's profiler, each step marked in the trace. A session that offers
:meth:`harness.api.Session.profiler` returns one of the classes here (or its own
:class:`StepProfiler`); the harness splits each marked step into the same
:data:`CATEGORIES` for every framework.

Each profiler writes the Chrome trace event format (``{"traceEvents": [...]}``, times in
microseconds), which Perfetto UI and ``chrome://tracing`` open, and says which category each
of its events belongs to (:meth:`StepProfiler.category`). Nothing here imports a framework
until a profiler starts.
"""

from __future__ import annotations

import abc
import contextlib
import gzip
import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

#: what a profiled step's time is split into, in the order a report stacks them
CATEGORIES = (
    "matmul",  # matrix products and convolutions
    "other_compute",  # every other operation or kernel: elementwise, reductions, softmax, loss
    "optimizer",  # the optimizer's update, where the framework runs it apart from the step
    "copy",  # input and host-device copies
    "compile",  # compilation or tracing inside the step
    "overhead",  # the step's wall time with no operation running: dispatch, Python, bookkeeping
    "unattributed",  # measured by the harness's clock but outside the profiler's marked step
)

#: which category wins where events of several overlap (another thread, a nested event)
PRIORITY = {
    name: rank
    for rank, name in enumerate(("other_compute", "copy", "optimizer", "matmul", "compile"))
}

#: the name of the event that marks the harness's step ``n``: ``"harness step 3"``
STEP_MARKER = "harness step"
#: the name of the event that marks a whole profiled epoch (for a mode whose steps run as one
#: program, such as a scanned epoch, the only region the harness can mark)
EPOCH_MARKER = "harness epoch"


class StepProfiler(abc.ABC):
    """A framework's profiler around the harness's profiled steps.

    Used as ``with profiler: ... with profiler.region("harness step 3"): <one step> ...``,
    then :meth:`events`. :meth:`region` must leave one complete event of that name in the
    trace, spanning what ran inside it.
    """

    #: what profiled, for the record: ``"torch.profiler"``
    name: str = ""

    def __init__(self, directory: Path) -> None:
        #: a folder of the profile's own, for whatever the profiler writes
        self.directory = Path(directory)

    @abc.abstractmethod
    def __enter__(self) -> StepProfiler: ...

    @abc.abstractmethod
    def __exit__(self, *exc_info: object) -> None: ...

    @abc.abstractmethod
    def region(self, name: str) -> contextlib.AbstractContextManager[Any]:
        """Mark a region named ``name`` in the trace, from entering to leaving."""

    def step(self, number: int) -> contextlib.AbstractContextManager[Any]:
        """Mark the harness's step ``number``: :meth:`region` ``"harness step N"``."""
        return self.region(f"{STEP_MARKER} {number}")

    @abc.abstractmethod
    def events(self) -> list[dict[str, Any]]:
        """The trace's events in the Chrome trace event format (after the profiler stopped)."""

    @abc.abstractmethod
    def category(self, event: dict[str, Any]) -> str | None:
        """The :data:`CATEGORIES` entry of an operation's event; ``None`` for an event that
        is no operation (a marker, a Python function, the profiler's own)."""


def _name_in(name: str, words: tuple[str, ...]) -> bool:
    lowered = name.lower()
    return any(word in lowered for word in words)


# -- PyTorch --------------------------------------------------------------------

_TORCH_MATMUL = ("aten::mm", "aten::addmm", "aten::bmm", "aten::baddbmm", "aten::matmul",
                 "aten::linear", "aten::conv", "aten::_conv", "aten::mkldnn_conv",
                 "aten::convolution", "aten::_scaled_dot", "aten::einsum")  # fmt: skip
_TORCH_COPY = ("aten::copy_", "aten::to", "aten::_to_copy", "aten::index_select",
               "aten::pin_memory", "memcpy", "memcpy htod", "memcpy dtoh")  # fmt: skip


class TorchProfiler(StepProfiler):
    """``torch.profiler`` (CPU, and CUDA kernels on a GPU); steps marked with
    ``record_function``. Categories: ``aten::`` products and convolutions are ``matmul``,
    everything inside ``Optimizer.step`` is ``optimizer``, ``aten::copy_``/``to`` and memcpy
    kernels ``copy``, Dynamo's and Inductor's compile events ``compile``, every other
    ``cpu_op`` or kernel ``other_compute``; autograd's own events (``autograd::…``, the
    ``…Backward0`` nodes) are no operation: their time outside the operations they call is
    overhead."""

    name = "torch.profiler"

    def __enter__(self) -> TorchProfiler:
        import torch

        activities = [torch.profiler.ProfilerActivity.CPU]
        if torch.cuda.is_available():
            activities.append(torch.profiler.ProfilerActivity.CUDA)
        self._profile = torch.profiler.profile(activities=activities)
        self._profile.__enter__()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._profile.__exit__(None, None, None)
        self._path = self.directory / "torch.trace.json"
        self._profile.export_chrome_trace(str(self._path))

    @contextlib.contextmanager
    def region(self, name: str) -> Iterator[None]:
        import torch

        with torch.profiler.record_function(name):
            yield

    def events(self) -> list[dict[str, Any]]:
        return _trace_events(self._path)

    def category(self, event: dict[str, Any]) -> str | None:
        name, kind = str(event.get("name", "")), str(event.get("cat", ""))
        if name.startswith("Optimizer.step") or name.startswith("Optimizer.zero_grad"):
            return "optimizer"
        if _name_in(name, ("torch-compiled region", "cache lookup", "compiledfunction")):
            return None  # a compiled graph's call and Dynamo's guard check, around its ops
        if _name_in(name, ("torchdynamo", "compile_fx", "inductor")):
            return "compile"
        if kind not in ("cpu_op", "kernel", "gpu_memcpy", "gpu_memset"):
            return None
        if name.startswith(("autograd::", "torch::autograd::")) or "Backward" in name:
            return None  # autograd's bookkeeping around the operations it calls
        if kind == "gpu_memcpy" or name.startswith(_TORCH_COPY):
            return "copy"
        if name.startswith(_TORCH_MATMUL) or _name_in(name, _PRODUCTS):
            return "matmul"
        return "other_compute"


def _trace_events(path: Path) -> list[dict[str, Any]]:
    """The complete (``"ph": "X"``) events of a Chrome trace file, gzipped or not."""
    raw = path.read_bytes()
    if raw[:2] == b"\x1f\x8b":
        raw = gzip.decompress(raw)
    data = json.loads(raw)
    events = data.get("traceEvents", []) if isinstance(data, dict) else data
    return [event for event in events if isinstance(event, dict) and event.get("ph") == "X"]


# -- JAX (XLA) --------------------------------------------------------------------


class JaxProfiler(StepProfiler):
    """``jax.profiler`` with a Perfetto trace (Chrome trace JSON); regions marked with
    ``jax.profiler.TraceAnnotation``. Categories: XLA names the event of each operation it
    runs for its instruction (``dot.3``, ``multiply_add_fusion``) and records it as the
    event's ``hlo_op``; those naming a dot or a convolution, and YNNPACK's fusions (mostly
    the dots XLA's CPU backend hands to YNNPACK, sometimes a reduction), are
    ``matmul``; copies, gathers and dynamic slices (a scanned epoch's batches) ``copy``;
    every other instruction ``other_compute``; compilation events ``compile``. The runtime's
    own events (``PjitFunction``, ``CommonPjRtBuffer::Await``, thread-pool bookkeeping) are
    no operation: dispatch and waiting. In a compiled step the optimizer's update is fused
    into the step's instructions and counts as compute, not ``optimizer``."""

    name = "jax.profiler"

    def __enter__(self) -> JaxProfiler:
        import jax

        options = jax.profiler.ProfileOptions()
        options.python_tracer_level = 0  # no event per Python call: Keras's are hundreds a step
        jax.profiler.start_trace(
            str(self.directory), create_perfetto_trace=True, profiler_options=options
        )
        return self

    def __exit__(self, *exc_info: object) -> None:
        import jax

        jax.profiler.stop_trace()

    @contextlib.contextmanager
    def region(self, name: str) -> Iterator[None]:
        import jax

        with jax.profiler.TraceAnnotation(name):
            yield

    def events(self) -> list[dict[str, Any]]:
        [path] = sorted(self.directory.rglob("perfetto_trace.json.gz"))[-1:]
        return _trace_events(path)

    def category(self, event: dict[str, Any]) -> str | None:
        return xla_category(event)


_COMPILE = re.compile(r"compil(e|ation)", re.IGNORECASE)
#: what names a matrix product or a convolution, in any of the three profilers' vocabularies
_PRODUCTS = ("matmul", "dot", "gemm", "einsum", "convolution", "conv1d", "conv2d", "conv3d",
             "depthwiseconv", "aten::conv", "aten::_conv", "mkldnn_conv", "cudnn_conv")  # fmt: skip


def xla_category(event: dict[str, Any]) -> str | None:
    """The category of an event of XLA's profiler (JAX's, or TensorFlow's in ``jit_compile``
    mode): see :class:`JaxProfiler`."""
    name = str(event.get("name", ""))
    if _COMPILE.search(name) and "Executable" not in name:
        return "compile"
    args = event.get("args")
    if not isinstance(args, dict) or "hlo_op" not in args:
        return None  # the runtime's own (dispatch, waits, thread pools) or a marker
    if _name_in(name, _PRODUCTS) or name.startswith("ynn_fusion"):
        return "matmul"  # YNNPACK's fusions: the dots XLA's CPU backend hands to YNNPACK
    if name.startswith("copy") or _name_in(name, ("gather", "dynamic-slice", "transfer")):
        return "copy"
    return "other_compute"


# -- TensorFlow ---------------------------------------------------------------------

#: a TensorFlow op's type, as its executor names the op's event (``_MklMatMul``, ``AddV2``)
_TF_OP = re.compile(r"^_?[A-Z][A-Za-z0-9]*$")
#: events named like an op that are the runtime's: a function call spans its whole graph
_TF_RUNTIME = frozenset(
    ("EagerExecute", "EagerKernelExecute", "FunctionRun", "ExecutorDoneCallback",
     "StatefulPartitionedCall", "PartitionedCall", "ValidateInputTypeAndPlacement")
)  # fmt: skip


class TensorFlowProfiler(StepProfiler):
    """TensorFlow's profiler (``tf.profiler.experimental``), its XSpace turned into Chrome
    trace JSON by TensorFlow's own converter (the ``trace_viewer@`` tool TensorBoard's
    profile plugin uses); regions marked with ``tf.profiler.experimental.Trace``.
    Categories: the executor names each op's event for its type: products and convolutions
    (``_MklMatMul``, ``_MklNativeFusedMatMul``, ``Conv2D``, ``Einsum``) are ``matmul``; the
    input pipeline (``Iterator::…``) and device copies ``copy``; graph building and XLA's
    compilation ``compile``; XLA's instructions in ``jit_compile`` mode as for JAX
    (:func:`xla_category`); every other op ``other_compute``. The optimizer's update runs as
    ops of the step's graph and counts as compute."""

    name = "tensorflow.profiler"

    def __enter__(self) -> TensorFlowProfiler:
        import tensorflow as tf

        tf.profiler.experimental.start(str(self.directory))
        return self

    def __exit__(self, *exc_info: object) -> None:
        import tensorflow as tf

        tf.profiler.experimental.stop()

    @contextlib.contextmanager
    def region(self, name: str) -> Iterator[None]:
        import tensorflow as tf

        with tf.profiler.experimental.Trace(name):
            yield

    def events(self) -> list[dict[str, Any]]:
        from tensorflow.python.profiler.internal import _pywrap_profiler_plugin as converter

        [path] = sorted(self.directory.rglob("*.xplane.pb"))[-1:]
        raw, _ = converter.xspace_to_tools_data([str(path)], "trace_viewer@", {})
        data = json.loads(raw)
        return [e for e in data.get("traceEvents", []) if isinstance(e, dict)]

    def category(self, event: dict[str, Any]) -> str | None:
        name = str(event.get("name", ""))
        if name == "tf.function-graph_building" or (_COMPILE.search(name) and "::" not in name):
            return "compile"
        if name.startswith(("Iterator::", "IteratorGetNext")) or _name_in(
            name, ("copytodevice", "memcpy", "_send", "_recv")
        ):
            return "copy"
        if isinstance(event.get("args"), dict) and "hlo_op" in event["args"]:
            return xla_category(event)  # XLA's instruction, named for its TensorFlow op
        if not _TF_OP.match(name) or name in _TF_RUNTIME:
            return None
        return "matmul" if _name_in(name, _PRODUCTS) else "other_compute"
