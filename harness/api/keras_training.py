"""How a Keras model from :mod:`harness.api.keras_models` trains: compiled with the task's loss
and Adam as the harness defines it (the paper's, epsilon outside the square root), its
learning-rate schedule, the loss and accuracy of a whole split, and a step timer.

Shared by every plugin that trains through Keras; like :mod:`harness.api.keras_models`, it
imports Keras only when called (the classes that subclass Keras's are made on first use, by
the cached ``_*_class`` functions). :mod:`harness.api.keras_models` re-exports every public
name, so a plugin may import them from either.
"""

from __future__ import annotations

import functools
import time
from typing import TYPE_CHECKING

from harness.api.adapter import Evaluation, UnsupportedSpec

if TYPE_CHECKING:
    import keras
    import numpy as np

    from harness.workload.tasks import Adam, Training, WarmupCosine


def compile_model(
    model: keras.Sequential,
    training: Training,
    *,
    num_samples: int | None = None,
    jit_compile: bool | str = "auto",
) -> None:
    """Compile a model from :func:`build_model` with the task's loss and :func:`paper_adam`.

    :param num_samples: the training samples ``build`` got, which a learning-rate schedule
        needs (its length is ``training.total_steps(num_samples)``).
    :param jit_compile: Keras's own: ``"auto"`` lets the backend decide, ``True`` forces XLA.
    :raises ValueError: for a task with a schedule and no ``num_samples``.
    """
    schedule = None
    if training.schedule is not None:
        if num_samples is None:
            raise ValueError("a learning-rate schedule needs the number of training samples")
        schedule = warmup_cosine(
            training.schedule,
            training.optimizer.learning_rate,
            training.total_steps(num_samples),
        )
    model.compile(
        optimizer=paper_adam(training.optimizer, schedule),
        loss=keras_loss(training.loss),
        jit_compile=jit_compile,
    )


def keras_loss(name: str) -> keras.losses.Loss:
    """The Keras loss for a task's ``training.loss``, averaged over the batch."""
    import keras

    if name == "sparse_categorical_crossentropy":
        # on the softmax's output: Keras takes the logits the softmax recorded, a log-softmax
        return keras.losses.SparseCategoricalCrossentropy(from_logits=False)
    if name == "mean_squared_error":
        return keras.losses.MeanSquaredError()
    raise UnsupportedSpec(f"loss {name!r}")


def evaluation(outputs: np.ndarray, y: np.ndarray, loss: str) -> Evaluation:
    """The loss and accuracy of a model's outputs over a whole split, as the harness defines them.

    For a classifier, ``y`` holds a class per sample ``(n,)`` or per step ``(n, steps)`` (a
    language model), the outputs a softmax over the last axis; both figures are the mean over
    every label. Training's loss is a log-softmax of the logits (Keras reads them off the
    softmax), so the probabilities are not clipped at Keras's 1e-7 here: only kept off log(0).
    For ``mean_squared_error``, ``outputs`` is ``(n, 1)`` and ``y`` ``(n,)``.
    """
    import numpy as np

    if loss == "mean_squared_error":
        errors = outputs[:, 0].astype(np.float64) - y
        return Evaluation(loss=float(np.mean(errors**2)), accuracy=None)
    labels = np.asarray(y, dtype=np.int64)
    picked = np.take_along_axis(outputs, labels[..., None], axis=-1)[..., 0]
    picked = np.maximum(picked.astype(np.float64), np.finfo(np.float32).tiny)
    return Evaluation(
        loss=float(-np.log(picked).mean()),
        accuracy=float((outputs.argmax(axis=-1) == labels).mean()),
    )


def paper_adam(
    adam: Adam, learning_rate: keras.optimizers.schedules.LearningRateSchedule | None = None
) -> keras.optimizers.Optimizer:
    """Adam as in the paper's Algorithm 1, PyTorch and Optax, with the task's hyperparameters.

    ``epsilon`` is added to the bias-corrected ``sqrt(v_hat)``. Keras's own Adam adds it to
    ``sqrt(v)`` and folds the bias corrections into the step size (the paper's "epsilon hat"),
    which is a different step while ``v`` is small. Here, as PyTorch computes it::

        m += (gradient - m) * (1 - beta_1)
        v += (gradient**2 - v) * (1 - beta_2)
        param -= lr / (1 - beta_1**t) * m / (sqrt(v) / sqrt(1 - beta_2**t) + epsilon)

    The moments are kept in each variable's dtype (bfloat16 under the ``bfloat16`` policy, as
    the harness's bfloat16 keeps optimizer state; float32 under ``mixed``); the arithmetic of
    an update runs in float32 whatever the dtype, each new value rounded once when stored.

    :param learning_rate: a schedule (:func:`warmup_cosine`) in place of the task's constant
        ``adam.learning_rate``.
    """
    return _paper_adam_class()(
        learning_rate=adam.learning_rate if learning_rate is None else learning_rate,
        beta_1=adam.beta_1,
        beta_2=adam.beta_2,
        epsilon=adam.epsilon,
    )


@functools.cache
def _paper_adam_class() -> type:
    import keras
    from keras import ops

    class PaperAdam(keras.optimizers.Optimizer):
        """See :func:`paper_adam`. Written on Keras's ``Optimizer``, as its docstring shows."""

        def __init__(self, learning_rate, beta_1, beta_2, epsilon, **kwargs) -> None:
            super().__init__(learning_rate=learning_rate, **kwargs)
            self.beta_1 = beta_1
            self.beta_2 = beta_2
            self.epsilon = epsilon

        def build(self, variables):
            if self.built:
                return
            super().build(variables)
            # in the variable's dtype (add_variable_from_reference's): bfloat16 for bfloat16
            self.momentums = [
                self.add_variable_from_reference(variable, name="momentum")
                for variable in variables
            ]
            self.velocities = [
                self.add_variable_from_reference(variable, name="velocity")
                for variable in variables
            ]

        def update_step(self, gradient, variable, learning_rate):
            # float32 arithmetic: in bfloat16, beta_2 = 0.999 rounds to 1 and 1 - beta_2**t to
            # 0. For float32 variables every cast below is the identity, the update unchanged.
            f32 = "float32"
            lr = ops.cast(learning_rate, f32)
            gradient = ops.cast(_dense_gradient(gradient), f32)
            step = ops.cast(self.iterations + 1, f32)
            beta_1_power = ops.power(ops.cast(self.beta_1, f32), step)
            beta_2_power = ops.power(ops.cast(self.beta_2, f32), step)

            # Private by name, but the way Keras's own optimizers and the custom optimizer in
            # keras.optimizers.Optimizer's docstring find a variable's slots: the variable
            # update_step receives is the backend's (a tf.Variable on TensorFlow, not the
            # keras.Variable that build saw), and only Keras knows which slot it maps to.
            index = self._get_variable_index(variable)
            m_slot, v_slot = self.momentums[index], self.velocities[index]
            m = _moved_towards(self, m_slot, gradient, 1 - self.beta_1)
            v = _moved_towards(self, v_slot, ops.square(gradient), 1 - self.beta_2)

            step_size = ops.divide(lr, 1 - beta_1_power)
            denominator = ops.add(ops.divide(ops.sqrt(v), ops.sqrt(1 - beta_2_power)), self.epsilon)
            update = ops.multiply(step_size, ops.divide(m, denominator))
            _stored(self, variable, ops.subtract(ops.cast(variable, f32), update))

        def get_config(self):
            return {
                **super().get_config(),
                "beta_1": self.beta_1,
                "beta_2": self.beta_2,
                "epsilon": self.epsilon,
            }

    return PaperAdam


def _moved_towards(optimizer, slot, target, rate):
    """``slot += (target - slot) * rate``, an Adam moment's update, in float32; returns what
    was stored (see :func:`_stored`)."""
    from keras import ops

    current = ops.cast(slot, "float32")
    return _stored(
        optimizer, slot, ops.add(current, ops.multiply(ops.subtract(target, current), rate))
    )


def _stored(optimizer, variable, value):
    """Assign the float32 ``value`` to ``variable`` in its own dtype; returns what was stored,
    as float32 (bfloat16's rounding included, so the update uses the moments as kept)."""
    from keras import ops

    stored = ops.cast(value, variable.dtype)
    optimizer.assign(variable, stored)
    return ops.cast(stored, "float32")


def warmup_cosine(
    schedule: WarmupCosine, base: float, total_steps: int
) -> keras.optimizers.schedules.LearningRateSchedule:
    """The task's warm-up + cosine schedule as a Keras ``LearningRateSchedule``: the optimizer
    calls it with its update count (0-based), and it returns
    :meth:`harness.workload.tasks.WarmupCosine.learning_rate` of that update, in float32, with
    ``keras.ops`` only (so inside ``tf.function``, XLA and ``jax.jit`` too)."""
    return _warmup_cosine_class()(
        warmup_steps=schedule.warmup_steps,
        final_fraction=schedule.final_fraction,
        base=base,
        total_steps=total_steps,
    )


@functools.cache
def _warmup_cosine_class() -> type:
    import math

    import keras
    from keras import ops

    class WarmupCosineSchedule(keras.optimizers.schedules.LearningRateSchedule):
        """See :func:`warmup_cosine`."""

        def __init__(self, warmup_steps, final_fraction, base, total_steps) -> None:
            self.warmup_steps = warmup_steps
            self.final_fraction = final_fraction
            self.base = base
            self.total_steps = total_steps

        def __call__(self, step):
            step = ops.cast(step, "float32")
            warmup = self.warmup_steps
            # max(1, ...): no division by zero in the branch ops.where discards
            rising = ops.divide(ops.multiply(self.base, ops.add(step, 1.0)), max(1, warmup))
            progress = ops.minimum(
                1.0, ops.divide(ops.subtract(step, warmup), max(1, self.total_steps - warmup))
            )
            cosine = ops.divide(ops.add(1.0, ops.cos(ops.multiply(math.pi, progress))), 2.0)
            fraction = self.final_fraction
            falling = ops.multiply(self.base, ops.add(fraction, ops.multiply(1 - fraction, cosine)))
            return ops.where(ops.less(step, warmup), rising, falling)

        def get_config(self):
            return {
                "warmup_steps": self.warmup_steps,
                "final_fraction": self.final_fraction,
                "base": self.base,
                "total_steps": self.total_steps,
            }

    return WarmupCosineSchedule


def _dense_gradient(gradient):
    """The gradient as a dense array. TensorFlow hands an embedding's as ``tf.IndexedSlices``,
    a row for every token looked up, a repeated token's rows repeated: Keras's ``ops.square``
    would square each row before they are summed, where Adam wants the square of their sum."""
    if type(gradient).__name__ == "IndexedSlices":
        import tensorflow as tf

        return tf.convert_to_tensor(gradient)  # sums the rows of each index
    return gradient


# -- timing -------------------------------------------------------------------


def step_timer(clock) -> keras.callbacks.Callback:
    """A Keras callback timing the steps the harness's ``clock`` wants, from a batch's start to
    the next batch's start."""
    return _step_timer_class()(clock)


@functools.cache
def _step_timer_class() -> type:
    import keras

    class StepTimer(keras.callbacks.Callback):
        """Only ``on_train_batch_begin`` is overridden: a batch-end hook would make Keras turn
        every step's logs into Python numbers, waiting for the device at every step. Reading the
        optimizer's step counter waits for the updates before it, so only the sampled steps (and
        the step after each) are synchronised.
        """

        def __init__(self, clock) -> None:
            super().__init__()
            self.clock = clock
            self.began: float | None = None

        def _sync(self) -> None:
            int(self.model.optimizer.iterations)

        def _finish(self) -> None:
            if self.began is not None:
                self._sync()
                self.clock.record(time.perf_counter() - self.began)
                self.began = None

        def on_train_batch_begin(self, batch, logs=None):
            self._finish()
            if self.clock.wants(batch):
                self._sync()
                self.began = time.perf_counter()

        def on_epoch_end(self, epoch, logs=None):
            self._finish()

    return StepTimer
