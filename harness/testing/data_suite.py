"""The conformance kit for dataset and task plugins: subclass and name what your plugin adds.

A dataset plugin's test file::

    from harness.testing import DatasetConformanceSuite

    class TestMyData(DatasetConformanceSuite):
        dataset = "my_data"          # the name the plugin registers

checks what the harness will rely on when a task trains on it, through the same loading a
cell does (located, verified, loaded, checked): it is registered with its provider; every
file has a SHA-256 and verifies, or a generated dataset gives the same arrays for the same
seed; inputs are float32 of the declared shape and finite; labels are integers in
``[0, num_classes)`` (finite float32 targets for a regression); both splits are non-empty; and
the split is fixed: a seed gives the same split every time, every seed gives splits of the
same sizes, and a dataset of files gives the same split whatever the seed.

A task plugin's::

    from harness.testing import TaskConformanceSuite

    class TestMyTask(TaskConformanceSuite):
        task = "my_task"

checks that the task is registered by a plugin, validates against the datasets the harness
knows, and that its model computes finite outputs of the right shape on a batch of its data
with the harness's initial weights (the numpy reference, :mod:`harness.workload.reference`).
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np
import pytest

from harness.data import datasets
from harness.registry.catalog import known_datasets, load_task
from harness.registry.plugins import get_registry


def _load(info: Any, seed: int) -> datasets.Split:
    return datasets.load(info, datasets.locate(info), seed=seed)


class DatasetConformanceSuite:
    """The contract of a dataset plugin. Set :attr:`dataset` in a subclass named ``Test...``."""

    #: the dataset's registered name
    dataset: ClassVar[str] = ""
    #: the seeds the split is loaded with
    seeds: ClassVar[tuple[int, ...]] = (0, 1)

    @pytest.fixture(scope="class")
    @classmethod
    def info(cls) -> Any:
        assert cls.dataset, "set the class attribute `dataset` to the name your plugin registers"
        known = known_datasets()
        assert cls.dataset in known, (
            f"no dataset {cls.dataset!r} is registered; is the plugin installed "
            "(`harness list` shows its datasets), and does its harness_register_datasets hook "
            "call register(DatasetInfo(...))?"
        )
        return known[cls.dataset]

    @pytest.fixture(scope="class")
    @classmethod
    def splits(cls, info: Any) -> dict[int, datasets.Split]:
        return {seed: _load(info, seed) for seed in cls.seeds}

    def test_is_registered_with_its_provider(self, info: Any):
        entry = get_registry().datasets.get(self.dataset)
        provider = entry.info.provider if entry is not None else info.provider
        assert provider, "the registry names who provides every dataset"
        if entry is not None:
            assert entry.plugin in provider

    def test_what_it_loads_is_identified_by_a_checksum(self, info: Any, splits):
        if info.generate is None:
            sums = datasets.file_sums(info)  # raises for a file without a SHA-256
            assert set(sums) == set(datasets.ROLES)
            assert all(len(value) == 64 for value in sums.values())
        again = _load(info, self.seeds[0])
        assert again.sha256 == splits[self.seeds[0]].sha256, (
            "loading the same seed twice gave different data: generate(seed) must draw only "
            "from the seed (numpy.random.default_rng(seed), never the global state or the clock)"
        )

    def test_inputs_are_float32_of_the_declared_shape_and_finite(self, info: Any, splits):
        for split in splits.values():
            for part in (split.train, split.test):
                assert part.x.dtype == np.float32
                declared = tuple(info.input_shape)
                assert part.x.shape[1:] in (declared, (*declared, 1))  # a channel axis may follow
                assert np.isfinite(part.x).all()

    def test_labels_are_in_range_and_match_the_inputs(self, info: Any, splits):
        for split in splits.values():
            for part in (split.train, split.test):
                assert len(part.x) == len(part.y) > 0, "both splits hold samples, one label each"
                if info.num_classes:
                    assert np.issubdtype(part.y.dtype, np.integer)
                    assert part.y.min() >= 0 and part.y.max() < info.num_classes
                else:
                    assert part.y.dtype == np.float32 and np.isfinite(part.y).all()

    def test_the_split_is_fixed(self, info: Any, splits):
        sizes = {(len(s.train.x), len(s.test.x)) for s in splits.values()}
        assert len(sizes) == 1, f"the split's sizes change with the seed: {sorted(sizes)}"
        if info.generate is None:
            digests = {split.sha256 for split in splits.values()}
            assert len(digests) == 1, "a dataset of files loads the same whatever the seed"
            first, *others = splits.values()
            for other in others:
                assert np.array_equal(first.test.x, other.test.x)


class TaskConformanceSuite:
    """The contract of a task plugin. Set :attr:`task` in a subclass named ``Test...``."""

    #: the task's registered name
    task: ClassVar[str] = ""
    #: how many samples of its dataset the forward pass is checked on
    batch: ClassVar[int] = 8

    @pytest.fixture(scope="class")
    @classmethod
    def loaded(cls) -> Any:
        assert cls.task, "set the class attribute `task` to the name your plugin registers"
        return load_task(cls.task)  # a TaskError names the first problem in the file

    def test_is_registered_by_a_plugin(self, loaded: Any):
        entry = get_registry().tasks.get(self.task)
        assert entry is not None, (
            f"{self.task!r} loads but no plugin registered it: does the plugin's "
            "harness_register_tasks hook call register(path_of_the_toml_file)?"
        )
        assert loaded.name == self.task

    def test_its_model_computes_on_its_data(self, loaded: Any):
        from harness.workload.fairness import initial_weights
        from harness.workload.reference import forward

        split = datasets.shaped_for(loaded, _load(loaded.dataset_info, loaded.seed))
        x = split.train.x[: self.batch].astype(np.float64)
        outputs = forward(loaded.model, initial_weights(loaded), x)
        classes = loaded.dataset_info.num_classes
        assert outputs.shape == (len(x), classes or 1)
        assert np.isfinite(outputs).all()
