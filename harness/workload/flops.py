"""FLOPs of a training step, from the task spec alone (a formula per layer kind).

Counts multiply-adds as two FLOPs. A training step costs about three forward passes: the
forward pass itself, and a backward pass that computes gradients with respect to both the
inputs and the weights (each as expensive as the forward matrix products). Elementwise work
(activations, the loss, the optimizer update) is small next to the matrix products and left out,
as is usual for model-FLOP-utilisation figures.
"""

from __future__ import annotations

from harness.workload.fairness import GATES
from harness.workload.tasks import (
    GRU,
    LSTM,
    Conv2D,
    Dense,
    ResidualBlock,
    SimpleRNN,
    Task,
    TransformerEncoder,
)

#: forward + backward (gradients for inputs and for weights)
TRAINING_MULTIPLIER = 3


def forward_flops_per_sample(task: Task) -> int:
    """FLOPs of one sample's forward pass through the task's model."""
    model = task.model
    total = 0
    for layer, in_shape, out_shape in zip(
        model.layers, model.input_shapes(), model.output_shapes(), strict=True
    ):
        if isinstance(layer, Dense):
            steps = in_shape[0] if len(in_shape) == 2 else 1  # the same product at every step
            total += (
                2 * steps * in_shape[-1] * layer.units
            )  # the matrix product (bias adds left out)
        elif isinstance(layer, Conv2D):
            kh, kw = layer.kernel_size
            total += 2 * out_shape[0] * out_shape[1] * layer.filters * kh * kw * in_shape[2]
        elif isinstance(layer, SimpleRNN | LSTM | GRU):
            steps, features = in_shape
            width = GATES[layer.kind] * layer.units
            total += 2 * steps * (features + layer.units) * width  # input and recurrent products
        elif isinstance(layer, TransformerEncoder):
            total += encoder_flops(layer, *in_shape)
        elif isinstance(layer, ResidualBlock):
            total += residual_flops(layer, in_shape, out_shape)
    return total


def residual_flops(
    layer: ResidualBlock, in_shape: tuple[int, ...], out_shape: tuple[int, ...]
) -> int:
    """A residual block on one sample: its two 3x3 convolutions and, with a projection, the
    1x1 one. Batch norms, ReLUs and the addition are elementwise and left out."""
    height, width, filters = out_shape
    positions = height * width
    total = 2 * positions * filters * 9 * in_shape[2] + 2 * positions * filters * 9 * filters
    if layer.projects(in_shape[2]):
        total += 2 * positions * filters * in_shape[2]
    return total


def encoder_flops(layer: TransformerEncoder, steps: int, width: int) -> int:
    """A Transformer encoder block on one sample: the Q, K, V and output projections, the
    attention's two products (``Q K^T`` and the probabilities times ``V``) and the MLP's two
    dense layers. Layer norms, the softmax and GELU are elementwise and left out."""
    inner = layer.heads * layer.key_dim
    projections = 2 * steps * width * inner * 4  # query, key, value, and the output back
    # scores Q K^T, then probabilities @ V; a causal block's masked half is counted too, as
    # the frameworks compute it (the mask is applied to full score matrices)
    attention = 2 * steps * steps * inner * 2
    mlp = 2 * steps * width * layer.mlp_units * 2
    return projections + attention + mlp


def training_flops(task: Task, samples: int) -> int:
    """FLOPs of training on ``samples`` samples (one epoch over them, say)."""
    return TRAINING_MULTIPLIER * forward_flops_per_sample(task) * samples
