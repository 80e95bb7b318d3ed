"""Hostile surroundings of a run: files where it starts, signals, kills, the kernel's OOM killer.

Each test runs the installed ``harness`` command as a user would, from a folder of the test's
own, with the test plugins of ``tests/support`` and a few more written here. Every process a
test starts it also stops, by its own id; waits poll with a generous deadline.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

import psutil
import pytest

from harness.runner.process import ChildOutcome, Limits
from harness.store.results import RunDir

from .conftest import SUPPORT, harness_env

HARNESS = shutil.which("harness", path=os.path.dirname(sys.executable))
TINY = ["--task", "mnist_mlp", "--epochs", "1", "--train-subset", "1000"]

#: more misbehaving frameworks, loaded beside harness_test_plugins
PLUGINS = textwrap.dedent(
    """\
    import os
    import signal

    import harness
    from harness_test_plugins import CentroidAdapter


    class SigkillAdapter(CentroidAdapter):
        \"\"\"Killed by SIGKILL while building, by something that is not the OOM killer.\"\"\"

        name = "sigkills"

        def build(self, task, weights, x, y):
            os.kill(os.getpid(), signal.SIGKILL)


    class ProbeAdapter(CentroidAdapter):
        \"\"\"Imports a module that the test plants where it should never be found.\"\"\"

        name = "probe"

        def setup(self, *, device, threads):
            try:
                import harness_probe_target  # noqa: F401
            except ImportError:
                pass
            return super().setup(device=device, threads=threads)


    @harness.hookimpl
    def harness_register_frameworks(register):
        register(SigkillAdapter())
        register(ProbeAdapter())
    """
)


def plant_hostile_modules(
    folder: Path, marker: Path, names=("numpy", "json", "harness_torch", "harness_probe_target")
):
    """Put ``<name>.py`` files in ``folder`` that append to ``marker`` when imported."""
    folder.mkdir(parents=True, exist_ok=True)
    for name in names:
        (folder / f"{name}.py").write_text(
            f"import os\nwith open({str(marker)!r}, 'a') as f:\n"
            f"    f.write(f'{{os.getpid()}} imported {folder / name}.py\\n')\n"
        )


def hostile_env(tmp_path: Path, **extra: str) -> dict[str, str]:
    """The test plugins and this module's on an absolute PYTHONPATH; temporary folders private."""
    plugins = tmp_path / "plugins"
    plugins.mkdir(exist_ok=True)
    (plugins / "harness_hostile_plugins.py").write_text(PLUGINS)
    temp = tmp_path / "tmp"
    temp.mkdir(exist_ok=True)
    env = harness_env(
        HARNESS_PLUGINS="harness_test_plugins,harness_hostile_plugins",
        PYTHONPATH=os.pathsep.join([str(SUPPORT), str(plugins)]),
        TMPDIR=str(temp),
    )
    env.update(extra)
    return env


def harness(*args: str, cwd: Path, env: dict[str, str], timeout: float = 600):
    """Run the installed ``harness`` script (so the runner's own path is the script's folder)."""
    return subprocess.run(
        [HARNESS, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout
    )


def start_harness(*args: str, cwd: Path, env: dict[str, str]) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [HARNESS, *args],
        cwd=cwd,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=hear_ctrl_c,
    )


def hear_ctrl_c() -> None:
    """Ctrl-C's default action in the child, as in a terminal: a shell that starts the test
    suite in the background (`pytest &`, CI scripts) hands its children SIGINT ignored, and
    Python then keeps ignoring it."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def rows(out: Path) -> dict[str, dict]:
    [run_dir] = out.iterdir()
    return {row["framework"]: row for row in RunDir(run_dir).read_results()}


def wait_for(condition, what: str, timeout: float = 120):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"waited {timeout:g} s for {what}")


def gone(pid: int) -> bool:
    """The process has ended (a zombie waiting for its parent to reap it counts as ended)."""
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def cell_folders(temp: Path) -> list[Path]:
    return sorted(temp.glob("harness-cell-*"))


def stop(process: subprocess.Popen) -> None:
    if process.poll() is None:
        process.kill()
    process.communicate()


# --- code lying around ------------------------------------------------------------------------


def test_modules_in_the_current_folder_or_the_run_folder_never_run_in_a_cell(tmp_path):
    """Code from the current folder runs in every cell: a numpy.py where harness is started, or
    in the run folder a user resumes from, is never imported."""
    marker = tmp_path / "IMPORTED"
    here = tmp_path / "here"
    plant_hostile_modules(here, marker)
    env = hostile_env(tmp_path)

    first = harness(
        "run", *TINY, "-f", "centroid", "-f", "probe", "--out", "out", cwd=here, env=env
    )
    assert not marker.exists(), marker.read_text()
    assert first.returncode == 0, first.stdout + first.stderr

    # drop the last result, and resume from inside the run folder, which has its own numpy.py
    [run_dir] = (here / "out").iterdir()
    results = run_dir / "results.jsonl"
    results.write_text("".join(results.read_text().splitlines(keepends=True)[:1]))
    plant_hostile_modules(run_dir, marker)
    resumed = harness("run", "--resume", ".", cwd=run_dir, env=env)
    assert not marker.exists(), marker.read_text()
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    assert "1 of 2 cell(s) already have a result" in resumed.stdout
    assert {row["status"] for row in rows(here / "out").values()} == {"ok"}


def test_an_empty_or_relative_pythonpath_entry_puts_no_folder_on_a_cells_path(tmp_path):
    """Code from the current folder runs in every cell: PYTHONPATH=":/abs" (or "$PYTHONPATH:/abs"
    with it unset) means the current folder, and "rel" a folder in it; cells get neither."""
    marker = tmp_path / "IMPORTED"
    here = tmp_path / "here"
    # a name only the probe cell imports: the runner's own path is the user's business
    plant_hostile_modules(here, marker, names=["harness_probe_target"])
    plant_hostile_modules(here / "rel", marker, names=["harness_probe_target"])
    env = hostile_env(tmp_path)
    env["PYTHONPATH"] = os.pathsep.join(["", "rel", env["PYTHONPATH"], ""])

    result = harness("run", *TINY, "-f", "probe", "--out", "out", cwd=here, env=env)
    assert not marker.exists(), marker.read_text()
    assert result.returncode == 0, result.stdout + result.stderr
    assert rows(here / "out")["probe"]["status"] == "ok"


# --- signals and kills ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("sent", "code", "said"),
    [(signal.SIGTERM, 143, "terminated"), (signal.SIGINT, 130, "interrupted")],
)
def test_sigterm_stops_a_run_like_ctrl_c_with_exit_143(tmp_path, sent, code, said):
    """SIGTERM to `harness run`: the --resume command and one line saying so, exit 143 (130 for
    Ctrl-C), its cell's process and temporary folder gone (it used to vanish silently)."""
    env = hostile_env(tmp_path, HARNESS_TEST_SLOW_SECONDS="600")
    temp = Path(env["TMPDIR"])
    runner = start_harness("run", *TINY, "-f", "slow", "--out", "out", cwd=tmp_path, env=env)
    try:
        wait_for(lambda: cell_folders(temp), "the cell to start")
        workers = wait_for(lambda: psutil.Process(runner.pid).children(), "the cell's process")
        runner.send_signal(sent)
        stdout, stderr = runner.communicate(timeout=60)
    finally:
        stop(runner)
    assert runner.returncode == code, stdout + stderr
    resume, last = stderr.strip().splitlines()
    assert last == said and "Traceback" not in stderr
    assert (
        resume.startswith("interrupted with 0 of 1 cell(s) done")
        and "harness run --resume" in resume
    )
    wait_for(lambda: all(gone(w.pid) for w in workers), "the cell's process to end", timeout=30)
    assert cell_folders(temp) == []


def test_a_cell_dies_with_a_runner_killed_while_the_cell_is_still_importing(tmp_path):
    """A worker can outlive a `kill -9`ed runner: it now asks to die with the runner before its
    first heavy import, not after them."""
    hooks = tmp_path / "hooks"
    hooks.mkdir()
    pid_file = tmp_path / "worker.pid"
    # stall the worker's import of its own module, as a cold disk or a slow framework would
    (hooks / "sitecustomize.py").write_text(
        textwrap.dedent(
            f"""\
            import os, sys, time

            class StallWorkerImport:
                def find_spec(self, name, path=None, target=None):
                    if name == "harness.runner.worker":
                        with open({str(pid_file)!r}, "w") as handle:
                            handle.write(str(os.getpid()))
                        time.sleep(120)
                    return None

            sys.meta_path.insert(0, StallWorkerImport())
            """
        )
    )
    env = hostile_env(tmp_path)
    env["PYTHONPATH"] = os.pathsep.join([str(hooks), env["PYTHONPATH"]])
    runner = start_harness("run", *TINY, "-f", "centroid", "--out", "out", cwd=tmp_path, env=env)
    worker = None
    try:
        worker = int(wait_for(lambda: pid_file.exists() and pid_file.read_text(), "the worker"))
        runner.kill()
        runner.communicate()
        wait_for(lambda: gone(worker), "the worker to die with its runner", timeout=30)
    finally:
        stop(runner)
        if worker is not None and not gone(worker):
            os.kill(worker, signal.SIGKILL)


def test_a_killed_runs_temporary_folders_are_removed_by_the_next_run(tmp_path):
    """Killed runs leave harness-cell-* folders behind: the next run removes those whose owner
    is gone, and leaves a live process's alone."""
    env = hostile_env(tmp_path, HARNESS_TEST_SLOW_SECONDS="600")
    temp = Path(env["TMPDIR"])
    runner = start_harness("run", *TINY, "-f", "slow", "--out", "out", cwd=tmp_path, env=env)
    try:
        [left_behind] = wait_for(lambda: cell_folders(temp), "the cell to start")
        runner.kill()
    finally:
        stop(runner)
    assert left_behind.exists()
    in_use = temp / f"harness-cell-{os.getpid()}-in-use"  # this test's process is alive
    in_use.mkdir()
    unowned = temp / "harness-cell-unknown-owner"
    unowned.mkdir()

    result = harness("run", *TINY, "-f", "centroid", "--out", "again", cwd=tmp_path, env=env)
    assert result.returncode == 0, result.stdout + result.stderr
    assert not left_behind.exists()
    assert cell_folders(temp) == [in_use, unowned]


# --- the OOM killer ---------------------------------------------------------------------------


def test_a_sigkill_that_is_not_the_oom_killers_is_a_crash(tmp_path):
    """Any SIGKILL was labelled oom: now only when the kernel's OOM-kill counters moved."""
    env = hostile_env(tmp_path)
    result = harness("run", *TINY, "-f", "sigkills", "--out", "out", cwd=tmp_path, env=env)
    assert result.returncode == 1, result.stdout + result.stderr
    row = rows(tmp_path / "out")["sigkills"]
    assert (row["status"], row["kind"]) == ("failed", "crash")
    assert row["error"].startswith("crashed: killed by SIGKILL; see ")


def test_a_sigkill_while_the_oom_kill_counter_moves_is_out_of_memory(tmp_path):
    """Any SIGKILL was labelled oom: one seen by the kernel's OOM-kill counters still is."""
    killed = ChildOutcome(None, None, -signal.SIGKILL, False, 1.0, oom_kills=1)
    kind, reason = killed.failure(Limits(timeout=60), tmp_path / "cell.log")
    assert (kind, reason) == ("oom", "killed by the kernel's out-of-memory killer; see cell.log")


# --- Ray --------------------------------------------------------------------------------------


def test_stopping_the_test_ray_cluster_leaves_other_ray_processes_alone(tmp_path):
    """`ray stop --force` in the Ray tests stopped every Ray process on the machine: the test
    cluster is now stopped by its own processes, and a user's Ray process lives on."""
    pytest.importorskip("ray")
    from .test_ray import ray_cluster

    # what `ray stop` takes for a Ray process (by its command line), in a session of its own
    bystander = subprocess.Popen(
        [sys.executable, "-c", "import time; time.sleep(600)", "log_monitor.py"],
        start_new_session=True,
    )
    try:
        # a short folder: Ray's socket paths in it must fit in 107 bytes
        with tempfile.TemporaryDirectory(prefix="ray-") as temp, ray_cluster(Path(temp)) as address:
            assert address.startswith("127.0.0.1:")
        assert bystander.poll() is None
    finally:
        bystander.kill()
        bystander.wait()


def test_python_dash_m_harness_imports_nothing_from_the_current_folder(tmp_path):
    """`python -m harness` puts the current folder on the path; the runner drops it at once,
    so a planted numpy.py, json.py or pydantic.py never runs in the runner (or its cells)."""
    folder, marker = tmp_path / "work", tmp_path / "imported.log"
    plant_hostile_modules(folder, marker, names=("numpy", "json", "pydantic", "rich", "click"))
    env = hostile_env(tmp_path)
    listed = subprocess.run(
        [sys.executable, "-m", "harness", "list"], cwd=folder, env=env, capture_output=True,
        text=True, timeout=300,
    )  # fmt: skip
    assert listed.returncode == 0, listed.stderr
    ran = subprocess.run(
        [sys.executable, "-m", "harness", "run", "--task", "mnist_mlp", "-f", "centroid",
         "--epochs", "1", "--train-subset", "500", "--no-report", "--out", str(tmp_path / "out")],
        cwd=folder, env=env, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert ran.returncode == 0, ran.stdout + ran.stderr
    assert not marker.exists(), marker.read_text()
