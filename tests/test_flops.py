from harness.flops import forward_flops_per_sample, training_flops
from harness.tasks import load_task


def test_mnist_mlp_forward_flops_by_hand():
    # Dense 784->128: 2 * 784 * 128 = 200,704; Dense 128->10: 2 * 128 * 10 = 2,560
    assert forward_flops_per_sample(load_task("mnist_mlp")) == 200_704 + 2_560


def test_training_costs_three_forward_passes_per_sample():
    task = load_task("mnist_mlp")
    assert training_flops(task, 55_000) == 3 * 203_264 * 55_000  # 33.5 GFLOP per epoch
