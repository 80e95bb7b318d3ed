"""Running one cell in its own child process, with a timeout, and hearing back from it.

The child is ``python -m harness.runner.worker``. It reads its cell spec as JSON on stdin and
reports JSON events, one per line, on a dedicated pipe, so that whatever a framework prints
(to a log file) can never be mistaken for a result. A child that dies, hangs past its timeout
or raises becomes a ``failed`` outcome with the reason; nothing it does can stop the run.
"""

from __future__ import annotations

import contextlib
import json
import os
import select
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harness.runner.monitor import ProcessMonitor

EventHandler = Callable[[dict[str, Any]], None]

#: Environment variables that size the thread pools of numerical libraries; set for every child
#: so no framework gets more threads than another through a library it happens to use.
THREAD_ENV_VARS = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")


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
            if name == "SIGKILL":
                # the runner didn't send it: on Linux that is most often the kernel's OOM killer
                return "oom", f"killed by SIGKILL, most likely out of memory; see {log_path.name}"
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
    spec: dict[str, Any],
    *,
    threads: int,
    limits: Limits,
    log_path: Path,
    on_event: EventHandler | None = None,
    gpu: bool = False,
) -> ChildOutcome:
    """Run one cell's worker process to completion (or its timeout) and collect its events.

    The child gets a temporary folder of its own as ``TMPDIR``, removed when it ends: caches
    that frameworks keep there (PyTorch's compiled kernels, say) start empty in every cell, so
    no repeat compiles less than another because an earlier one left its work behind.
    """
    with tempfile.TemporaryDirectory(prefix="harness-cell-", ignore_cleanup_errors=True) as tmp:
        env = dict(os.environ)
        env.update({name: str(threads) for name in THREAD_ENV_VARS})
        env.update({"PYTHONUNBUFFERED": "1", "TMPDIR": tmp, "TEMP": tmp, "TMP": tmp})
        return _run_worker(spec, env, limits, log_path, on_event, gpu)


def _run_worker(
    spec: dict[str, Any],
    env: dict[str, str],
    limits: Limits,
    log_path: Path,
    on_event: EventHandler | None,
    gpu: bool,
) -> ChildOutcome:
    read_fd, write_fd = os.pipe()
    start = time.perf_counter()
    with open(log_path, "wb") as log:
        child = subprocess.Popen(
            [sys.executable, "-m", "harness.runner.worker", "--events-fd", str(write_fd)],
            stdin=subprocess.PIPE,
            stdout=log,
            stderr=subprocess.STDOUT,
            pass_fds=(write_fd,),
            env=env,
            start_new_session=True,  # its own process group, so a timeout kills every descendant
        )
    os.close(write_fd)
    assert child.stdin is not None
    try:
        child.stdin.write(json.dumps(spec).encode())
        child.stdin.close()
    except BrokenPipeError:
        pass  # the child died before reading its spec; its exit status says why

    events: list[dict[str, Any]] = []
    watch = ProcessMonitor(child.pid, limits.memory_bytes, gpu=gpu)
    timed_out = _read_events(read_fd, start + limits.timeout, events, on_event, watch)
    if timed_out or watch.exceeded is not None:
        _kill_group(child)
    try:
        returncode = child.wait(timeout=30)
    except subprocess.TimeoutExpired:
        _kill_group(child)
        returncode = child.wait()
    wall = time.perf_counter() - start
    result = next((e for e in events if e.get("event") == "result"), None)
    error = next((e for e in events if e.get("event") == "error"), None)
    return ChildOutcome(
        result, error, returncode, timed_out, wall, events, watch.exceeded, watch.peak_gpu_bytes
    )


def _read_events(
    fd: int,
    deadline: float,
    events: list[dict[str, Any]],
    on_event: EventHandler | None,
    watch: ProcessMonitor,
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
