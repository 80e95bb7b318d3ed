"""A language model's task: token ids in, a class for every step out, judged in bits per
character; and only an adapter of plugin API 3 is handed one."""

import math
from pathlib import Path

import numpy as np
import pytest

from harness.api.adapter import (
    Evaluation,
    FrameworkAdapter,
    Session,
    UnsupportedSpec,
    build_trainer,
)
from harness.registry.catalog import load_task
from harness.runner.worker import quality
from harness.workload import reference
from harness.workload.fairness import initial_weights, parameter_count
from harness.workload.tasks import TaskError

TASKS = Path(__file__).parent.parent / "tasks"


def gpt_text(**replace: str) -> str:
    text = (TASKS / "text_gpt.toml").read_text()
    for old, new in replace.items():
        assert old in text, old
        text = text.replace(old, new)
    return text


def test_text_gpt_predicts_every_next_character_with_the_parameters_of_its_layers():
    task = load_task("text_gpt")
    assert task.model.output_shapes()[-1] == (64, 81)  # a distribution at every step
    assert task.dataset_info.label_shape == (64,)
    block = 2 * 2 * 64 + 4 * (64 * 64 + 64) + (64 * 256 + 256) + (256 * 64 + 64)
    tables = 81 * 64 + 64 * 64  # token and position embeddings
    assert parameter_count(task) == tables + 2 * block + 2 * 64 + 64 * 81 + 81
    assert task.plugin_api_needed() == 3
    assert load_task("mnist_vit").plugin_api_needed() == 0


def test_bits_per_character_are_the_mean_loss_per_token_in_bits():
    task = load_task("text_gpt")
    assert quality(task, Evaluation(loss=math.log(81), accuracy=0.0)) == pytest.approx(
        math.log2(81)
    )
    assert not task.target.higher_is_better and task.target.validation_metric == "bits_per_char"


def test_the_reference_model_sees_no_later_character():
    task = load_task("text_gpt")
    weights = initial_weights(task)
    x = np.random.default_rng(0).integers(0, 81, (2, 64)).astype(np.float32)
    changed = x.copy()
    changed[:, 40:] = (changed[:, 40:] + 1) % 81
    before, after = (reference.forward(task.model, weights, v) for v in (x, changed))
    assert np.array_equal(before[:, :40], after[:, :40])  # steps before the change: the same
    assert not np.allclose(before[:, 40:], after[:, 40:])
    assert np.allclose(before.sum(axis=-1), 1.0)


@pytest.mark.parametrize(
    ("replace", "message"),
    [
        (
            {"[model]\n": "[preprocessing]\ndivide_by = 80\n\n[model]\n"},
            "an embedding takes token ids: [preprocessing] divide_by must be 1",
        ),
        ({"input_dim = 81": "input_dim = 80"}, "has input_dim 80, but dataset 'austen' has 81"),
        (
            {"units = 81": "units = 80"},
            "outputs shape (64, 80), but dataset 'austen' has 81 classes",
        ),
        (
            {'metric = "test_bits_per_char"': 'metric = "test_accuracy"', "max = 2.6": "min = 0.5"},
            "target.metric must be test_bits_per_char for dataset 'austen'",
        ),
        (
            {"input_shape = [64]": "input_shape = [64, 1]"},
            "layers[0] (embedding) needs an input of token ids, shape (steps,), not (64, 1)",
        ),
        (
            {
                '[[model.layers]]\nkind = "embedding"': '[[model.layers]]\nkind = "dropout"\nrate = 0.1\n\n[[model.layers]]\nkind = "embedding"'
            },
            "layers[1] (embedding) must be the first layer",
        ),
        (
            {'kind = "position_embedding"': 'kind = "embedding"\ninput_dim = 81\noutput_dim = 64'},
            "layers[1] (embedding) needs an input of token ids",
        ),
    ],
)
def test_language_models_that_do_not_fit_are_refused_in_one_line(tmp_path, replace, message):
    path = tmp_path / "task.toml"
    path.write_text(gpt_text(**replace))
    with pytest.raises(TaskError) as caught:
        load_task(str(path))
    assert message in str(caught.value) and "\n" not in str(caught.value)


class _Built(Session):
    def build(self, task, weights, x, y):
        return "built"


class _Adapter(FrameworkAdapter):
    name, import_name, distribution = "older", "numpy", "numpy"

    def devices(self):
        return ["cpu"]

    def setup(self, *, device, threads, mode="eager"):
        raise NotImplementedError


@pytest.mark.parametrize("declared", [0, 1, 2])
def test_an_adapter_older_than_plugin_api_3_is_not_handed_a_language_model(declared):
    adapter = _Adapter()
    adapter.api_version = declared
    task = load_task("text_gpt")
    with pytest.raises(UnsupportedSpec, match=f"needs plugin API 3 .* speaks API {declared}"):
        build_trainer(adapter, _Built(None), task, [], np.zeros(1), np.zeros(1))
    # what it was written for it still builds
    assert build_trainer(adapter, _Built(None), load_task("mnist_vit"), [], None, None) == "built"
    adapter.api_version = 3
    assert build_trainer(adapter, _Built(None), task, [], None, None) == "built"
