"""The PyTorch adapter: an ``nn.Sequential`` trained with ``torch.optim.Adam``.

Modes: ``eager`` (PyTorch's default) and ``compiled`` (the model wrapped in ``torch.compile``).
"""

from __future__ import annotations

import os
import time
from typing import Any

import numpy as np

from harness.adapter import Evaluation, FrameworkAdapter, RuntimeInfo, UnsupportedSpec


class TorchAdapter(FrameworkAdapter):
    name = "torch"
    import_name = "torch"
    distribution = "torch"
    install_hint = "pip install 'harness[torch]'"
    modes = ("eager", "compiled")

    def devices(self) -> list[str]:
        import torch

        return ["cpu", "gpu"] if torch.cuda.is_available() else ["cpu"]

    def setup(self, *, device: str, threads: int, mode: str = "eager") -> RuntimeInfo:
        import torch

        self._mode = mode
        torch.set_num_threads(threads)
        torch.set_num_interop_threads(threads)
        allocator = {}
        if device == "gpu":
            self._device = torch.device("cuda")
            name = torch.cuda.get_device_name(self._device)
            allocator = {
                "pytorch_cuda_alloc_conf": os.environ.get(
                    "PYTORCH_CUDA_ALLOC_CONF", "default (caching allocator)"
                )
            }
        else:
            self._device = torch.device("cpu")
            name = "cpu"
        return RuntimeInfo(
            device=device,
            device_name=name,
            settings={
                "mode": mode,
                **(
                    {"compiler": "torch.compile", "compile_backend": "inductor"}
                    if mode == "compiled"
                    else {}
                ),
                "precision": "float32",
                **allocator,
                "intra_op_threads": torch.get_num_threads(),
                "inter_op_threads": torch.get_num_interop_threads(),
            },
        )

    def build(self, task, weights, x, y) -> TorchTrainer:
        import torch
        from torch import nn

        layers: list[nn.Module] = []
        specs = task.model.layers
        for index, (spec, params) in enumerate(zip(specs, weights, strict=True)):
            if spec.kind == "flatten":
                layers.append(nn.Flatten())
            elif spec.kind == "dense":
                linear = nn.Linear(params["kernel"].shape[0], spec.units)
                with torch.no_grad():
                    linear.weight.copy_(torch.from_numpy(params["kernel"].T.copy()))
                    linear.bias.copy_(torch.from_numpy(params["bias"]))
                layers.append(linear)
                last = index == len(specs) - 1
                if spec.activation == "relu":
                    layers.append(nn.ReLU())
                elif spec.activation == "softmax" and not last:
                    layers.append(nn.Softmax(dim=-1))
                # a final softmax is folded into the loss: CrossEntropyLoss takes logits
            else:
                raise UnsupportedSpec(f"layer kind {spec.kind!r}")
        if (
            task.training.loss != "sparse_categorical_crossentropy"
            or specs[-1].activation != "softmax"
        ):
            raise UnsupportedSpec("only softmax outputs with sparse categorical cross-entropy")
        model = nn.Sequential(*layers).to(self._device)
        adam = task.training.optimizer
        optimizer = torch.optim.Adam(
            model.parameters(),
            lr=adam.learning_rate,
            betas=(adam.beta_1, adam.beta_2),
            eps=adam.epsilon,
        )
        forward = torch.compile(model) if self._mode == "compiled" else model
        return TorchTrainer(model, forward, optimizer, x, y, task.training, self._device)

    def peak_device_memory_bytes(self) -> int | None:
        import torch

        if self._device.type == "cuda":
            return int(torch.cuda.max_memory_allocated(self._device))
        return None

    def matmul_seconds(self, size: int, repeats: int) -> float:
        import torch

        a = torch.rand(size, size, device=self._device)
        b = torch.rand(size, size, device=self._device)
        _synchronize(self._device)
        start = time.perf_counter()
        for _ in range(repeats):
            c = a @ b
        c.sum().item()
        return time.perf_counter() - start


def _synchronize(device) -> None:
    import torch

    if device.type == "cuda":
        torch.cuda.synchronize(device)


class TorchTrainer:
    def __init__(
        self, model, forward, optimizer, x: np.ndarray, y: np.ndarray, training: Any, device
    ) -> None:
        import torch

        self.model = model
        self.forward = forward  # the model, or its torch.compile wrapper
        self.optimizer = optimizer
        self.training = training
        self.device = device
        self.loss_fn = torch.nn.CrossEntropyLoss()
        self.x = torch.from_numpy(x).to(device)
        self.y = torch.from_numpy(y).to(device)

    def train_epoch(self, batch_order: np.ndarray, clock=None) -> float:
        import torch

        self.model.train()
        order = torch.from_numpy(batch_order).to(self.device)
        batch_size = self.training.batch_size
        total = torch.zeros((), device=self.device)
        for step, start in enumerate(range(0, len(order), batch_size)):
            timed = clock is not None and clock.wants(step)
            if timed:
                _synchronize(self.device)
                began = time.perf_counter()
            index = order[start : start + batch_size]
            self.optimizer.zero_grad(set_to_none=True)
            loss = self.loss_fn(self.forward(self.x[index]), self.y[index])
            loss.backward()
            self.optimizer.step()
            total += loss.detach()
            if timed:
                _synchronize(self.device)
                clock.record(time.perf_counter() - began)
        return total.item() / (step + 1)  # .item() waits for the device

    def evaluate(self, x: np.ndarray, y: np.ndarray) -> Evaluation:
        import torch

        self.model.eval()
        loss_sum, correct = 0.0, 0
        batch = self.training.eval_batch_size
        with torch.no_grad():
            for start in range(0, len(x), batch):
                xb = torch.from_numpy(x[start : start + batch]).to(self.device)
                yb = torch.from_numpy(y[start : start + batch]).to(self.device)
                logits = self.forward(xb)
                loss_sum += torch.nn.functional.cross_entropy(logits, yb, reduction="sum").item()
                correct += int((logits.argmax(dim=1) == yb).sum().item())
        return Evaluation(loss=loss_sum / len(x), accuracy=correct / len(x))
