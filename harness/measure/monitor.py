"""Watching a cell's process from outside: host memory against a limit, GPU memory via NVML.

Polled from the runner while it waits for the cell's events, so the cell itself is never
interrupted to be measured.
"""

from __future__ import annotations

import logging
from pathlib import Path

import psutil

logger = logging.getLogger(__name__)

CGROUP_ROOT = Path("/sys/fs/cgroup")


def oom_kill_counts() -> dict[str, int]:
    """How many processes the kernel's out-of-memory killer has killed so far, by counter.

    ``machine`` from ``/proc/vmstat``; ``cgroup`` from this process's memory cgroup (v2
    ``memory.events``, v1 ``memory.oom_control``), which a cell's process shares and which counts
    the kills of the machine's OOM killer and of the cgroup's own limit. A counter that can't be
    read (not Linux, an old kernel) is left out. Read before and after a cell: a SIGKILL is the
    OOM killer's only when one moved.
    """
    counts = {}
    for name, path in (("machine", Path("/proc/vmstat")), ("cgroup", _cgroup_oom_file())):
        value = _counter(path, "oom_kill") if path is not None else None
        if value is not None:
            counts[name] = value
    return counts


def oom_kills_between(before: dict[str, int], after: dict[str, int]) -> int:
    """The most any counter of :func:`oom_kill_counts` moved between two readings."""
    return max((after[name] - before[name] for name in before.keys() & after.keys()), default=0)


def _cgroup_oom_file() -> Path | None:
    try:
        lines = Path("/proc/self/cgroup").read_text().splitlines()
    except OSError:
        return None
    candidates = []
    for line in lines:
        _, _, rest = line.partition(":")
        controllers, _, path = rest.partition(":")
        relative = path.lstrip("/")
        if controllers == "":  # cgroup v2, mounted on its own or beside v1 as "unified"
            for mount in (CGROUP_ROOT, CGROUP_ROOT / "unified"):
                candidates += [mount / relative / "memory.events", mount / "memory.events"]
        elif "memory" in controllers.split(","):
            mount = CGROUP_ROOT / "memory"
            candidates += [mount / relative / "memory.oom_control", mount / "memory.oom_control"]
    # the cgroup as this process sees it, or, in a container that mounts its own cgroup as the
    # root, that root
    return next((candidate for candidate in candidates if candidate.is_file()), None)


def cgroup_memory_limit() -> int | None:
    """The memory limit of this process's cgroup in bytes (v2 ``memory.max``, v1
    ``memory.limit_in_bytes``); ``None`` where there is none or it can't be read."""
    events = _cgroup_oom_file()
    if events is None:
        return None
    limit_file = events.with_name(
        "memory.max" if events.name == "memory.events" else "memory.limit_in_bytes"
    )
    try:
        text = limit_file.read_text().strip()
    except OSError:
        return None
    # v1 writes "no limit" as a page-rounded maximum of about 2**63
    return int(text) if text.isdigit() and int(text) < 2**60 else None


def _counter(path: Path, name: str) -> int | None:
    try:
        for line in path.read_text().splitlines():
            key, _, value = line.partition(" ")
            if key == name:
                return int(value)
    except (OSError, ValueError):
        pass
    return None


class ProcessMonitor:
    """Polls a process and its descendants.

    Host memory is resident memory (an address-space rlimit would not do: JAX and TensorFlow
    reserve far more virtual memory than they ever touch). GPU memory is what the driver
    reports the processes hold, allocator caches and framework preallocation included, so it
    can be read next to each framework's own peak-allocated figure.
    """

    interval = 0.1

    def __init__(self, pid: int, limit: int | None, *, gpu: bool = False) -> None:
        self.limit = limit
        self.exceeded: int | None = None
        self.peak_gpu_bytes: int | None = None
        self._process = psutil.Process(pid) if limit is not None or gpu else None
        self._nvml = _Nvml.open() if gpu else None

    def check(self) -> bool:
        """Take one sample; True once the memory limit has been passed."""
        if self._process is None:
            return False
        try:
            processes = [self._process, *self._process.children(recursive=True)]
            rss = sum(process.memory_info().rss for process in processes) if self.limit else 0
        except psutil.Error:  # the process is exiting; its exit status will tell
            return False
        if self._nvml is not None:
            used = self._nvml.used_by({process.pid for process in processes})
            if used is not None:
                self.peak_gpu_bytes = max(self.peak_gpu_bytes or 0, used)
        if self.limit is not None and rss > self.limit:
            self.exceeded = rss
            return True
        return False


class _Nvml:
    """The few NVML calls needed, through ``nvidia-ml-py`` (the ``gpu`` extra) when installed."""

    def __init__(self, pynvml) -> None:
        self.pynvml = pynvml
        self.handles = [
            pynvml.nvmlDeviceGetHandleByIndex(i) for i in range(pynvml.nvmlDeviceGetCount())
        ]

    @classmethod
    def open(cls) -> _Nvml | None:
        try:
            import pynvml

            pynvml.nvmlInit()
            return cls(pynvml)
        except Exception as exc:  # no library, no driver, no device: no device-level figure
            logger.debug("NVML unavailable: %s", exc)
            return None

    def used_by(self, pids: set[int]) -> int | None:
        total = 0
        try:
            for handle in self.handles:
                for process in self.pynvml.nvmlDeviceGetComputeRunningProcesses(handle):
                    if process.pid in pids and process.usedGpuMemory:
                        total += process.usedGpuMemory
        except self.pynvml.NVMLError:
            return None
        return total
