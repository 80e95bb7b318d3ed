from harness.registry.catalog import load_task
from harness.workload.flops import forward_flops_per_sample, training_flops


def test_mnist_mlp_forward_flops_by_hand():
    # Dense 784->128: 2 * 784 * 128 = 200,704; Dense 128->10: 2 * 128 * 10 = 2,560
    assert forward_flops_per_sample(load_task("mnist_mlp")) == 200_704 + 2_560


def test_training_costs_three_forward_passes_per_sample():
    task = load_task("mnist_mlp")
    assert training_flops(task, 55_000) == 3 * 203_264 * 55_000  # 33.5 GFLOP per epoch


def test_mnist_cnn_forward_flops_by_hand():
    conv1 = 2 * (26 * 26 * 32) * (3 * 3 * 1)  # 389,376: one multiply-add per output and tap
    conv2 = 2 * (11 * 11 * 64) * (3 * 3 * 32)  # 4,460,544
    dense = 2 * 1600 * 10
    assert forward_flops_per_sample(load_task("mnist_cnn")) == conv1 + conv2 + dense


def test_recurrent_flops_count_the_input_and_recurrent_products_of_every_gate_and_step():
    lstm = 28 * 2 * (28 + 128) * (4 * 128)  # 28 steps, 4 gates
    assert forward_flops_per_sample(load_task("mnist_rnn")) == lstm + 2 * 128 * 10
    rnn1 = 50 * 2 * (1 + 50) * 50
    rnn2 = 50 * 2 * (50 + 50) * 50
    assert forward_flops_per_sample(load_task("series_rnn")) == rnn1 + rnn2 + 2 * 50


def test_vision_transformer_flops_count_the_projections_both_attention_products_and_the_mlp():
    tokens, width, mlp = 16, 64, 128
    patch_embedding = 2 * tokens * 49 * width
    projections = 4 * 2 * tokens * width * width  # query, key, value (4 heads of 16) and output
    attention = 2 * (2 * tokens * tokens * width)  # Q K^T, and the probabilities times V
    block = projections + attention + 2 * (2 * tokens * width * mlp)
    head = 2 * width * 10
    assert forward_flops_per_sample(load_task("mnist_vit")) == patch_embedding + 2 * block + head


def test_residual_block_flops_count_both_3x3_convolutions_and_the_projection():
    from harness.testing.probes import Probe, probe_task

    block = {"kind": "residual_block", "filters": 8, "strides": 2}
    task = probe_task(Probe("block", (6, 6, 4), (block,)))
    # out 3x3x8: conv1 sees 4 channels, conv2 8, the 1x1 projection 4
    expected = 2 * 9 * 8 * (9 * 4) + 2 * 9 * 8 * (9 * 8) + 2 * 9 * 8 * 4
    assert forward_flops_per_sample(task) == expected
    identity = probe_task(Probe("block", (6, 6, 8), ({"kind": "residual_block", "filters": 8},)))
    assert forward_flops_per_sample(identity) == 2 * 36 * 8 * (9 * 8) * 2
