"""The JAX adapter: a Flax Linen module and an Optax optimizer, one ``jax.jit`` step per batch."""

from __future__ import annotations

import os
from importlib.metadata import version

import numpy as np

from harness.adapter import Evaluation, FrameworkAdapter, RuntimeInfo, UnsupportedSpec


class JaxAdapter(FrameworkAdapter):
    name = "jax"
    import_name = "flax"  # the adapter needs jax, flax and optax; flax brings the other two
    distribution = "jax"
    install_hint = "pip install 'harness[jax]'"

    def devices(self) -> list[str]:
        import jax

        try:
            return ["cpu", "gpu"] if jax.devices("gpu") else ["cpu"]
        except RuntimeError:
            return ["cpu"]

    def setup(self, *, device: str, threads: int) -> RuntimeInfo:
        import jax

        self._device = jax.devices("gpu" if device == "gpu" else "cpu")[0]
        jax.config.update("jax_default_device", self._device)
        settings = {
            "mode": "jit-per-step",
            "precision": "float32",
            # XLA's CPU thread pool is sized by the cores the process may use, which the
            # runner has pinned to `threads`; JAX has no thread-count setting of its own.
            "threads_via": "cpu_affinity",
            "flax_version": version("flax"),
            "optax_version": version("optax"),
        }
        if device == "gpu":
            settings["xla_python_client_preallocate"] = os.environ.get(
                "XLA_PYTHON_CLIENT_PREALLOCATE", "true (default)"
            )
        return RuntimeInfo(device=device, device_name=self._device.device_kind, settings=settings)

    def build(self, task, weights, x, y) -> JaxTrainer:
        import jax
        import jax.numpy as jnp
        import optax

        if task.training.loss != "sparse_categorical_crossentropy" or (
            task.model.layers[-1].activation != "softmax"
        ):
            raise UnsupportedSpec("only softmax outputs with sparse categorical cross-entropy")
        model = _sequential(task.model.layers)
        params = {}
        dense_index = 0
        for spec, layer_weights in zip(task.model.layers, weights, strict=True):
            if spec.kind == "dense":
                params[f"Dense_{dense_index}"] = {
                    "kernel": jnp.asarray(layer_weights["kernel"]),
                    "bias": jnp.asarray(layer_weights["bias"]),
                }
                dense_index += 1
        adam = task.training.optimizer
        optimizer = optax.adam(
            learning_rate=adam.learning_rate, b1=adam.beta_1, b2=adam.beta_2, eps=adam.epsilon
        )

        def loss_fn(params, xb, yb):
            logits = model.apply({"params": params}, xb)
            return optax.softmax_cross_entropy_with_integer_labels(logits, yb).mean()

        @jax.jit
        def train_step(params, opt_state, loss_sum, xb, yb):
            loss, grads = jax.value_and_grad(loss_fn)(params, xb, yb)
            updates, opt_state = optimizer.update(grads, opt_state, params)
            # the epoch's loss is summed on the device: no extra dispatch, no sync per step
            return optax.apply_updates(params, updates), opt_state, loss_sum + loss

        @jax.jit
        def eval_step(params, xb, yb):
            logits = model.apply({"params": params}, xb)
            losses = optax.softmax_cross_entropy_with_integer_labels(logits, yb)
            return losses.sum(), (logits.argmax(axis=-1) == yb).sum()

        return JaxTrainer(
            params=params,
            opt_state=optimizer.init(params),
            x=x,
            y=y.astype(np.int32),
            train_step=train_step,
            eval_step=eval_step,
            training=task.training,
        )

    def peak_device_memory_bytes(self) -> int | None:
        if self._device.platform == "cpu":
            return None
        stats = self._device.memory_stats() or {}
        return stats.get("peak_bytes_in_use")


def _sequential(layer_specs):
    import flax.linen as nn

    for spec in layer_specs:
        if spec.kind not in ("flatten", "dense"):
            raise UnsupportedSpec(f"layer kind {spec.kind!r}")
    # plain tuples: Linen module attributes must be hashable
    layers = tuple(
        (s.kind, getattr(s, "units", 0), getattr(s, "activation", "")) for s in layer_specs
    )

    class Sequential(nn.Module):
        layers: tuple

        @nn.compact
        def __call__(self, x):
            for position, (kind, units, activation) in enumerate(self.layers):
                if kind == "flatten":
                    x = x.reshape((x.shape[0], -1))
                    continue
                x = nn.Dense(units)(x)
                if activation == "relu":
                    x = nn.relu(x)
                elif activation == "softmax" and position < len(self.layers) - 1:
                    x = nn.softmax(x)
                # a final softmax is folded into the loss, which takes logits
            return x

    return Sequential(layers)


class JaxTrainer:
    def __init__(self, *, params, opt_state, x, y, train_step, eval_step, training) -> None:
        self.params = params
        self.opt_state = opt_state
        self.x = x
        self.y = y
        self.train_step = train_step
        self.eval_step = eval_step
        self.training = training

    def train_epoch(self, batch_order: np.ndarray) -> float:
        import jax.numpy as jnp

        batch_size = self.training.batch_size
        loss_sum = jnp.zeros((), jnp.float32)
        steps = 0
        for start in range(0, len(batch_order), batch_size):
            # batches are gathered on the host and transferred, as in Flax's MNIST example
            index = batch_order[start : start + batch_size]
            self.params, self.opt_state, loss_sum = self.train_step(
                self.params, self.opt_state, loss_sum, self.x[index], self.y[index]
            )
            steps += 1
        return float(loss_sum) / steps  # float() waits for the device

    def evaluate(self, x: np.ndarray, y: np.ndarray) -> Evaluation:
        batch = self.training.eval_batch_size
        loss_sum, correct = 0.0, 0
        for start in range(0, len(x), batch):
            batch_loss, batch_correct = self.eval_step(
                self.params, x[start : start + batch], y[start : start + batch].astype(np.int32)
            )
            loss_sum += float(batch_loss)
            correct += int(batch_correct)
        return Evaluation(loss=loss_sum / len(x), accuracy=correct / len(x))
