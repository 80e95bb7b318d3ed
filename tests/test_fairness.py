import numpy as np

from harness.registry.catalog import load_task
from harness.workload.fairness import batch_order, initial_weights


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


def test_recurrent_kernels_are_orthogonal_and_the_lstm_forget_bias_starts_at_one():
    task = load_task("mnist_rnn")
    lstm = initial_weights(task)[0]
    assert lstm["kernel"].shape == (28, 512) and lstm["recurrent_kernel"].shape == (128, 512)
    recurrent = lstm["recurrent_kernel"].astype(np.float64)
    np.testing.assert_allclose(recurrent @ recurrent.T, np.eye(128), atol=1e-5)  # orthonormal rows
    np.testing.assert_array_equal(lstm["bias"][128:256], 1.0)  # the forget gate's block
    assert not lstm["bias"][:128].any() and not lstm["bias"][256:].any()


def test_conv_kernels_count_the_receptive_field_in_their_glorot_fans():
    kernel = initial_weights(load_task("mnist_cnn"))[2]["kernel"]  # 3x3, 32 -> 64 channels
    limit = np.sqrt(6 / (9 * 32 + 9 * 64))
    assert kernel.shape == (3, 3, 32, 64)
    assert np.abs(kernel).max() <= limit and np.abs(kernel).max() > 0.99 * limit


def test_the_sine_wave_series_are_a_function_of_the_seed():
    from harness.data.series import sine_waves

    (x1, y1), _ = sine_waves(42)
    (x2, y2), _ = sine_waves(42)
    (x3, _), _ = sine_waves(43)
    np.testing.assert_array_equal(x1, x2)
    np.testing.assert_array_equal(y1, y2)
    assert not np.array_equal(x1, x3)
    assert x1.shape == (9_000, 50, 1) and x1.dtype == np.float32


def test_the_naive_forecast_reads_the_last_value_whatever_the_input_shape():
    from harness.data.series import naive_forecast_mse

    x = np.arange(12, dtype=np.float32).reshape(2, 3, 2)  # the last values: 5 and 11
    y = np.array([5.0, 13.0], dtype=np.float32)
    assert naive_forecast_mse(x, y) == 2.0  # ((5-5)^2 + (11-13)^2) / 2
    assert naive_forecast_mse(x.reshape(2, 6, 1, 1), y) == 2.0  # with a channel axis too


def test_vision_transformer_weights_are_in_keras_multi_head_attention_shapes():
    weights = initial_weights(load_task("mnist_vit"))
    patch_embedding, position, encoder = weights[1], weights[2], weights[3]
    assert patch_embedding["kernel"].shape == (49, 64)  # dense on every token: (features, units)
    assert position["embedding"].shape == (16, 64)
    assert abs(position["embedding"].std() - 0.02) < 0.002
    shapes = {name: array.shape for name, array in encoder.items()}
    assert shapes == {
        "norm1_gamma": (64,),
        "norm1_beta": (64,),
        "query_kernel": (64, 4, 16),
        "query_bias": (4, 16),
        "key_kernel": (64, 4, 16),
        "key_bias": (4, 16),
        "value_kernel": (64, 4, 16),
        "value_bias": (4, 16),
        "output_kernel": (4, 16, 64),
        "output_bias": (64,),
        "norm2_gamma": (64,),
        "norm2_beta": (64,),
        "mlp_kernel": (64, 128),
        "mlp_bias": (128,),
        "mlp_output_kernel": (128, 64),
        "mlp_output_bias": (64,),
    }
    # Glorot over each projection's 2-D matrix: (64 in, 4 x 16 out), not Keras's 3-D fans
    limit = np.sqrt(6 / (64 + 64))
    assert limit * 0.99 < np.abs(encoder["query_kernel"]).max() <= limit
    assert np.abs(encoder["mlp_kernel"]).max() <= np.sqrt(6 / (64 + 128))
    assert (encoder["norm1_gamma"] == 1).all() and not encoder["norm2_beta"].any()
    assert not encoder["query_bias"].any() and not encoder["output_bias"].any()
    assert (weights[5]["gamma"] == 1).all() and not weights[5]["beta"].any()  # the final norm
    assert weights[0] == {} and weights[6] == {}  # patches and the mean pool have no parameters
