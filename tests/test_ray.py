"""The Ray executor against a real Ray head started on loopback inside the test."""

import contextlib
import json
import os
import shutil
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

from harness.store.results import RunDir

from .conftest import harness_env, run_harness
from .test_hostile_process import TINY, harness, hostile_env, plant_hostile_modules

#: token authentication off: with a token in ~/.ray (a local ray.init() leaves one) the test
#: head would turn it on, and drivers could not connect
RAY_ENV = {"RAY_USAGE_STATS_ENABLED": "0", "RAY_AUTH_MODE": "disabled"}
PLUGINS = harness_env(HARNESS_PLUGINS="harness_test_plugins", **RAY_ENV)
MATRIX = [
    "--task",
    "mnist_mlp",
    "--epochs",
    "1",
    "--train-subset",
    "1000",
    "--timeout",
    "120",
    "-f",
    "centroid",
    "-f",
    "segfaults",
    "-f",
    "raises",
    "-f",
    "missing",
]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@contextlib.contextmanager
def ray_cluster(temp: Path, env: dict[str, str] = PLUGINS) -> Iterator[str]:
    """`ray start --head` with 2 CPUs on 127.0.0.1, in a session of its own; yields its address.

    Stopped by the processes of that session alone: `ray stop` would stop every Ray process on
    the machine, a cluster of the user's own included.
    """
    ray = shutil.which("ray", path=os.path.dirname(sys.executable))
    port = free_port()
    start = [
        ray,
        "start",
        "--head",
        "--node-ip-address",
        "127.0.0.1",
        "--port",
        str(port),
        "--num-cpus",
        "2",
        "--num-gpus",
        "0",
        "--include-dashboard",
        "false",
        "--disable-usage-stats",
        "--temp-dir",
        str(temp),
    ]
    starter = subprocess.Popen(
        start,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        start_new_session=True,  # every process of the cluster is in this session
    )
    session = starter.pid
    try:
        _, stderr = starter.communicate(timeout=180)
        assert starter.returncode == 0, stderr.decode(errors="replace")
        yield f"127.0.0.1:{port}"
    finally:
        starter.kill()
        starter.wait()
        stop_session(session)


def stop_session(session: int, grace: float = 10) -> None:
    """Stop every process of session ``session``: SIGTERM, then SIGKILL after ``grace`` s."""
    assert session != os.getsid(0)  # never our own
    processes = []
    for process in psutil.process_iter():
        with contextlib.suppress(OSError):
            if os.getsid(process.pid) == session:
                processes.append(process)
    for process in processes:
        with contextlib.suppress(psutil.Error):
            process.terminate()
    _, alive = psutil.wait_procs(processes, timeout=grace)
    for process in alive:
        with contextlib.suppress(psutil.Error):
            process.kill()
    psutil.wait_procs(alive, timeout=grace)


@pytest.fixture(scope="module")
def ray_head(tmp_path_factory):
    """A Ray head on loopback for this module's tests; its workers see the test plugins."""
    with ray_cluster(tmp_path_factory.mktemp("ray")) as address:
        yield address


def rows_by_framework(out):
    [run_dir] = out.iterdir()
    return run_dir, {row["framework"]: row for row in RunDir(run_dir).read_results()}


def test_the_ray_executor_gives_what_the_local_one_gives(ray_head, tmp_path):
    local = run_harness(
        "run", *MATRIX, "--out", str(tmp_path / "local"), "--no-report", env=PLUGINS
    )
    clustered = run_harness(
        "run",
        *MATRIX,
        "--executor",
        "ray",
        "--ray-address",
        ray_head,
        "--out",
        str(tmp_path / "ray"),
        env=PLUGINS,
    )
    assert local.returncode == clustered.returncode == 1, clustered.stdout + clustered.stderr
    _, local_rows = rows_by_framework(tmp_path / "local")
    run_dir, ray_rows = rows_by_framework(tmp_path / "ray")

    assert local_rows.keys() == ray_rows.keys() == {"centroid", "segfaults", "raises", "missing"}
    for framework, row in local_rows.items():
        clustered_row = ray_rows[framework]
        assert (clustered_row["status"], clustered_row["kind"]) == (row["status"], row["kind"])
        assert clustered_row.keys() == row.keys()
        assert clustered_row["metrics"].keys() == row["metrics"].keys()
    assert ray_rows["segfaults"]["error"].startswith("crashed: killed by SIGSEGV")
    assert (
        ray_rows["centroid"]["metrics"]["test_accuracy"]
        == local_rows["centroid"]["metrics"]["test_accuracy"]
    )

    # the node's log, traceback and environment came back into the run folder
    assert "Traceback" in (run_dir / ray_rows["raises"]["traceback"]).read_text()
    assert (run_dir / ray_rows["centroid"]["log"]).exists()
    assert (run_dir / "hosts" / f"{ray_rows['centroid']['host']}.json").exists()
    assert ray_rows["centroid"]["settings"]["cpu_affinity"] == "not pinned"
    assert "host" in clustered.stdout and (run_dir / "report.html").exists()


def test_a_worker_lost_mid_cell_is_a_failed_cell_and_the_run_goes_on(ray_head, tmp_path):
    result = run_harness(
        "run",
        "--task",
        "mnist_mlp",
        "--epochs",
        "1",
        "--train-subset",
        "1000",
        "-f",
        "kills-parent",
        "-f",
        "centroid",
        "--executor",
        "ray",
        "--ray-address",
        ray_head,
        "--out",
        str(tmp_path),
        "--no-report",
        env=PLUGINS,
    )
    assert result.returncode == 1, result.stdout + result.stderr
    _, rows = rows_by_framework(tmp_path)
    assert (rows["kills-parent"]["status"], rows["kills-parent"]["kind"]) == ("failed", "node_lost")
    assert rows["kills-parent"]["error"].startswith("lost on the cluster: ")
    assert rows["centroid"]["status"] == "ok"


def test_a_cluster_that_is_not_there_is_one_clear_line(tmp_path):
    result = run_harness(
        "run",
        *MATRIX,
        "--executor",
        "ray",
        "--ray-address",
        f"127.0.0.1:{free_port()}",
        "--out",
        str(tmp_path),
        env=PLUGINS,
        timeout=300,
    )
    assert result.returncode == 2, result.stdout + result.stderr
    assert "cannot reach the Ray cluster" in result.stderr and "Traceback" not in result.stderr


def test_modules_in_the_drivers_current_folder_never_run_on_a_node(ray_head, tmp_path):
    """Code from the current folder runs in every cell: Ray puts the driver's current folder
    first on its workers' path unless the job has a working_dir; a numpy.py or harness_torch.py
    where harness is started is imported neither by the Ray worker nor by the cell."""
    marker = tmp_path / "IMPORTED"
    here = tmp_path / "here"
    plant_hostile_modules(here, marker)
    env = hostile_env(tmp_path, **RAY_ENV)
    result = harness(
        "run",
        *TINY,
        "-f",
        "probe",
        "--executor",
        "ray",
        "--ray-address",
        ray_head,
        "--out",
        "out",
        "--no-report",
        cwd=here,
        env=env,
    )
    assert not marker.exists(), marker.read_text()
    assert result.returncode == 0, result.stdout + result.stderr
    _, rows = rows_by_framework(here / "out")
    assert rows["probe"]["status"] == "ok"


def test_the_ray_executor_runs_a_version_matrix_each_in_its_environment(
    ray_head,
    wheels,
    toy_env,
    tmp_path,
):
    """The node builds each --with environment itself (this process builds none for Ray)."""
    environments = tmp_path / "environments"
    env = {**toy_env, **RAY_ENV, "HARNESS_ENV_DIR": str(environments)}
    result = run_harness(
        "run", "--task", "tiny_blobs_mlp", "-f", "toy", "--with", "toyframe==1.0",
        "--with", "toyframe==2.0", "--find-links", str(wheels), "--offline",
        "--executor", "ray", "--ray-address", ray_head, "--out", str(tmp_path / "ray"),
        "--no-report", "--json", env=env,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    rows = [json.loads(line) for line in result.stdout.splitlines() if line.startswith("{")]
    assert sorted(row["framework_version"] for row in rows) == ["1.0", "2.0"]
    for row in rows:
        assert row["status"] == "ok"
        assert row["environment"]["packages"]["toyframe"] == row["framework_version"]
        assert row["settings"]["cpu_affinity"] == "not pinned"  # it ran on the node
    assert "environment toyframe" not in result.stderr  # built there, not here
    assert len(list(environments.glob("*/harness-environment.json"))) == 2
