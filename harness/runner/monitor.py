"""Watching a cell's process from outside: host memory against a limit, GPU memory via NVML.

Polled from the runner while it waits for the cell's events, so the cell itself is never
interrupted to be measured.
"""

from __future__ import annotations

import logging

import psutil

logger = logging.getLogger(__name__)


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
