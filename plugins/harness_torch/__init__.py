"""PyTorch for harness. Registered through the ``harness`` entry point ``torch``."""

import harness
from harness_torch.adapter import TorchAdapter


@harness.hookimpl
def harness_register_frameworks(register):
    register(TorchAdapter())
