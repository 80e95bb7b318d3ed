import numpy as np

from harness.fairness import batch_order, initial_weights
from harness.tasks import load_task


def test_initial_weights_are_glorot_uniform_kernels_and_zero_biases():
    task = load_task("mnist_mlp")
    weights = initial_weights(task)
    assert weights[0] == {}  # flatten has no parameters
    hidden, output = weights[1], weights[2]
    assert hidden["kernel"].shape == (784, 128) and hidden["kernel"].dtype == np.float32
    assert output["kernel"].shape == (128, 10)
    limit = np.sqrt(6 / (784 + 128))
    assert np.abs(hidden["kernel"]).max() <= limit
    assert np.abs(hidden["kernel"]).max() > 0.99 * limit  # spread over the whole range
    assert (
        hidden["kernel"].std() == np.float32(limit / np.sqrt(3)).item()
        or abs(hidden["kernel"].std() - limit / np.sqrt(3)) < 1e-3
    )
    assert not hidden["bias"].any() and not output["bias"].any()


def test_initial_weights_depend_only_on_the_seed():
    task = load_task("mnist_mlp")
    first, again = initial_weights(task), initial_weights(task)
    assert np.array_equal(first[1]["kernel"], again[1]["kernel"])
    other = task.model_copy(update={"seed": task.seed + 1})
    assert not np.array_equal(first[1]["kernel"], initial_weights(other)[1]["kernel"])


def test_batch_order_is_a_fresh_permutation_each_epoch_and_reproducible():
    first = batch_order(42, 0, 1000)
    assert sorted(first.tolist()) == list(range(1000))
    assert np.array_equal(first, batch_order(42, 0, 1000))
    assert not np.array_equal(first, batch_order(42, 1, 1000))
    assert not np.array_equal(first, batch_order(43, 0, 1000))
