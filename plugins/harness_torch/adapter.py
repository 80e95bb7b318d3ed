"""The PyTorch adapter: an ``nn.Sequential`` (see :mod:`harness_torch.model`) trained with
``torch.optim.Adam``.

Modes: ``eager`` (PyTorch's default) and ``compiled``: the model and the optimizer's step each
wrapped in ``torch.compile``, so that, as in the other frameworks' compiled modes, the whole
training step runs compiled (the backward pass through AOTAutograd's compiled graph).

Precisions (plugin API 4): ``float32`` with TF32 and oneDNN's reduced-precision maths off;
``bfloat16``, the module, and so Adam's moments, cast to ``torch.bfloat16``; ``mixed``, float32
parameters and a forward pass under ``torch.autocast(dtype=torch.bfloat16)``. The loss is
float32 in each (:mod:`harness_torch.session`).

The adapter's module imports nothing heavy: ``harness list`` imports it to show the framework.
What trains (the session and its trainer) lives in :mod:`harness_torch.session`, imported by
``setup``.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import shutil
import tempfile
from typing import TYPE_CHECKING

from harness.api import FrameworkAdapter, RuntimeInfo

if TYPE_CHECKING:
    from harness_torch.session import TorchSession


class TorchAdapter(FrameworkAdapter):
    name = "torch"
    import_name = "torch"
    distribution = "torch"
    install_hint = "pip install 'harness[torch]'"
    modes = ("eager", "compiled")
    precisions = ("float32", "bfloat16", "mixed")
    # builds the ResNet layers (API 2) and a language model's (API 3); setup takes a precision
    api_version = 4

    def devices(self) -> list[str]:
        import torch

        return ["cpu", "gpu"] if torch.cuda.is_available() else ["cpu"]

    def setup(
        self, *, device: str, threads: int, mode: str = "eager", precision: str = "float32"
    ) -> TorchSession:
        import torch

        from harness.api import precision as framework_precision

        torch.set_num_threads(threads)
        if torch.get_num_interop_threads() != threads:
            # torch takes it once per process, before any parallel work: a later session in
            # the same process (the inline executor's next cell) keeps the pool it has, and
            # runtime.settings records that count
            with contextlib.suppress(RuntimeError):
                torch.set_num_interop_threads(threads)
        # float32 means float32: cuDNN convolutions would otherwise use TF32 tensor cores, and
        # oneDNN may be allowed bfloat16 maths for float32 products
        manifest = framework_precision.torch_settings(torch, precision)
        manifest["autocast"] = "bfloat16" if precision == "mixed" else "off"
        manifest["loss"] = "float32"
        allocator = {}
        if device == "gpu":
            torch_device = torch.device("cuda")
            name = torch.cuda.get_device_name(torch_device)
            allocator = {
                "tf32": manifest["tf32"],
                "pytorch_cuda_alloc_conf": os.environ.get(
                    "PYTORCH_CUDA_ALLOC_CONF", "default (caching allocator)"
                ),
            }
        else:
            torch_device = torch.device("cpu")
            name = "cpu"
        runtime = RuntimeInfo(
            device=device,
            device_name=name,
            settings={
                "mode": mode,
                **(
                    {
                        "compiler": "torch.compile",
                        "compile_backend": "inductor",
                        "compiled_unit": "model and optimizer step (torch.compile each)",
                        "compile_cache": _fresh_compile_cache(device),
                    }
                    if mode == "compiled"
                    else {}
                ),
                "precision": precision,
                **allocator,
                "intra_op_threads": torch.get_num_threads(),
                "inter_op_threads": torch.get_num_interop_threads(),
            },
            precision=manifest,
        )
        from harness_torch.session import TorchSession

        return TorchSession(runtime, torch_device, mode, precision)


def _fresh_compile_cache(device: str) -> str:
    """Point torch.compile's on-disk caches at a new, empty folder, unless the user chose one.

    Inductor keeps compiled kernels in a folder shared by every process (and Triton too, on a
    GPU), so a cell would compile in 4 s instead of 15 s because an earlier cell or run had
    compiled the same graphs: its first epoch would measure the machine's history.
    """
    if os.environ.get("TORCHINDUCTOR_CACHE_DIR"):
        return f"TORCHINDUCTOR_CACHE_DIR={os.environ['TORCHINDUCTOR_CACHE_DIR']} (may be warm)"
    folder = tempfile.mkdtemp(prefix="harness-torch-compile-")
    atexit.register(shutil.rmtree, folder, ignore_errors=True)
    os.environ["TORCHINDUCTOR_CACHE_DIR"] = os.path.join(folder, "inductor")
    if device == "gpu" and not os.environ.get("TRITON_CACHE_DIR"):
        os.environ["TRITON_CACHE_DIR"] = os.path.join(folder, "triton")
    return "empty at the start of the cell"
