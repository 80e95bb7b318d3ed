"""Bad values, tasks that can't run here, damaged dataset files and names that look like paths:
each is one line and an exit code before anything runs, and no run folder is left behind."""

from __future__ import annotations

import gzip
import re
import shutil
from pathlib import Path

import pytest

from harness.data.idx import read_idx_bytes
from harness.errors import DataError
from harness.fairness import parameter_count as allocated_count
from harness.feasibility import parameter_count
from harness.tasks import load_task

from .conftest import harness_env, run_harness

TASKS = Path(__file__).parent.parent / "tasks"
MNIST = Path(__file__).parent.parent / "harness" / "data" / "mnist"
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
    ],
)
def test_non_finite_or_out_of_range_options_are_refused(tmp_path, option, value, fragment):
    """non-finite and out-of-range numbers: run options are refused before any work."""
    refused(tmp_path, "run", "--task", "mnist_mlp", "-f", "centroid", f"{option}={value}",
            fragments=(option, fragment))


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
        (lambda text: re.sub(r"learning_rate = [0-9.e-]+", "learning_rate = 1e-60", text)
         if "learning_rate" in text else text.replace("[training]", "[training.optimizer]\nname = \"adam\"\nlearning_rate = 1e-60\n\n[training]", 1),
         "in float32"),
    ],
)
def test_task_numbers_that_are_not_numbers_here_are_refused(tmp_path, change, fragment):
    """non-finite and out-of-range numbers: task values NaN, inf, 0 in float32 or true are refused."""
    refused(tmp_path, "run", "--task", task_file(tmp_path, change), "-f", "centroid",
            fragments=("task.toml", fragment))


# -- 9. tasks that can't run on this data or machine ---------------------------------------


def test_holding_out_the_whole_training_set_is_refused_with_the_figures(tmp_path):
    """tasks that can't run here: validation_samples >= the training set is refused up front."""

    def hold_out_everything(text):
        if "validation_samples" in text:
            return re.sub(r"validation_samples = \d+", "validation_samples = 60000", text)
        return text.replace("[training]", "[training]\nvalidation_samples = 60000", 1)

    refused(tmp_path, "run", "--task", task_file(tmp_path, hold_out_everything), "-f", "centroid",
            fragments=("60,000", "training samples"))


def test_a_model_too_big_for_the_machine_is_refused_with_the_figures(tmp_path):
    """tasks that can't run here: 10^12 parameters are refused before any cell, with the figure."""

    def huge(text):
        return text.replace("units = 128", "units = 1000000").replace(
            'kind = "dense"\nunits = 10\n',
            'kind = "dense"\nunits = 1000000\nactivation = "relu"\n\n[[model.layers]]\nkind = "dense"\nunits = 10\n',
        )

    line = refused(tmp_path, "run", "--task", task_file(tmp_path, huge), "-f", "centroid",
                   fragments=("parameters", "more than this machine's memory"))
    assert "1,000,796,000,010 parameters" in line and "TiB" in line


def test_a_model_over_the_memory_limit_is_refused(tmp_path):
    """tasks that can't run here: a model that can't fit --memory-limit is refused up front."""
    refused(tmp_path, "run", "--task", "mnist_mlp", "-f", "centroid", "--memory-limit", "1M",
            fragments=("101,770 parameters", "--memory-limit"))


@pytest.mark.parametrize("name", ["mnist_mlp", "mnist_cnn", "mnist_rnn", "series_rnn"])
def test_the_up_front_parameter_count_is_the_harness_weights_count(name):
    """tasks that can't run here: the count from shapes alone equals the allocated weights'."""
    task = load_task(name)
    assert parameter_count(task) == allocated_count(task)


# -- 12. decompression bombs ---------------------------------------------------------------


def test_a_decompression_bomb_is_refused_without_expanding_it(tmp_path):
    """decompression bombs: a .gz that expands past the file's known size stops at the cap."""
    data = tmp_path / "data" / "mnist"
    shutil.copytree(MNIST, data, ignore=shutil.ignore_patterns("*.md"))
    with gzip.open(data / "t10k-labels-idx1-ubyte.gz", "wb") as handle:
        for _ in range(64):
            handle.write(bytes(1 << 20))  # 64 MiB of zeros, about 64 KB compressed
    refused(tmp_path, "run", "--task", "mnist_mlp", "-f", "centroid", "--data-dir",
            str(tmp_path / "data"), code=3, fragments=("expands to more than the 10,008 bytes",))


def test_reading_stops_at_the_cap(tmp_path):
    """decompression bombs: the reader raises once past the cap instead of reading on."""
    bomb = tmp_path / "bomb.gz"
    with gzip.open(bomb, "wb") as handle:
        handle.write(bytes(8 << 20))
    with pytest.raises(DataError, match="expands to more than the 1,000 bytes"):
        read_idx_bytes(bomb, limit=1000)


# -- 14. names ---------------------------------------------------------------------------


def test_a_folder_named_like_a_task_does_not_hide_the_task(tmp_path):
    """names: a bare name is a task name, whatever lies in the current folder."""
    (tmp_path / "mnist_mlp").mkdir()
    result = run_harness("run", "--task", "mnist_mlp", "-f", "centroid", "--epochs", "1",
                         "--train-subset", "500", "--no-report", "--out", str(tmp_path / "out"),
                         env=PLUGINS, cwd=tmp_path)
    assert result.returncode == 0, result.stderr


@pytest.mark.parametrize(("given", "fragment"), [("mnist_mlp/", "is a folder"), ("./nothing.toml", "not found")])
def test_a_path_is_a_task_file_and_a_folder_is_one_line(tmp_path, given, fragment):
    """names: a path has a / or ends in .toml; a folder or a missing file is one line."""
    (tmp_path / "mnist_mlp").mkdir()
    out = tmp_path / "out"
    result = run_harness("run", "--task", given, "-f", "centroid", "--out", str(out),
                         env=PLUGINS, cwd=tmp_path)
    assert result.returncode == 2 and fragment in result.stderr and "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1 and not out.exists()
