"""The JAX adapter: a Flax Linen module and an Optax optimizer.

Modes: ``eager`` dispatches one ``jax.jit``-compiled step per batch from Python (as Flax's MNIST
example does); ``compiled`` compiles a whole epoch's steps into one program with ``lax.scan``.
"""

from __future__ import annotations

import os
import time
from importlib.metadata import version

import numpy as np

from harness.adapter import Evaluation, FrameworkAdapter, RuntimeInfo, UnsupportedSpec


class JaxAdapter(FrameworkAdapter):
    name = "jax"
    import_name = "flax"  # the adapter needs jax, flax and optax; flax brings the other two
    distribution = "jax"
    install_hint = "pip install 'harness[jax]'"
    modes = ("eager", "compiled")

    def devices(self) -> list[str]:
        import jax

        try:
            return ["cpu", "gpu"] if jax.devices("gpu") else ["cpu"]
        except RuntimeError:
            return ["cpu"]

    def setup(self, *, device: str, threads: int, mode: str = "eager") -> RuntimeInfo:
        import jax

        self._mode = mode
        self._device = jax.devices("gpu" if device == "gpu" else "cpu")[0]
        jax.config.update("jax_default_device", self._device)
        settings = {
            "mode": mode,
            "compiled_unit": "epoch (lax.scan)" if mode == "compiled" else "step (jax.jit)",
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
        def train_steps(params, opt_state, loss_sum, x_all, y_all, batches):
            """Every full batch of an epoch as one program: a scan over the batch indices."""

            def body(carry, index):
                params, opt_state, loss_sum = carry
                loss, grads = jax.value_and_grad(loss_fn)(params, x_all[index], y_all[index])
                updates, opt_state = optimizer.update(grads, opt_state, params)
                return (optax.apply_updates(params, updates), opt_state, loss_sum + loss), None

            return jax.lax.scan(body, (params, opt_state, loss_sum), batches)[0]

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
            train_steps=train_steps if self._mode == "compiled" else None,
            eval_step=eval_step,
            training=task.training,
        )

    def peak_device_memory_bytes(self) -> int | None:
        if self._device.platform == "cpu":
            return None
        stats = self._device.memory_stats() or {}
        return stats.get("peak_bytes_in_use")

    def matmul_seconds(self, size: int, repeats: int) -> float:
        import jax
        import jax.numpy as jnp

        a = jax.random.uniform(jax.random.key(0), (size, size), jnp.float32)
        b = jax.random.uniform(jax.random.key(1), (size, size), jnp.float32)
        matmul = jax.jit(jnp.matmul)
        matmul(a, b).block_until_ready()
        start = time.perf_counter()
        for _ in range(repeats):
            c = matmul(a, b)
        c.block_until_ready()
        return time.perf_counter() - start


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
    def __init__(
        self, *, params, opt_state, x, y, train_step, train_steps, eval_step, training
    ) -> None:
        self.params = params
        self.opt_state = opt_state
        self.x = x
        self.y = y
        self.train_step = train_step
        self.train_steps = train_steps  # set in compiled mode
        self.eval_step = eval_step
        self.training = training
        if train_steps is not None:
            import jax

            # a scanned epoch gathers its batches on the device, so the data lives there
            self.x_device, self.y_device = jax.device_put(x), jax.device_put(y)

    def train_epoch(self, batch_order: np.ndarray, clock=None) -> float:
        import jax.numpy as jnp

        batch_size = self.training.batch_size
        loss_sum = jnp.zeros((), jnp.float32)
        steps = -(-len(batch_order) // batch_size)
        first = 0
        if self.train_steps is not None:
            # one program for every full batch; a last, smaller batch goes through train_step
            first = len(batch_order) // batch_size
            batches = batch_order[: first * batch_size].astype(np.int32).reshape(first, batch_size)
            self.params, self.opt_state, loss_sum = self.train_steps(
                self.params, self.opt_state, loss_sum, self.x_device, self.y_device, batches
            )
            clock = None  # single steps of a scanned epoch can't be timed
        for step in range(first, steps):
            timed = clock is not None and clock.wants(step)
            if timed:
                loss_sum.block_until_ready()
                began = time.perf_counter()
            # batches are gathered on the host and transferred, as in Flax's MNIST example
            index = batch_order[step * batch_size : (step + 1) * batch_size]
            self.params, self.opt_state, loss_sum = self.train_step(
                self.params, self.opt_state, loss_sum, self.x[index], self.y[index]
            )
            if timed:
                loss_sum.block_until_ready()
                clock.record(time.perf_counter() - began)
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
