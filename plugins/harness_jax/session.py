"""The JAX session and trainer: what :meth:`harness_jax.adapter.JaxAdapter.setup` returns."""

from __future__ import annotations

import time

import numpy as np

from harness.api import Evaluation, RuntimeInfo, Session, UnsupportedSpec


class JaxSession(Session):
    """JAX set up for one cell: its device and mode, and what it builds."""

    def __init__(self, runtime: RuntimeInfo, device, mode: str, policy) -> None:
        super().__init__(runtime)
        self.device = device  # a jax.Device
        self.mode = mode
        self.policy = policy  # a harness_jax.recipe.Policy: the cell's precision as dtypes

    def profiler(self, directory):
        from harness.api import JaxProfiler

        return JaxProfiler(directory)

    def build(self, task, weights, x, y) -> JaxTrainer:
        from harness_jax import recipe
        from harness_jax.model import Sequential, check_supported

        layers = tuple(task.model.layers)
        check_supported(layers)
        classify = task.training.loss == "sparse_categorical_crossentropy"
        if classify and getattr(layers[-1], "activation", None) != "softmax":
            raise UnsupportedSpec("sparse categorical cross-entropy needs a softmax last layer")
        # a classifier's model stops at the logits: optax's cross-entropy applies the softmax
        model = Sequential(layers, logits=classify)
        params, batch_stats = _initial_variables(layers, weights)
        params = self.policy.cast_to_param(params)
        # the learning rate follows the task's schedule over every update of every epoch
        optimizer = recipe.adam(task.training, len(x))
        forward = policy_forward(model, self.policy, token_ids=layers[0].kind == "embedding")
        train_step, train_steps = _train_functions(
            forward, self.policy, optimizer, classify, task.seed
        )
        eval_step, predict_step = _eval_functions(forward, self.policy, classify)
        return JaxTrainer(
            params=params,
            batch_stats=batch_stats,
            opt_state=optimizer.init(params),
            x=x,
            y=y.astype(np.int32 if classify else np.float32),
            train_step=train_step,
            train_steps=train_steps if self.mode == "compiled" else None,
            eval_step=eval_step,
            predict_step=predict_step,
            forward=forward,
            training=task.training,
            classify=classify,
            layers=layers,
        )

    def peak_device_memory_bytes(self) -> int | None:
        if self.device.platform == "cpu":
            return None
        stats = self.device.memory_stats() or {}
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


def _initial_variables(layers, weights) -> tuple[dict, dict]:
    """The harness's initial weights as the model's ``(params, batch_stats)``, one entry per
    layer that has any: the batch norms' moving statistics go to ``batch_stats``."""
    import jax
    import jax.numpy as jnp

    from harness_jax.model import layer_name, to_variables

    # the modules keep the harness's names and shapes, so the weights load as they are
    collections: dict[str, dict] = {"params": {}, "batch_stats": {}}
    for index, (spec, layer_weights) in enumerate(zip(layers, weights, strict=True)):
        for collection, tree in to_variables(spec, layer_weights).items():
            if tree:
                collections[collection][layer_name(index)] = jax.tree_util.tree_map(
                    jnp.asarray, tree
                )
    return collections["params"], collections["batch_stats"]


def model_variables(params, batch_stats) -> dict:
    """What ``model.apply`` takes; a model without batch norms has no ``batch_stats``."""
    return {"params": params, "batch_stats": batch_stats} if batch_stats else {"params": params}


def policy_forward(model, policy, *, token_ids: bool):
    """``model.apply`` under the precision policy: the parameters and inputs cast to the compute
    dtype (token ids excepted: float32 holds them exactly up to 2**24, bfloat16 only up to 256),
    the batch norms' statistics left float32. Returns the output in the compute dtype; callers
    cast it to :attr:`Policy.output_dtype`."""

    def forward(variables, x, **kwargs):
        variables = {**variables, "params": policy.cast_to_compute(variables["params"])}
        return model.apply(variables, x if token_ids else policy.cast_to_compute(x), **kwargs)

    return forward


def _train_functions(forward, policy, optimizer, classify: bool, seed: int):
    """``(train_step, train_steps)``, jitted: one batch's update, and an epoch's full batches."""
    import jax
    import jax.numpy as jnp
    import optax

    # dropout masks are a pure function of the seed and the step number, so a run repeats
    # and both modes draw the same masks
    dropout_key = jax.random.key(seed)

    def loss_fn(params, batch_stats, xb, yb, step, weight):
        rngs = {"dropout": jax.random.fold_in(dropout_key, step)}
        variables = model_variables(params, batch_stats)
        if batch_stats:
            # the batch norms update their moving statistics (carried on in the state) from
            # the real samples only: `weight` masks a padded last batch's padding out
            output, updated = forward(
                variables, xb, train=True, weight=weight, rngs=rngs, mutable=["batch_stats"]
            )
            batch_stats = updated["batch_stats"]
        else:
            output = forward(variables, xb, train=True, rngs=rngs)
        output = policy.cast_to_output(output)  # the loss in float32, whatever the compute
        if classify:
            # (batch,) losses, or (batch, steps) for a language model's label at every step
            losses = optax.softmax_cross_entropy_with_integer_labels(output, yb)
        else:
            # (batch, 1) against (batch,): flatten first, or it broadcasts to (batch, batch)
            losses = (output.reshape(-1) - yb) ** 2
        # the mean over the batch's real samples (every step of each): padding (see
        # train_epoch) weighs 0
        weights = jnp.broadcast_to(weight.reshape((-1,) + (1,) * (losses.ndim - 1)), losses.shape)
        return jnp.sum(losses * weights) / jnp.sum(weights), batch_stats

    def update(state, xb, yb, weight):
        params, batch_stats, opt_state, loss_sum, step = state
        (loss, batch_stats), grads = jax.value_and_grad(loss_fn, has_aux=True)(
            params, batch_stats, xb, yb, step, weight
        )
        updates, opt_state = optimizer.update(grads, opt_state, params)
        # the epoch's loss is summed and the steps are numbered on the device: nothing but
        # the batch crosses from the host at a step, as in a plain loop
        params = optax.apply_updates(params, updates)
        return params, batch_stats, opt_state, loss_sum + loss, step + 1

    @jax.jit
    def train_step(state, xb, yb, weight):
        return update(state, xb, yb, weight)

    @jax.jit
    def train_steps(state, x_all, y_all, batches):
        """Every full batch of an epoch as one program: a scan over the batch indices."""

        def body(state, index):
            weight = jnp.ones(index.shape, jnp.float32)
            return update(state, x_all[index], y_all[index], weight), None

        return jax.lax.scan(body, state, batches)[0]

    return train_step, train_steps


def _eval_functions(forward, policy, classify: bool):
    """``(eval_step, predict_step)``, jitted: a batch's summed loss and hits, and its outputs."""
    import jax
    import optax

    # evaluation normalises with the moving statistics (train=False: use_running_average);
    # sums over every label: one per sample, or one per step of a language model's samples
    @jax.jit
    def eval_step(variables, xb, yb):
        output = policy.cast_to_output(forward(variables, xb))
        if classify:
            losses = optax.softmax_cross_entropy_with_integer_labels(output, yb)
            return losses.sum(), (output.argmax(axis=-1) == yb).sum()
        return ((output.reshape(-1) - yb) ** 2).sum(), 0

    @jax.jit
    def predict_step(variables, xb):
        output = policy.cast_to_output(forward(variables, xb))
        return jax.nn.softmax(output) if classify else output

    return eval_step, predict_step


class JaxTrainer:
    def __init__(
        self,
        *,
        params,
        batch_stats,
        opt_state,
        x,
        y,
        train_step,
        train_steps,
        eval_step,
        predict_step,
        forward,
        training,
        classify,
        layers,
    ) -> None:
        self.params = params
        self.batch_stats = batch_stats  # the batch norms' moving statistics; {} without any
        self.opt_state = opt_state
        self.x = x
        self.y = y
        self.train_step = train_step
        self.train_steps = train_steps  # set in compiled mode
        self.eval_step = eval_step
        self.predict_step = predict_step
        self.forward = forward  # model.apply under the precision policy, output uncast
        self.training = training
        self.classify = classify  # else a regression: MSE, no accuracy
        self.layers = layers
        import jax
        import jax.numpy as jnp

        # numbers the steps, for their dropout masks: on the device, counted by the step itself
        self.steps_taken = jnp.zeros((), jnp.int32)

        # on the device once: a host array would be copied over at every step
        self.full_batch = jax.device_put(np.ones(training.batch_size, np.float32))
        if train_steps is not None:
            # a scanned epoch gathers its batches on the device, so the data lives there
            self.x_device, self.y_device = jax.device_put(x), jax.device_put(y)

    def train_epoch(self, batch_order: np.ndarray, clock=None) -> float:
        import jax.numpy as jnp

        batch_size = self.training.batch_size
        loss_sum = jnp.zeros((), jnp.float32)
        state = (self.params, self.batch_stats, self.opt_state, loss_sum, self.steps_taken)
        steps = -(-len(batch_order) // batch_size)
        first = 0
        if self.train_steps is not None:
            # one program for every full batch; a last, smaller batch goes through train_step
            first = len(batch_order) // batch_size
            batches = batch_order[: first * batch_size].astype(np.int32).reshape(first, batch_size)
            state = self.train_steps(state, self.x_device, self.y_device, batches)
            clock = None  # single steps of a scanned epoch can't be timed
        for step in range(first, steps):
            timed = clock is not None and clock.wants(step)
            if timed:
                state[-1].block_until_ready()
                began = time.perf_counter()
            # batches are gathered on the host and transferred, as in Flax's MNIST example
            index = batch_order[step * batch_size : (step + 1) * batch_size]
            weight = self.full_batch
            if len(index) < batch_size:
                # a last, smaller batch is padded to the full size with samples that weigh 0:
                # a batch of a new shape would compile a second program inside the first
                # epoch's clock (0.4 s or more), which a plain loop over full batches never pays
                pad = batch_size - len(index)
                weight = np.concatenate([np.ones(len(index)), np.zeros(pad)]).astype(np.float32)
                index = np.concatenate([index, np.repeat(index[:1], pad)])
            state = self.train_step(state, self.x[index], self.y[index], weight)
            if timed:
                state[-1].block_until_ready()
                clock.record(time.perf_counter() - began)
        self.params, self.batch_stats, self.opt_state, loss_sum, self.steps_taken = state
        return float(loss_sum) / steps  # float() waits for the device

    def evaluate(self, x: np.ndarray, y: np.ndarray) -> Evaluation:
        y = y.astype(self.y.dtype)
        batch = self.training.eval_batch_size
        loss_sum, correct = 0.0, 0
        for start in range(0, len(x), batch):
            batch_loss, batch_correct = self.eval_step(
                self.variables(), x[start : start + batch], y[start : start + batch]
            )
            loss_sum += float(batch_loss)
            correct += int(batch_correct)
        # the mean over the labels: the samples, or every step of every sample (y (n, steps))
        labels = y.size
        return Evaluation(
            loss=loss_sum / labels, accuracy=correct / labels if self.classify else None
        )

    def predict(self, x: np.ndarray) -> np.ndarray:
        batch = self.training.eval_batch_size
        outputs = [
            np.asarray(self.predict_step(self.variables(), x[start : start + batch]))
            for start in range(0, len(x), batch)
        ]
        return np.concatenate(outputs).astype(np.float32, copy=False)

    def variables(self) -> dict:
        return model_variables(self.params, self.batch_stats)

    def weights(self) -> list[dict[str, np.ndarray]]:
        """Every layer's arrays in the harness's layout, the moving statistics included."""
        from harness_jax.model import from_variables, layer_name

        weights = []
        for index, spec in enumerate(self.layers):
            name = layer_name(index)
            variables = {
                "params": self.params.get(name, {}),
                "batch_stats": self.batch_stats.get(name, {}),
            }
            arrays = from_variables(spec, variables)
            # float32 whatever the parameters are kept in, as the harness hands weights over
            weights.append({key: np.array(array, np.float32) for key, array in arrays.items()})
        return weights

    def parameter_count(self) -> int:
        """The trained values: the moving statistics (``batch_stats``) are not counted."""
        import jax

        return sum(leaf.size for leaf in jax.tree_util.tree_leaves(self.params))
