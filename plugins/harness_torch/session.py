"""The PyTorch session and trainer: what :meth:`harness_torch.adapter.TorchAdapter.setup` returns.

Precision: a ``bfloat16`` cell casts the module (parameters and buffers) to ``torch.bfloat16``,
so Adam's moments, made like each parameter, are bfloat16 too, and stages its inputs in
bfloat16; a ``mixed`` cell keeps everything float32 and runs the forward pass under
``torch.autocast(dtype=torch.bfloat16)`` (no gradient scaler: bfloat16 has float32's range).
Either way the outputs are cast to float32 before the loss, ``predict`` and ``evaluate``
(:class:`harness_torch.model.InPrecision`).

Learning-rate schedule: before each update the trainer sets the optimizer's learning rate to
``task.training.learning_rate(update, len(x))``, the harness's reference, counting updates over
every epoch.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np

from harness.api import Evaluation, RuntimeInfo, Session, UnsupportedSpec


class TorchSession(Session):
    """PyTorch set up for one cell: its device and mode, and what it builds."""

    def __init__(self, runtime: RuntimeInfo, device, mode: str, precision: str = "float32"):
        super().__init__(runtime)
        self.device = device  # a torch.device
        self.mode = mode
        self.precision = precision

    def profiler(self, directory):
        from harness.api import TorchProfiler

        return TorchProfiler(directory)

    def build(self, task, weights, x, y) -> TorchTrainer:
        import torch

        from harness_torch.model import build_model

        loss = task.training.loss
        classifier = loss == "sparse_categorical_crossentropy"
        last = task.model.layers[-1]
        if classifier and (last.kind != "dense" or last.activation != "softmax"):
            raise UnsupportedSpec("sparse categorical cross-entropy needs a final dense softmax")
        # cross-entropy takes logits (log-softmax is steadier than the log of a softmax), so a
        # final softmax leaves the module and predict() applies it
        built = build_model(task.model, weights, fold_final_softmax=classifier)
        model = built.module.to(self.device)
        forward = self._in_precision(model)
        dtypes = {str(parameter.dtype).removeprefix("torch.") for parameter in model.parameters()}
        self.runtime.settings["parameters_dtype_actual"] = ", ".join(sorted(dtypes)) or "none"
        # a bfloat16 model takes bfloat16 inputs, but token ids stay float32: bfloat16 holds
        # integers exactly only up to 256
        tokens = task.model.layers[0].kind == "embedding"
        input_dtype = torch.bfloat16 if self.precision == "bfloat16" and not tokens else None
        optimizer = self._optimizer(task, model)
        step = optimizer.step if optimizer is not None else None
        # padding a smaller last batch would change a batch norm's batch statistics (and its
        # moving ones): such a model runs that batch as it is, a second static graph compiled
        pad = self.mode == "compiled" and not _has_batch_statistics(task)
        if self.mode == "compiled":
            # dynamo's shape guesses are kept per code object, and every model shares
            # nn.Sequential.forward: after several models in one process it would trace sizes
            # such as channel counts as symbols, which inductor fails on for convolutions
            torch.compiler.reset()
            forward = torch.compile(forward, dynamic=None if pad else False)
            if optimizer is not None:
                # left eager, Adam's per-tensor loop of small kernels costs more than
                # compiling the model saves (PyTorch's recipe for a compiled optimizer)
                step = torch.compile(optimizer.step)
        return TorchTrainer(
            model,
            forward,
            optimizer,
            step,
            x,
            y,
            task,
            built.holders,
            built.softmax_folded,
            self.device,
            # a compiled model meeting a smaller last batch would recompile inside the first
            # epoch, for a graph with a symbolic batch size that later batches then run too
            pad_partial_batch=pad,
            input_dtype=input_dtype,
        )

    def _in_precision(self, model) -> Any:
        """What runs ``model`` in the cell's precision (``model`` itself for float32); a
        bfloat16 cell's model is cast in place, buffers too (a batch norm's moving statistics
        and a causal mask: ``module.to`` casts every floating-point tensor)."""
        import torch

        from harness_torch.model import InPrecision

        if self.precision == "bfloat16":
            return InPrecision(model.to(torch.bfloat16), self.device.type, autocast=None)
        if self.precision == "mixed":
            return InPrecision(model, self.device.type, autocast=torch.bfloat16)
        return model

    def _optimizer(self, task, model) -> Any:
        """Adam over the trainable parameters, ``None`` without any (a probe has nothing to
        train); its moments are made like each parameter, so in the parameters' dtype."""
        import torch

        adam = task.training.optimizer
        trainable = [parameter for parameter in model.parameters() if parameter.requires_grad]
        if not trainable:
            return None
        learning_rate: Any = adam.learning_rate
        if task.training.schedule is not None and self.mode == "compiled":
            # the trainer changes it before every update: as a tensor (float64, so it holds
            # the reference's value exactly) it is an input of the compiled step, where a float
            # would be a constant the step is recompiled for when it changes (PyTorch's recipe)
            learning_rate = torch.tensor(adam.learning_rate, dtype=torch.float64)
        return torch.optim.Adam(
            trainable, lr=learning_rate, betas=(adam.beta_1, adam.beta_2), eps=adam.epsilon
        )

    def peak_device_memory_bytes(self) -> int | None:
        import torch

        if self.device.type == "cuda":
            return int(torch.cuda.max_memory_allocated(self.device))
        return None

    def matmul_seconds(self, size: int, repeats: int) -> float:
        import torch

        a = torch.rand(size, size, device=self.device)
        b = torch.rand(size, size, device=self.device)
        _synchronize(self.device)
        start = time.perf_counter()
        for _ in range(repeats):
            c = a @ b
        c.sum().item()
        return time.perf_counter() - start


def _has_batch_statistics(task) -> bool:
    """Whether the model computes with statistics over the batch (a batch norm's)."""
    return any(layer.kind in ("batch_norm", "residual_block") for layer in task.model.layers)


def _synchronize(device) -> None:
    import torch

    if device.type == "cuda":
        torch.cuda.synchronize(device)


class TorchTrainer:
    def __init__(
        self,
        model,
        forward,
        optimizer,
        optimizer_step,
        x: np.ndarray,
        y: np.ndarray,
        task: Any,
        holders: list,
        softmax_folded: bool,
        device,
        pad_partial_batch: bool = False,
        input_dtype=None,
    ) -> None:
        import torch

        self.model = model
        self.forward = forward  # the model, or its torch.compile wrapper
        self.optimizer = optimizer
        self.optimizer_step = optimizer_step  # optimizer.step, or its torch.compile wrapper
        self.task = task
        self.training = task.training
        self.holders = holders  # per task layer, the module holding its weights (or None)
        self.softmax_folded = softmax_folded
        self.device = device
        self.classifier = task.training.loss == "sparse_categorical_crossentropy"
        self.pad_partial_batch = pad_partial_batch
        self.input_dtype = input_dtype or torch.float32  # the dtype inputs are staged in
        self.x = torch.from_numpy(x).to(device, self.input_dtype)
        self.y = torch.from_numpy(y).to(device)
        self.samples = len(x)  # what the schedule's total number of updates is counted from
        self.updates = 0  # optimizer updates so far, over every epoch: the schedule's step

    def _loss(self, output, target, reduction: str = "mean"):
        """The loss; ``reduction="none"`` keeps the target's shape (a loss per label).

        Labels for every step ``(batch, steps)`` meet logits ``(batch, steps, classes)``:
        both are flattened to one label per row, so the mean is over every step of every sample.
        """
        import torch.nn.functional as F

        if self.classifier:
            if target.dim() == 1:  # one label a sample: no reshaping, no extra op in the step
                return F.cross_entropy(output, target, reduction=reduction)
            losses = F.cross_entropy(
                output.reshape(-1, output.shape[-1]), target.reshape(-1), reduction=reduction
            )
            return losses.reshape(target.shape) if reduction == "none" else losses
        # the output is (batch, 1) and the targets (batch,): compare them as (batch,), not
        # broadcast to (batch, batch)
        return F.mse_loss(output.reshape(-1), target, reduction=reduction)

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
            if self.pad_partial_batch and len(index) < batch_size:
                loss = self._padded_loss(index, batch_size)
            else:
                loss = self._loss(self.forward(self.x[index]), self.y[index])
            if self.optimizer is not None:
                self.optimizer.zero_grad(set_to_none=True)
                loss.backward()
                if self.training.schedule is not None:
                    self._set_learning_rate(self.training.learning_rate(self.updates, self.samples))
                self.optimizer_step()
                self.updates += 1
            total += loss.detach()
            if timed:
                _synchronize(self.device)
                clock.record(time.perf_counter() - began)
        return total.item() / (step + 1)  # .item() waits for the device

    def _set_learning_rate(self, value: float) -> None:
        """Set the learning rate of the next update: in place in a compiled step's tensor."""
        import torch

        for group in self.optimizer.param_groups:
            if isinstance(group["lr"], torch.Tensor):
                group["lr"].fill_(value)
            else:
                group["lr"] = value

    def _padded_loss(self, index, batch_size: int):
        """The mean loss of a smaller last batch, run padded to the full batch size (padding
        repeats its first sample and weighs 0), so the compiled model sees one shape only; with
        labels for every step, the mean over every step of the real samples."""
        import torch

        real = len(index)
        padded = torch.cat([index, index[:1].expand(batch_size - real)])
        losses = self._loss(self.forward(self.x[padded]), self.y[padded], reduction="none")
        return losses[:real].mean()

    def _outputs(self, x: np.ndarray):
        """The module's outputs (logits where the softmax is folded), batch by batch."""
        import torch

        self.model.eval()
        batch = self.training.eval_batch_size
        with torch.no_grad():
            for start in range(0, len(x), batch):
                inputs = torch.from_numpy(x[start : start + batch])
                yield start, self.forward(inputs.to(self.device, self.input_dtype))

    def evaluate(self, x: np.ndarray, y: np.ndarray) -> Evaluation:
        import torch

        loss_sum, correct = 0.0, 0
        batch = self.training.eval_batch_size
        for start, output in self._outputs(x):
            target = torch.from_numpy(y[start : start + batch]).to(self.device)
            loss_sum += self._loss(output, target, reduction="sum").item()
            if self.classifier:  # the class axis is the last, one label per step or sample
                correct += int((output.argmax(dim=-1) == target).sum().item())
        labels = y.size  # len(x), or every step of every sample
        return Evaluation(
            loss=loss_sum / labels, accuracy=correct / labels if self.classifier else None
        )

    def predict(self, x: np.ndarray) -> np.ndarray:
        import torch

        outputs = [
            torch.softmax(output, dim=-1) if self.softmax_folded else output
            for _, output in self._outputs(x)
        ]
        return torch.cat(outputs).cpu().numpy().astype(np.float32)

    def weights(self) -> list[dict[str, np.ndarray]]:
        from harness_torch.model import read_weights

        return [
            read_weights(spec, holder)
            for spec, holder in zip(self.task.model.layers, self.holders, strict=True)
        ]

    def parameter_count(self) -> int:
        return sum(p.numel() for p in self.model.parameters() if p.requires_grad)
