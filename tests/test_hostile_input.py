"""Bad values, tasks that can't run here, damaged dataset files and names that look like paths:
each is one line and an exit code before anything runs, and no run folder is left behind."""

from __future__ import annotations

import gzip
import os
import re
import shutil
from pathlib import Path

import pytest

from harness.data import datasets, idx
from harness.data.datasets import DatasetInfo
from harness.data.idx import read_idx_bytes
from harness.errors import DataError, HarnessError
from harness.registry.catalog import dataset_info, load_task
from harness.workload.fairness import parameter_count as allocated_count
from harness.workload.feasibility import parameter_count

from .conftest import harness_env, run_harness

TASKS = Path(__file__).parent.parent / "tasks"
MNIST = Path(__file__).parent.parent / "harness" / "data" / "mnist"
TINY_TASK = Path(__file__).parent / "support" / "tiny_blobs_mlp.toml"
PLUGINS = harness_env(HARNESS_PLUGINS="harness_test_plugins")


def refused(tmp_path, *args, code=2, fragments=()):
    """Run ``harness run … --out tmp/out``; assert one error line, ``code``, and no run folder."""
    out = tmp_path / "out"
    result = run_harness(*args, "--out", str(out), env=PLUGINS)
    lines = result.stderr.strip().splitlines()
    assert result.returncode == code, (result.returncode, result.stderr)
    assert "Traceback" not in result.stderr
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    for fragment in fragments:
        assert fragment in lines[0], lines[0]
    assert not out.exists() or not any(out.iterdir())
    return lines[0]


def task_file(tmp_path, change) -> str:
    path = tmp_path / "task.toml"
    path.write_text(change((TASKS / "mnist_mlp.toml").read_text()))
    return str(path)


# -- 8. non-finite and out-of-range numbers --------------------------------------------


@pytest.mark.parametrize(
    ("option", "value", "fragment"),
    [
        ("--timeout", "inf", "not a finite number"),
        ("--timeout", "nan", "not a finite number"),
        ("--timeout", "-5", "not in the range"),
        ("--memory-limit", "0.5", "less than 1M"),
        ("--memory-limit", "0", "not a size"),
        # 400 digits: a float would make it inf, and int(inf) a traceback
        ("--memory-limit", "9" * 400 + "G", "more than 8 EiB"),
    ],
)
def test_non_finite_or_out_of_range_options_are_refused(tmp_path, option, value, fragment):
    """non-finite and out-of-range numbers: run options are refused before any work."""
    refused(
        tmp_path,
        "run",
        "--task",
        "mnist_mlp",
        "-f",
        "centroid",
        f"{option}={value}",
        fragments=(option, fragment),
    )


def test_a_non_finite_compare_threshold_is_refused(tmp_path):
    """non-finite and out-of-range numbers: --threshold nan is refused."""
    result = run_harness("compare", str(tmp_path), str(tmp_path), "--threshold", "nan", env=PLUGINS)
    assert result.returncode == 2 and "not a finite number" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


@pytest.mark.parametrize(
    ("change", "fragment"),
    [
        (lambda text: text.replace("divide_by = 255 ", "divide_by = inf "), "finite number"),
        (lambda text: text.replace("divide_by = 255 ", "divide_by = nan "), "finite number"),
        (lambda text: text.replace("divide_by = 255 ", "divide_by = 1e-50 "), "in float32"),
        (lambda text: text.replace("divide_by = 255 ", "divide_by = 1e300 "), "in float32"),
        (lambda text: text.replace("units = 128", "units = true"), "not a number"),
        (
            lambda text: (
                re.sub(r"learning_rate = [0-9.e-]+", "learning_rate = 1e-60", text)
                if "learning_rate" in text
                else text.replace(
                    "[training]",
                    '[training.optimizer]\nname = "adam"\nlearning_rate = 1e-60\n\n[training]',
                    1,
                )
            ),
            "in float32",
        ),
        # strict types: text, decimals for counts and true are not numbers, wherever they sit
        (lambda text: text.replace("units = 128", 'units = "128"'), "'128' is text, not a number"),
        (lambda text: text.replace("divide_by = 255 ", 'divide_by = "255" '), "is text"),
        (lambda text: text.replace("units = 128", "units = 128.0"), "takes a whole number"),
        (
            lambda text: text.replace("fashion_mnist = 0.85", "fashion_mnist = true"),
            "by_dataset.fashion_mnist: True is a true/false value",
        ),
        # a float that float32 rounds onto a bound it must stay off, or to a subnormal
        (
            lambda text: text.replace("beta_2 = 0.999", "beta_2 = 0.99999999999"),
            "is 1.0 in float32, which the frameworks compute in, and it must be less than 1",
        ),
        (lambda text: text.replace("epsilon = 1e-7", "epsilon = 1e-44"), "smallest normal number"),
        (lambda text: text.replace("fashion_mnist = 0.85", "fashion_mnist = 1e-50"), "in float32"),
    ],
)
def test_task_numbers_that_are_not_numbers_here_are_refused(tmp_path, change, fragment):
    """non-finite and out-of-range numbers: task values NaN, inf, 0 in float32 or true are refused."""
    refused(
        tmp_path,
        "run",
        "--task",
        task_file(tmp_path, change),
        "-f",
        "centroid",
        fragments=("task.toml", fragment),
    )


# -- 9. tasks that can't run on this data or machine ---------------------------------------


def test_holding_out_the_whole_training_set_is_refused_with_the_figures(tmp_path):
    """tasks that can't run here: validation_samples >= the training set is refused up front."""

    def hold_out_everything(text):
        if "validation_samples" in text:
            return re.sub(r"validation_samples = \d+", "validation_samples = 60000", text)
        return text.replace("[training]", "[training]\nvalidation_samples = 60000", 1)

    refused(
        tmp_path,
        "run",
        "--task",
        task_file(tmp_path, hold_out_everything),
        "-f",
        "centroid",
        fragments=("60,000", "training samples"),
    )


def test_a_model_too_big_for_the_machine_is_refused_with_the_figures(tmp_path):
    """tasks that can't run here: 10^12 parameters are refused before any cell, with the figure."""

    def huge(text):
        return text.replace("units = 128", "units = 1000000").replace(
            'kind = "dense"\nunits = 10\n',
            'kind = "dense"\nunits = 1000000\nactivation = "relu"\n\n[[model.layers]]\nkind = "dense"\nunits = 10\n',
        )

    line = refused(
        tmp_path,
        "run",
        "--task",
        task_file(tmp_path, huge),
        "-f",
        "centroid",
        fragments=("parameters", "more than this machine's memory"),
    )
    assert "1,000,796,000,010 parameters" in line and "TiB" in line


def test_a_model_over_the_memory_limit_is_refused(tmp_path):
    """tasks that can't run here: a model that can't fit --memory-limit is refused up front."""
    refused(
        tmp_path,
        "run",
        "--task",
        "mnist_mlp",
        "-f",
        "centroid",
        "--memory-limit",
        "1M",
        fragments=("101,770 parameters", "209.4 MiB for the data", "--memory-limit, 1.0 MiB"),
    )


def test_holding_out_a_generated_datasets_whole_training_set_is_refused(tmp_path):
    """tasks that can't run here: a plugin's generated dataset is counted, not assumed."""
    path = tmp_path / "task.toml"
    path.write_text(
        TINY_TASK.read_text().replace("validation_samples = 200", "validation_samples = 2000")
    )
    out = tmp_path / "out"
    result = run_harness(
        "run",
        "--task",
        str(path),
        "-f",
        "centroid",
        "--out",
        str(out),
        env=harness_env(HARNESS_PLUGINS="harness_test_plugins,harness_tiny_plugin"),
    )
    assert result.returncode == 2, result.stderr
    assert result.stderr.strip() == (
        "error: task tiny_blobs_mlp: training.validation_samples is 2,000, but dataset "
        "'tiny_blobs' has only 2,000 training samples; hold out fewer"
    )
    assert not out.exists()


def test_a_plugin_dataset_of_files_without_sizes_or_sums_is_refused(register_plugin, registry):
    """decompression bombs: a plugin's dataset of files gives each one's size (the cap) and sum."""
    import harness

    def mnist_like(name: str, **extra) -> DatasetInfo:
        return DatasetInfo(
            name=name,
            files=dict(datasets._IDX_FILES),
            input_shape=(28, 28),
            num_classes=10,
            mirrors=(),
            system_dirs=(MNIST,),
            **extra,
        )

    class Uncapped:
        @harness.hookimpl
        def harness_register_datasets(self, register):
            register(mnist_like("uncapped"))

    class Unsummed:
        @harness.hookimpl
        def harness_register_datasets(self, register):
            register(mnist_like("unsummed", sizes=dict(datasets._IDX_SIZES)))

    register_plugin(Uncapped(), "uncapped")
    register_plugin(Unsummed(), "unsummed")
    reasons = [failure.reason for failure in registry.failures if failure.plugin == "uncapped"]
    assert reasons == [
        "ValueError: dataset 'uncapped': give files and sizes (decompressed bytes, the cap "
        "reading stops at) for each of train_images, train_labels, test_images, test_labels"
    ]
    with pytest.raises(HarnessError, match="gives no SHA-256 for its train_images file"):
        datasets.locate(dataset_info("unsummed"))


@pytest.mark.parametrize("name", ["mnist_mlp", "mnist_cnn", "mnist_rnn", "series_rnn"])
def test_the_up_front_parameter_count_is_the_harness_weights_count(name):
    """tasks that can't run here: the count from shapes alone equals the allocated weights'."""
    task = load_task(name)
    assert parameter_count(task) == allocated_count(task)


# -- 12. decompression bombs ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("stem", "fragment"),
    [
        # 64 KB on disk, less than the 47 MB file it replaces: stopped while streaming
        ("train-images-idx3-ubyte", "expands to more than the 47,040,016 bytes this file holds"),
        # larger on disk than the 10,008 bytes the file holds: refused before it is read
        ("t10k-labels-idx1-ubyte", "bytes on disk, more than the 10,008 bytes this file holds"),
    ],
)
def test_a_decompression_bomb_is_refused_without_expanding_it(tmp_path, stem, fragment):
    """decompression bombs: a .gz that expands past the file's known size stops at the cap."""
    data = tmp_path / "data" / "mnist"
    shutil.copytree(MNIST, data, ignore=shutil.ignore_patterns("*.md"))
    with gzip.open(data / f"{stem}.gz", "wb") as handle:
        for _ in range(64):
            handle.write(bytes(1 << 20))  # 64 MiB of zeros, about 64 KB compressed
    refused(
        tmp_path,
        "run",
        "--task",
        "mnist_mlp",
        "-f",
        "centroid",
        "--data-dir",
        str(tmp_path / "data"),
        code=3,
        fragments=(f"{stem}.gz: ", fragment),
    )


def test_reading_stops_at_the_cap(tmp_path, monkeypatch):
    """decompression bombs: the reader decompresses one byte past the cap, then raises."""
    bomb = tmp_path / "bomb.gz"
    with gzip.open(bomb, "wb") as handle:
        handle.write(bytes(8 << 20))  # 8 MiB of zeros, about 8 KB on disk
    decompressed = []
    real_open = gzip.open

    class CountingGzip:
        """gzip.open, counting the bytes each read decompresses."""

        def __init__(self, *args):
            self.handle = real_open(*args)

        def __enter__(self):
            return self

        def __exit__(self, *exc_info):
            self.handle.close()

        def read(self, size):
            data = self.handle.read(size)
            decompressed.append(len(data))
            return data

    monkeypatch.setattr(idx.gzip, "open", CountingGzip)
    with pytest.raises(DataError, match="expands to more than the 1,000,000 bytes"):
        read_idx_bytes(bomb, limit=1_000_000)
    assert sum(decompressed) == 1_000_001


def test_a_damaged_deflate_stream_is_one_line(tmp_path):
    """decompression bombs: a .gz whose compressed data is damaged (zlib's own error) is one line."""
    data = tmp_path / "data" / "mnist"
    shutil.copytree(MNIST, data, ignore=shutil.ignore_patterns("*.md"))
    damaged = data / "train-labels-idx1-ubyte.gz"
    content = bytearray(damaged.read_bytes())
    content[10_000:10_400] = bytes(byte ^ 0x55 for byte in content[10_000:10_400])
    damaged.write_bytes(bytes(content))
    refused(
        tmp_path,
        "run",
        "--task",
        "mnist_mlp",
        "-f",
        "centroid",
        "--data-dir",
        str(tmp_path / "data"),
        code=3,
        fragments=(
            "train-labels-idx1-ubyte.gz: cannot read: Error -3 while decompressing data",
            "; delete it so a good copy is fetched",
        ),
    )


# -- 14. names ---------------------------------------------------------------------------


def test_a_folder_named_like_a_task_does_not_hide_the_task(tmp_path):
    """names: a bare name is a task name, whatever lies in the current folder."""
    (tmp_path / "mnist_mlp").mkdir()
    result = run_harness(
        "run",
        "--task",
        "mnist_mlp",
        "-f",
        "centroid",
        "--epochs",
        "1",
        "--train-subset",
        "500",
        "--no-report",
        "--out",
        str(tmp_path / "out"),
        env=PLUGINS,
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr


@pytest.mark.parametrize(
    ("given", "fragment"),
    [
        ("mnist_mlp/", "mnist_mlp: is a folder, not a task file"),
        ("./nothing.toml", "nothing.toml: task file not found"),
        # neither is opened: a pipe would wait for a writer, /dev/zero never ends
        ("pipe.toml", "pipe.toml: is not a regular file (a device, pipe or socket)"),
        ("/dev/zero", "/dev/zero: is not a regular file (a device, pipe or socket)"),
        ("big.toml", "big.toml: more than 1,048,576 bytes, not a task file"),
    ],
)
def test_a_path_is_a_task_file_and_a_folder_is_one_line(tmp_path, given, fragment):
    """names: a path has a / or ends in .toml; a folder or a missing file is one line."""
    (tmp_path / "mnist_mlp").mkdir()
    os.mkfifo(tmp_path / "pipe.toml")
    (tmp_path / "big.toml").write_text("# padding\n" * 200_000)
    out = tmp_path / "out"
    # a short timeout: a harness that opened the pipe would wait for a writer forever
    result = run_harness(
        "run",
        "--task",
        given,
        "-f",
        "centroid",
        "--out",
        str(out),
        env=PLUGINS,
        cwd=tmp_path,
        timeout=300,
    )
    assert result.returncode == 2 and fragment in result.stderr and "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1 and not out.exists()
