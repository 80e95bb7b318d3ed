"""Training steps in plain numpy (float64): what a plugin's first optimizer steps must match.

Two small models cover the training contract: a dense classifier (relu hidden layer, softmax
output, sparse categorical cross-entropy) and a linear regressor (mean squared error, which
catches an output of shape (n, 1) broadcast against targets of shape (n,)). Gradients are
written out by hand; Adam is the paper's (Kingma & Ba, 2015), as PyTorch and Optax compute it.
"""

from __future__ import annotations

import numpy as np

from harness.workload.tasks import Adam


def _classifier_loss_and_gradients(weights, x, y):
    hidden_in = x @ weights[0]["kernel"] + weights[0]["bias"]
    hidden = np.maximum(hidden_in, 0)
    logits = hidden @ weights[1]["kernel"] + weights[1]["bias"]
    logits -= logits.max(axis=1, keepdims=True)
    probabilities = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    n = len(x)
    loss = -np.log(probabilities[np.arange(n), y]).mean()
    d_logits = probabilities.copy()
    d_logits[np.arange(n), y] -= 1
    d_logits /= n
    d_hidden = (d_logits @ weights[1]["kernel"].T) * (hidden_in > 0)
    gradients = [
        {"kernel": x.T @ d_hidden, "bias": d_hidden.sum(axis=0)},
        {"kernel": hidden.T @ d_logits, "bias": d_logits.sum(axis=0)},
    ]
    return loss, gradients


def _regressor_loss_and_gradients(weights, x, y):
    error = (x @ weights[0]["kernel"] + weights[0]["bias"])[:, 0] - y
    d_output = (2 * error / len(x))[:, None]
    return np.mean(error**2), [{"kernel": x.T @ d_output, "bias": d_output.sum(axis=0)}]


def train(
    kind: str,
    weights: list[dict[str, np.ndarray]],
    x: np.ndarray,
    y: np.ndarray,
    batches: list[np.ndarray],
    adam: Adam,
    learning_rates: list[float] | None = None,
) -> tuple[list[float], list[dict[str, np.ndarray]]]:
    """Train ``kind`` (``"classifier"`` or ``"regressor"``) one batch after another; returns each
    step's loss (before its update, as frameworks report it) and the final weights.

    :param learning_rates: each step's learning rate (a schedule's); ``None``: Adam's, constant
    """
    rates = learning_rates or [adam.learning_rate] * len(batches)
    gradients_of = (
        _classifier_loss_and_gradients if kind == "classifier" else _regressor_loss_and_gradients
    )
    weights = [
        {name: value.astype(np.float64) for name, value in layer.items()} for layer in weights
    ]
    first = [{name: np.zeros_like(value) for name, value in layer.items()} for layer in weights]
    second = [{name: np.zeros_like(value) for name, value in layer.items()} for layer in weights]
    x = x.astype(np.float64)
    losses = []
    for step, (batch, rate) in enumerate(zip(batches, rates, strict=True), start=1):
        loss, gradients = gradients_of(weights, x[batch], y[batch])
        losses.append(float(loss))
        for layer, grads, m, v in zip(weights, gradients, first, second, strict=True):
            for name, g in grads.items():
                m[name] = adam.beta_1 * m[name] + (1 - adam.beta_1) * g
                v[name] = adam.beta_2 * v[name] + (1 - adam.beta_2) * g**2
                m_hat = m[name] / (1 - adam.beta_1**step)
                v_hat = v[name] / (1 - adam.beta_2**step)
                layer[name] = layer[name] - rate * m_hat / (np.sqrt(v_hat) + adam.epsilon)
    return losses, weights
