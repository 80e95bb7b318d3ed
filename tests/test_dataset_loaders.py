"""What a dataset plugin's loader returns is checked once, in the harness, and the task's
preprocessing applies to it: a loader can't make a benchmark silently wrong."""

from __future__ import annotations

import numpy as np
import pytest

import harness
from harness.api import DatasetInfo
from harness.data import datasets
from harness.errors import DataError
from harness.registry.catalog import dataset_info


def blobs(dtype=np.float32, shape=(4,), labels=(0, 1)):
    """A generator of two-class points with the given input dtype, shape and label values."""

    def generate(seed):
        rng = np.random.default_rng(seed)
        x = rng.normal(0, 1, (20, *shape)).astype(dtype)
        y = rng.choice(np.array(labels), 20).astype(np.int64)
        return (x, y), (x[:5], y[:5])

    return generate


def register(register_plugin, generate, name="blobs"):
    class Plugin:
        @harness.hookimpl
        def harness_register_datasets(self, register):
            register(
                DatasetInfo(
                    name=name,
                    files={},
                    input_shape=(4,),
                    num_classes=2,
                    mirrors=(),
                    generate=generate,
                )
            )

    register_plugin(Plugin(), "blobs_plugin")
    return dataset_info(name)


def test_a_generated_dataset_honours_divide_by(register_plugin):
    info = register(register_plugin, blobs())
    raw = datasets.load(info, {}, seed=3)
    halved = datasets.load(info, {}, divide_by=16, seed=3)
    assert halved.train.x.dtype == np.float32
    np.testing.assert_allclose(halved.train.x, raw.train.x / 16, rtol=1e-6)
    np.testing.assert_array_equal(halved.train.y, raw.train.y)


@pytest.mark.parametrize(
    ("generate", "problem"),
    [
        (blobs(dtype=np.uint8), "train inputs are uint8, not float32"),
        (blobs(shape=(2, 2)), "inputs have shape (2, 2) per sample, but the dataset declares (4,)"),
        (blobs(labels=(0, 10)), "labels run from 0 to 10, outside 0..1 (2 classes)"),
        (blobs(labels=(-1, 1)), "outside 0..1"),
    ],
)
def test_a_wrong_loader_fails_with_one_line_naming_the_plugin(register_plugin, generate, problem):
    info = register(register_plugin, generate)
    with pytest.raises(DataError) as raised:
        datasets.load(info, {}, seed=0)
    message = str(raised.value)
    assert message.startswith("dataset 'blobs' from plugin 'blobs_plugin' (in-process): ")
    assert problem in message and "\n" not in message


def test_non_finite_inputs_are_refused(register_plugin):
    def with_nan(seed):
        (x, y), test = blobs()(seed)
        x[3, 1] = np.nan
        return (x, y), test

    info = register(register_plugin, with_nan)
    with pytest.raises(DataError, match="train inputs hold NaN or infinite values"):
        datasets.load(info, {}, seed=0)


def test_a_built_in_dataset_is_provided_by_harness():
    assert datasets.DATASETS["mnist"].provider == "harness"
    split = datasets.load("sine_waves", {}, seed=1)
    assert split.train.x.dtype == np.float32 and split.train.y.dtype == np.float32


@pytest.mark.parametrize("name", ["../../../x", ".hidden", "a/b"])
def test_a_dataset_name_that_would_climb_out_of_its_folder_is_refused(
    register_plugin, registry, name
):
    with pytest.raises(ValueError, match="may hold only letters, digits"):
        DatasetInfo(name=name, files={}, input_shape=(4,), num_classes=2, mirrors=())

    # registered through the hook, it is the plugin's failure, and no such dataset exists
    class Plugin:
        @harness.hookimpl
        def harness_register_datasets(self, register):
            register(DatasetInfo(name=name, files={}, input_shape=(4,), num_classes=2, mirrors=()))

    register_plugin(Plugin(), "climber")
    assert [failure.plugin for failure in registry.failures] == ["climber"]
    assert name not in registry.datasets
