from pathlib import Path

import pytest

from harness.registry.catalog import load_task
from harness.registry.task_files import builtin_task_files
from harness.workload.fairness import parameter_count
from harness.workload.tasks import Dense, Target, TaskError

TASKS = Path(__file__).parent.parent / "tasks"


def write_task(tmp_path, text: str) -> str:
    path = tmp_path / "task.toml"
    path.write_text(text)
    return str(path)


def mlp_text(**replace: str) -> str:
    text = (TASKS / "mnist_mlp.toml").read_text()
    for old, new in replace.items():
        assert old in text
        text = text.replace(old, new)
    return text


def test_mnist_mlp_is_the_classic_guide_network_verbatim():
    task = load_task("mnist_mlp")
    assert task.dataset.name == "mnist" and task.preprocessing.divide_by == 255
    assert [layer.kind for layer in task.model.layers] == ["flatten", "dense", "dense"]
    hidden, output = task.model.layers[1], task.model.layers[2]
    assert isinstance(hidden, Dense) and (hidden.units, hidden.activation) == (128, "relu")
    assert isinstance(output, Dense) and (output.units, output.activation) == (10, "softmax")
    assert hidden.kernel_initializer == "glorot_uniform" and hidden.bias_initializer == "zeros"
    adam = task.training.optimizer
    assert (adam.learning_rate, adam.beta_1, adam.beta_2, adam.epsilon) == (0.001, 0.9, 0.999, 1e-7)
    assert task.training.loss == "sparse_categorical_crossentropy"
    assert (task.training.batch_size, task.training.epochs) == (32, 5)
    assert (task.target.metric, task.target.min) == ("test_accuracy", 0.97)
    assert task.model.output_shapes() == [(784,), (128,), (10,)]


def test_task_files_name_no_framework():
    for path in TASKS.glob("*.toml"):
        # the `source` line may cite where the task comes from; nothing else may name a framework
        lines = [
            line for line in path.read_text().lower().splitlines() if not line.startswith("source")
        ]
        for framework in ("tensorflow", "keras", "torch", "jax", "flax"):
            assert framework not in "\n".join(lines), (path.name, framework)


def test_every_builtin_task_loads():
    assert "mnist_mlp" in builtin_task_files()
    for name in builtin_task_files():
        assert load_task(name).name == name


def test_a_path_loads_the_file(tmp_path):
    assert load_task(write_task(tmp_path, mlp_text())).name == "mnist_mlp"


def test_with_dataset_swaps_the_dataset_and_its_target():
    task = load_task("mnist_mlp").with_dataset("fashion_mnist")
    assert task.dataset.name == "fashion_mnist" and task.target.min == 0.85
    with pytest.raises(TaskError, match="unknown dataset 'fashion'; did you mean 'fashion_mnist'"):
        load_task("mnist_mlp").with_dataset("fashion")


def test_with_epochs_overrides_and_validates():
    assert load_task("mnist_mlp").with_epochs(2).training.epochs == 2
    with pytest.raises(TaskError, match="training.epochs"):
        load_task("mnist_mlp").with_epochs(0)


@pytest.mark.parametrize(
    ("replace", "message"),
    [
        ({"epochs = 5": "epochs = -1"}, r"training.epochs: Input should be greater than 0"),
        ({"batch_size = 32": "batch_size = 32 32"}, r"not valid TOML"),
        ({'kind = "flatten"': 'kind = "flaten"'}, r"model.layers.0: unknown layer kind 'flaten'"),
        (
            {'activation = "relu"': 'activation = "swish"'},
            r"model.layers.1.dense.activation|layers.1.activation",
        ),
        ({"units = 128": "units = 128\nunits_typo = 3"}, r"units_typo: unknown key"),
        ({'name = "mnist"': 'name = "mnsit"'}, r"unknown dataset 'mnsit'; did you mean 'mnist'"),
        (
            {"units = 10": "units = 12"},
            r"last layer outputs shape \(12,\), but dataset 'mnist' has 10 classes",
        ),
        (
            # on a sequence a dense layer is applied to every step, so this reaches the output
            {'kind = "flatten"': 'kind = "dense"\nunits = 4'},
            r"the last layer outputs shape \(28, 10\), but dataset 'mnist' has 10 classes",
        ),
        ({"input_shape = [28, 28]": "input_shape = [32, 32]"}, r"does not match dataset 'mnist'"),
    ],
)
def test_bad_task_files_give_one_line_naming_the_file_and_the_place(tmp_path, replace, message):
    path = write_task(tmp_path, mlp_text(**replace))
    with pytest.raises(TaskError, match=message) as caught:
        load_task(path)
    assert str(caught.value).startswith(path)
    assert "\n" not in str(caught.value)


def test_an_unknown_task_name_suggests_the_closest():
    with pytest.raises(TaskError, match="unknown task 'mnist_mpl'; did you mean 'mnist_mlp'"):
        load_task("mnist_mpl")


def test_a_missing_task_file():
    with pytest.raises(TaskError, match="task file not found"):
        load_task("nowhere/task.toml")


def test_the_classic_recipes_have_the_parameter_counts_their_sources_print():
    # the counts Keras's model.summary() prints for these models
    assert parameter_count(load_task("mnist_cnn")) == 34_826
    assert parameter_count(load_task("series_rnn")) == 7_701
    assert parameter_count(load_task("mnist_rnn")) == 81_674
    cnn = load_task("mnist_cnn")
    assert [layer.kind for layer in cnn.model.layers] == [
        "conv2d",
        "max_pool2d",
        "conv2d",
        "max_pool2d",
        "flatten",
        "dropout",
        "dense",
    ]
    assert cnn.model.output_shapes()[:4] == [(26, 26, 32), (13, 13, 32), (11, 11, 64), (5, 5, 64)]
    assert load_task("series_rnn").target.describe() == "test_mse ≤ 0.004"


def test_mnist_vit_cuts_16_patches_and_has_the_parameters_of_its_layers():
    task = load_task("mnist_vit")
    assert task.model.output_shapes() == [
        (16, 49),  # a 4x4 grid of 7x7 patches
        (16, 64),
        (16, 64),
        (16, 64),
        (16, 64),
        (16, 64),
        (64,),
        (10,),
    ]
    embedding = 49 * 64 + 64
    attention = 4 * (64 * 64 + 64)  # query, key, value and output projections
    block = 2 * 2 * 64 + attention + (64 * 128 + 128) + (128 * 64 + 64)
    assert parameter_count(task) == embedding + 16 * 64 + 2 * block + 2 * 64 + 64 * 10 + 10
    assert parameter_count(task) == 71_946
    [encoder, _] = [layer for layer in task.model.layers if layer.kind == "transformer_encoder"]
    assert (encoder.heads, encoder.key_dim, encoder.mlp_units, encoder.mlp_activation) == (
        4,
        16,
        128,
        "gelu",
    )
    assert task.without_dropout().model.layers[3].dropout == 0.0


def test_same_padding_and_strides_give_tensorflows_output_sizes(tmp_path):
    text = mlp_text(
        **{
            "input_shape = [28, 28]": "input_shape = [28, 28, 1]",
            '[[model.layers]]\nkind = "flatten"': '[[model.layers]]\nkind = "conv2d"\nfilters = 4\n'
            'kernel_size = 3\nstrides = 2\npadding = "same"\n\n[[model.layers]]\nkind = "flatten"',
        }
    )
    task = load_task(write_task(tmp_path, text))
    assert task.model.output_shapes()[0] == (14, 14, 4)  # ceil(28 / 2)


@pytest.mark.parametrize(
    ("replace", "message"),
    [
        (
            {'kind = "flatten"': 'kind = "conv2d"\nfilters = 4\nkernel_size = 3'},
            "model.layers[0] (conv2d) needs an input of shape (height, width, channels), not (28, 28)",
        ),
        (
            {
                "input_shape = [28, 28]": "input_shape = [28, 28, 1]",
                'kind = "flatten"': 'kind = "max_pool2d"',
            },
            "model.layers[1] (dense) needs a flat input or a sequence but gets shape (14, 14, 1)",
        ),
        (
            {
                "input_shape = [28, 28]": "input_shape = [28, 28, 1]",
                'kind = "flatten"': 'kind = "patches"\nsize = 5',
            },
            "model.layers[0] (patches) cuts 5x5 patches, which don't tile a 28x28 image",
        ),
        (
            {
                "input_shape = [28, 28]": "input_shape = [28, 28, 1]",
                'kind = "flatten"': 'kind = "transformer_encoder"\nheads = 2\nkey_dim = 4\n'
                "mlp_units = 8",
            },
            "model.layers[0] (transformer_encoder) needs an input of shape (steps, features), "
            "not (28, 28, 1)",
        ),
        (
            {'loss = "sparse_categorical_crossentropy"': 'loss = "mean_squared_error"'},
            "dataset 'mnist' has classes: use loss sparse_categorical_crossentropy",
        ),
        ({"min = 0.97": "max = 0.97"}, "target test_accuracy needs `min` (and no `max`)"),
        (
            {'kind = "flatten"': 'kind = "dropout"\nrate = 1.5'},
            "model.layers.0.rate: Input should be less than 1",
        ),
    ],
)
def test_models_that_do_not_fit_are_refused_with_the_layer_and_the_fix(tmp_path, replace, message):
    with pytest.raises(TaskError) as caught:
        load_task(write_task(tmp_path, mlp_text(**replace)))
    assert message in str(caught.value)


def test_a_small_error_target_is_shown_with_significant_digits():
    target = Target(metric="test_mse", max=1e-4)
    assert target.describe(1.2e-4) == "0.00012 > 0.0001"
    assert Target(min=0.97).describe(0.98123) == "0.9812 ≥ 0.97"


def test_an_accuracy_target_for_another_dataset_is_at_most_one():
    with pytest.raises(ValueError, match="targets are at most 1"):
        Target(min=0.97, by_dataset={"fashion_mnist": 88})
    with pytest.raises(ValueError, match='set metric = "test_mse"'):
        Target(max=0.004)


def test_a_dataset_of_another_shape_says_what_would_work():
    with pytest.raises(TaskError) as raised:
        load_task("mnist_mlp").with_dataset("sine_waves")
    message = str(raised.value)
    assert "pick a dataset of that shape" in message
    assert "--vary model.input_shape=[50,1]" in message
