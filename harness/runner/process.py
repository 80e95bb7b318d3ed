"""Running one cell in its own child process, with a timeout, and hearing back from it.

The child runs :func:`harness.runner.worker.main`. It reads its cell spec as JSON on stdin and
reports JSON events, one per line, on a dedicated pipe, so that whatever a framework prints
(to a log file) can never be mistaken for a result. A child that dies, hangs past its timeout
or raises becomes a ``failed`` outcome with the reason; nothing it does can stop the run.

Only the installed environment is on the child's import path: not the folder harness was
started from, nor its own working folder (an empty temporary one), nor an empty or relative
``PYTHONPATH`` entry. A ``numpy.py`` lying in the current folder or in a run folder is never
imported by a cell.
"""

from __future__ import annotations

import contextlib
import functools
import json
import logging
import os
import select
import shutil
import signal
import stat
import subprocess
import sys
import tempfile
import textwrap
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harness.measure.energy import EnergyMeter
from harness.measure.monitor import ProcessMonitor, oom_kill_counts, oom_kills_between
from harness.measure.noise import NoiseSampler
from harness.paths import open_no_follow
from harness.runner.child_spec import ChildSpec
from harness.workload.precision import PRECISION_ENVIRONMENT

logger = logging.getLogger(__name__)

EventHandler = Callable[[dict[str, Any]], None]

#: A cell's temporary folder is ``harness-cell-<pid of its owner>-<random>``: one left behind by
#: a killed runner is recognised, by its owner being gone, and removed by the next run.
CELL_DIR_PREFIX = "harness-cell-"

#: What the child runs, with the runner's PID and the worker's arguments after it. It asks Linux
#: to kill it when the runner dies before importing anything heavy (the harness and numpy take
#: seconds on a cold disk, during which a killed runner's worker would live on), then checks the
#: runner is still its parent, in case it died before that took effect.
_BOOTSTRAP = textwrap.dedent(
    """\
    import os, signal, sys
    try:
        import ctypes
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):  # not Linux: the runner's timeout still applies
        pass
    if os.getppid() != int(sys.argv[1]):
        os.kill(os.getpid(), signal.SIGKILL)
    from harness.runner.worker import main
    sys.exit(main(sys.argv[2:]))
    """
)

#: Environment variables that size the thread pools of numerical libraries; set for every child
#: so no framework gets more threads than another through a library it happens to use.
THREAD_ENV_VARS = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")

#: a child's return code when one of the signals that stop a run (not a crash) ended it
_STOP_SIGNALS = frozenset(-sig for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP))


@dataclass
class ChildOutcome:
    """What came back from one child process."""

    #: the ``result`` event, or ``None`` if the child never sent one
    result: dict[str, Any] | None
    #: the ``error`` event of an exception the child caught, if any
    error: dict[str, Any] | None
    returncode: int | None
    timed_out: bool
    wall_seconds: float
    events: list[dict[str, Any]] = field(default_factory=list)
    #: resident memory of the child's process tree when it went past the memory limit, else None
    over_memory_bytes: int | None = None
    #: the most GPU memory the driver (NVML) saw the child's processes hold, on a GPU cell
    peak_gpu_bytes: int | None = None
    #: how many processes the kernel's OOM killer killed while the child ran (its counters
    #: moved by that much); a SIGKILL is called out of memory only when this is not 0
    oom_kills: int = 0
    #: what other processes did to the machine while the cell trained (harness.measure.noise.Noise)
    noise: dict[str, Any] | None = None
    #: joules over the fit and their source, or why there are none (harness.measure.energy)
    energy: dict[str, Any] | None = None

    @property
    def data_sha256(self) -> str | None:
        """What the child loaded, as its ``data`` event identified it (``None`` before that)."""
        loaded = next((e for e in self.events if e.get("event") == "data"), None)
        digest = loaded.get("sha256") if loaded is not None else None
        return digest if isinstance(digest, str) else None

    @property
    def stopped_from_outside(self) -> bool:
        """The child ended on a signal that stops a run (SIGTERM, SIGINT, SIGHUP) without a
        result: harness never sends those to a cell (it kills with SIGKILL), so someone stopped
        the work, and the cell has no result to record, not a failure."""
        return (
            self.result is None
            and self.error is None
            and not self.timed_out
            and self.over_memory_bytes is None
            and self.returncode in _STOP_SIGNALS
        )

    def failure(self, limits: Limits, log_path: Path) -> tuple[str, str] | None:
        """``(kind, one-line reason)`` when the child failed, ``None`` when it reported a result."""
        if self.timed_out:
            return "timeout", f"timed out after {limits.timeout:g} s (killed); see {log_path.name}"
        if self.over_memory_bytes is not None and limits.memory_bytes is not None:
            return "oom", (
                f"used {self.over_memory_bytes / 2**20:,.0f} MiB, over --memory-limit "
                f"{limits.memory_bytes / 2**20:,.0f} MiB (killed)"
            )
        if self.error is not None:
            kind = self.error.get("kind", "exception")
            return kind, f"{self.error['type']}: {self.error['message']}"
        if self.result is not None:
            return None
        if self.returncode is not None and self.returncode < 0:
            try:
                name = signal.Signals(-self.returncode).name
            except ValueError:
                name = f"signal {-self.returncode}"
            if name == "SIGKILL" and self.oom_kills:
                return "oom", f"killed by the kernel's out-of-memory killer; see {log_path.name}"
            return "crash", f"crashed: killed by {name}; see {log_path.name}"
        tail = _last_line(log_path)
        reason = f"exited with code {self.returncode} without a result"
        return "crash", reason + (f": {tail}" if tail else "")


@dataclass(frozen=True)
class Limits:
    """What one cell may use before it is killed."""

    timeout: float
    #: resident memory of the cell's process tree, in bytes; ``None`` for no limit
    memory_bytes: int | None = None


def run_child(
    spec: ChildSpec,
    *,
    threads: int,
    limits: Limits,
    log_path: Path,
    on_event: EventHandler | None = None,
    gpu: bool = False,
    python: str | None = None,
) -> ChildOutcome:
    """Run one cell's worker process to completion (or its timeout) and collect its events.

    :param python: the interpreter of the cell's environment (``--with``); harness's own when
        ``None``

    The child gets a temporary folder of its own as ``TMPDIR`` and working folder, removed
    when it ends: caches that frameworks keep there (PyTorch's compiled kernels, say) start
    empty in every cell, so no repeat compiles less than another because an earlier one left
    its work behind. Folders that killed runs left behind are removed first.
    """
    remove_stale_folders(CELL_DIR_PREFIX)
    with tempfile.TemporaryDirectory(
        prefix=f"{CELL_DIR_PREFIX}{os.getpid()}-", ignore_cleanup_errors=True
    ) as tmp:
        env = dict(os.environ)
        env.update({name: str(threads) for name in THREAD_ENV_VARS})
        env.update({"PYTHONUNBUFFERED": "1", "TMPDIR": tmp, "TEMP": tmp, "TMP": tmp})
        # float32 means float32 in every framework: set before any of them is imported
        env.update(PRECISION_ENVIRONMENT)
        env.pop("PYTHONPATH", None)
        pythonpath = safe_pythonpath(os.environ.get("PYTHONPATH", ""))
        if pythonpath:
            env["PYTHONPATH"] = pythonpath
        return _run_worker(
            spec.with_absolute_paths(), env, Path(tmp), limits, log_path, on_event, gpu, python
        )


@functools.cache
def safe_pythonpath(value: str) -> str:
    """``value`` (a ``PYTHONPATH``) without its empty and relative entries.

    Python reads an empty entry (``PYTHONPATH=:/opt/lib``, or ``$PYTHONPATH:/opt/lib`` with the
    variable unset) as the current folder; a relative one is looked up from it. Either would
    let files lying where harness was started run in every cell. Absolute entries, which
    someone put there on purpose, are kept.
    """
    entries = value.split(os.pathsep) if value else []
    dropped = [entry for entry in entries if entry and not os.path.isabs(entry)]
    if dropped:
        logger.warning(
            "PYTHONPATH entries %s are relative: cells don't get them (give absolute paths)",
            ", ".join(repr(entry) for entry in dropped),
        )
    return os.pathsep.join(entry for entry in entries if os.path.isabs(entry))


def remove_stale_folders(prefix: str, parent: str | None = None) -> list[str]:
    """Remove this user's ``<prefix><pid>-*`` folders in ``parent`` (the temporary folder)
    whose owner process ``<pid>`` no longer exists, as a killed run leaves them; returns them.

    Folders of live processes and of other users, and names without an owner, are left alone.
    """
    parent = parent or tempfile.gettempdir()
    removed: list[str] = []
    try:
        entries = list(os.scandir(parent))
    except OSError:
        return removed
    for entry in entries:
        owner = entry.name.removeprefix(prefix).partition("-")[0]
        if not entry.name.startswith(prefix) or not owner.isdigit():
            continue
        try:
            info = entry.stat(follow_symlinks=False)
        except OSError:
            continue
        if not stat.S_ISDIR(info.st_mode) or info.st_uid != os.getuid() or _alive(int(owner)):
            continue
        shutil.rmtree(entry.path, ignore_errors=True)
        removed.append(entry.path)
    if removed:
        logger.debug("removed %d folder(s) left behind by killed runs", len(removed))
    return removed


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process
        return True
    return True


def worker_command(events_fd: int, python: str | None = None) -> list[str]:
    """The command line of a cell's process; it reports its events on ``events_fd``.

    ``-P`` keeps the current folder off ``sys.path`` (``python -m`` would put it first).
    """
    runner = str(os.getpid())
    interpreter = python or sys.executable
    return [interpreter, "-P", "-c", _BOOTSTRAP, runner, "--events-fd", str(events_fd)]


def _run_worker(
    spec: ChildSpec,
    env: dict[str, str],
    cwd: Path,
    limits: Limits,
    log_path: Path,
    on_event: EventHandler | None,
    gpu: bool,
    python: str | None,
) -> ChildOutcome:
    read_fd, write_fd = os.pipe()
    oom_before = oom_kill_counts()
    start = time.perf_counter()
    child = _start_child(write_fd, env, cwd, log_path, python)
    os.close(write_fd)
    events: list[dict[str, Any]] = []
    try:
        _send_spec(child, spec)
        watch = ProcessMonitor(child.pid, limits.memory_bytes, gpu=gpu)
        noise, energy = NoiseSampler(child.pid), EnergyMeter(gpu)
        edges = _fit_edges(noise, energy, on_event)
        timed_out = _read_events(read_fd, start + limits.timeout, events, edges, watch, noise)
        noise.stop()
        energy.stop()
        returncode = _end_child(child, kill=timed_out or watch.exceeded is not None)
    except BaseException:  # Ctrl-C, SIGTERM: take the cell's whole process group down with us
        _kill_group(child)
        child.wait()
        raise
    return ChildOutcome(
        next((e for e in events if e.get("event") == "result"), None),
        next((e for e in events if e.get("event") == "error"), None),
        returncode,
        timed_out,
        time.perf_counter() - start,
        events,
        over_memory_bytes=watch.exceeded,
        peak_gpu_bytes=watch.peak_gpu_bytes,
        oom_kills=oom_kills_between(oom_before, oom_kill_counts()),
        noise=judged.as_dict() if (judged := noise.result()) else None,
        energy=energy.result(),
    )


def _start_child(
    events_fd: int, env: dict[str, str], cwd: Path, log_path: Path, python: str | None
) -> subprocess.Popen[bytes]:
    """The worker process, its output to ``log_path``, its events to ``events_fd``."""
    descriptor = open_no_follow(log_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
    with os.fdopen(descriptor, "wb") as log:
        return subprocess.Popen(
            worker_command(events_fd, python),
            stdin=subprocess.PIPE,
            stdout=log,
            stderr=subprocess.STDOUT,
            pass_fds=(events_fd,),
            env=env,
            cwd=cwd,
            start_new_session=True,  # its own process group, so a timeout kills every descendant
        )


def _send_spec(child: subprocess.Popen[bytes], spec: ChildSpec) -> None:
    assert child.stdin is not None
    try:
        child.stdin.write(spec.to_json().encode())
        child.stdin.close()
    except BrokenPipeError:
        pass  # the child died before reading its spec; its exit status says why


def _end_child(child: subprocess.Popen[bytes], *, kill: bool) -> int:
    """The child's exit status, after killing its group if ``kill`` (or if it won't end)."""
    if kill:
        _kill_group(child)
    try:
        return child.wait(timeout=30)
    except subprocess.TimeoutExpired:
        _kill_group(child)
        return child.wait()


def _fit_edges(
    noise: NoiseSampler, energy: EnergyMeter, on_event: EventHandler | None
) -> EventHandler:
    """Start watching the machine when the child's fit starts, stop when it reports."""

    def handle(event: dict[str, Any]) -> None:
        if event.get("event") == "runtime":
            energy.gpu = event.get("device") == "gpu"  # "auto" resolved by the child
        elif event.get("event") == "fit":
            energy.start()
            noise.start()
        elif event.get("event") in ("result", "error"):
            noise.stop()
            energy.stop()
        if on_event is not None:
            on_event(event)

    return handle


def _read_events(
    fd: int,
    deadline: float,
    events: list[dict[str, Any]],
    on_event: EventHandler | None,
    watch: ProcessMonitor,
    noise: NoiseSampler,
) -> bool:
    """Read JSON lines from ``fd`` until EOF or a limit; returns True if the deadline passed first."""
    buffer = b""
    with os.fdopen(fd, "rb", buffering=0) as pipe:
        while True:
            remaining = deadline - time.perf_counter()
            if remaining <= 0:
                return True
            if watch.check():
                return False
            noise.poll()
            ready, _, _ = select.select([pipe], [], [], min(remaining, watch.interval))
            if not ready:
                continue
            chunk = pipe.read(65536)
            if not chunk:
                return False
            buffer += chunk
            *lines, buffer = buffer.split(b"\n")
            for line in lines:
                if not line.strip():
                    continue
                try:
                    event = json.loads(line)
                except json.JSONDecodeError:  # a child killed mid-write leaves half a line
                    continue
                events.append(event)
                if on_event is not None:
                    on_event(event)


def _kill_group(child: subprocess.Popen[bytes]) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(child.pid, signal.SIGKILL)


def _last_line(path: Path) -> str:
    try:
        lines = path.read_text(errors="replace").strip().splitlines()
    except OSError:
        return ""
    return lines[-1][:300] if lines else ""
