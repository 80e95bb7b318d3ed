"""Bad input gets one clear line and a documented exit code, never a traceback or a half run."""

import shutil

import pytest

from harness.data.datasets import packaged_dir

from .conftest import harness_env, run_harness


def assert_one_clear_line(result, code: int, *fragments: str):
    assert result.returncode == code, (result.stdout, result.stderr)
    assert "Traceback" not in result.stderr + result.stdout
    message = result.stderr.strip()
    assert len(message.splitlines()) == 1, message
    for fragment in fragments:
        assert fragment in message.replace("\n", " "), message


def test_help_explains_the_exit_codes():
    result = run_harness("run", "--help")
    assert result.returncode == 0
    assert "Exit codes:" in result.stdout and "checksum" in result.stdout
    assert "--all-frameworks" in result.stdout and "--threads" in result.stdout


def test_unknown_task_suggests_the_closest(tmp_path):
    result = run_harness("run", "--task", "mnist_mpl", "--all-frameworks", "--out", str(tmp_path))
    assert_one_clear_line(result, 2, "unknown task 'mnist_mpl'; did you mean 'mnist_mlp'?")
    assert not any(tmp_path.iterdir())  # nothing written


def test_unknown_framework_suggests_the_closest(tmp_path):
    result = run_harness("run", "--task", "mnist_mlp", "-f", "pytorch", "--out", str(tmp_path))
    assert_one_clear_line(result, 2, "unknown framework 'pytorch'", "did you mean 'torch'?")
    assert not any(tmp_path.iterdir())


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (["--epochs", "0"], "Invalid value for '--epochs'"),
        (["--threads", "-2"], "Invalid value for '--threads'"),
        (["--device", "tpu"], "Invalid value for '--device'"),
    ],
)
def test_bad_values_are_usage_errors(tmp_path, args, fragment):
    result = run_harness(
        "run", "--task", "mnist_mlp", "--all-frameworks", "--out", str(tmp_path), *args
    )
    assert_one_clear_line(result, 2, fragment)


def test_frameworks_must_be_named(tmp_path):
    result = run_harness("run", "--task", "mnist_mlp", "--out", str(tmp_path))
    assert_one_clear_line(result, 2, "give either --framework NAME")


def test_a_malformed_task_file_names_the_file(tmp_path):
    task = tmp_path / "broken.toml"
    task.write_text("name = 'x'\n[model\n")
    result = run_harness(
        "run", "--task", str(task), "--all-frameworks", "--out", str(tmp_path / "out")
    )
    assert_one_clear_line(result, 2, f"{task}: not valid TOML")
    assert not (tmp_path / "out").exists()


def test_a_missing_data_dir(tmp_path):
    result = run_harness(
        "run",
        "--task",
        "mnist_mlp",
        "--all-frameworks",
        "--data-dir",
        str(tmp_path / "nowhere"),
        "--out",
        str(tmp_path / "out"),
    )
    assert_one_clear_line(result, 3, "does not exist", "--data-dir")
    assert not (tmp_path / "out").exists()


def run_with_damaged_data(tmp_path, damage):
    """Run mnist_mlp on a copy of MNIST after ``damage(folder)`` has spoilt one of its files."""
    data = tmp_path / "data" / "mnist"
    shutil.copytree(packaged_dir() / "mnist", data)
    damage(data)
    out = tmp_path / "out"
    result = run_harness(
        "run",
        "--task",
        "mnist_mlp",
        "--all-frameworks",
        "--data-dir",
        str(tmp_path / "data"),
        "--out",
        str(out),
    )
    assert not out.exists()  # nothing written
    return result


def test_corrupt_data_names_the_file(tmp_path):
    def not_gzip(data):
        (data / "t10k-images-idx3-ubyte.gz").write_bytes(b"\x1f\x8b not really gzip")

    assert_one_clear_line(run_with_damaged_data(tmp_path, not_gzip), 3, "t10k-images-idx3-ubyte.gz")


def test_an_unusable_output_folder(tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    result = run_harness(
        "run", "--task", "mnist_mlp", "--all-frameworks", "--out", str(blocker / "results")
    )
    assert_one_clear_line(result, 2, "cannot create a run folder", "--out")


def test_list_shows_tasks_and_frameworks_with_versions():
    result = run_harness("list", env=harness_env())
    assert result.returncode == 0, result.stderr
    for name in ("mnist_mlp", "tensorflow", "torch", "jax", "built-in"):
        assert name in result.stdout


def test_gpu_asked_for_and_none_present(tmp_path):
    result = run_harness(
        "run", "--task", "mnist_mlp", "--all-frameworks", "--device", "gpu", "--out", str(tmp_path)
    )
    if "no GPU found" not in result.stderr:
        pytest.skip("this machine has a GPU")  # the check is for machines without one
    assert_one_clear_line(result, 2, "--device gpu: no GPU found on this machine", "--device cpu")
    assert not any(tmp_path.iterdir())


def test_more_threads_than_cores(tmp_path):
    result = run_harness(
        "run",
        "--task",
        "mnist_mlp",
        "--all-frameworks",
        "--threads",
        "4096",
        "--out",
        str(tmp_path),
    )
    assert_one_clear_line(result, 2, "Invalid value for '--threads': 4096 is more than the")


def test_a_bad_memory_limit(tmp_path):
    result = run_harness(
        "run",
        "--task",
        "mnist_mlp",
        "--all-frameworks",
        "--memory-limit",
        "lots",
        "--out",
        str(tmp_path),
    )
    assert_one_clear_line(result, 2, "'lots' is not a size like 512M or 4G")


def test_resume_of_a_folder_that_is_not_a_run(tmp_path):
    result = run_harness("run", "--resume", str(tmp_path))
    assert_one_clear_line(result, 2, f"{tmp_path} is not a harness run folder (no run.json)")


def test_resume_of_a_run_from_a_newer_harness(tmp_path):
    (tmp_path / "run.json").write_text('{"schema": 99}')
    result = run_harness("run", "--resume", str(tmp_path))
    assert_one_clear_line(result, 2, "written by a newer harness (schema 99", "upgrade harness")


def test_resume_refuses_a_different_configuration(tmp_path):
    (tmp_path / "run.json").write_text('{"schema": 1}')
    result = run_harness("run", "--resume", str(tmp_path), "--epochs", "3", "-f", "torch")
    assert_one_clear_line(
        result, 2, "--resume reuses the configuration recorded in", "drop --frameworks, --epochs"
    )


def test_a_truncated_dataset_file_names_it(tmp_path):
    def truncate(data):
        whole = (data / "train-labels-idx1-ubyte.gz").read_bytes()
        (data / "train-labels-idx1-ubyte.gz").write_bytes(whole[: len(whole) // 3])

    result = run_with_damaged_data(tmp_path, truncate)
    assert_one_clear_line(result, 3, "train-labels-idx1-ubyte.gz: cannot read")


def test_an_unknown_dataset_suggests_the_closest(tmp_path):
    result = run_harness(
        "run",
        "--task",
        "mnist_mlp",
        "--all-frameworks",
        "--dataset",
        "fashion-mnist",
        "--out",
        str(tmp_path),
    )
    assert_one_clear_line(
        result, 2, "unknown dataset 'fashion-mnist'; did you mean 'fashion_mnist'?"
    )
    assert not any(tmp_path.iterdir())
