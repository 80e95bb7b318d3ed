"""Is the machine quiet while a cell trains? Measured from outside the cell, and judged.

The runner samples, about four times a second while the cell's epochs run (between the child's
``fit`` and ``result`` events), the machine's CPU time from ``/proc/stat``, the CPU time of the
cell's own process tree and of the runner itself, and the time the hypervisor stole. What
neither the cell nor the runner used was used by *other* processes: CPU time the cell's
threads could not have. Nothing here runs on the cell's training thread; a sample costs the
runner about a millisecond.

A cell is ``busy`` when, for a real share of its fit, others took a real share of a core, or
when the hypervisor stole a real share of the CPU; otherwise ``quiet``. The thresholds are
below; ``docs/measuring.md`` says how they were calibrated and how often a quiet machine is
called busy.
"""

from __future__ import annotations

import contextlib
import os
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import psutil

#: a sample interval in which other processes used at least this many cores is a busy one
BUSY_INTERVAL_CORES = 0.25
#: the cell is busy when at least this share of its sampled fit was busy ...
BUSY_SHARE = 0.2
#: ... or when other processes used this many cores on average over the fit ...
BUSY_MEAN_CORES = 0.2
#: ... or when the hypervisor stole at least this share of the machine's CPU time
STEAL_SHARE = 0.05
#: seconds between samples
INTERVAL = 0.25

_TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


@dataclass(frozen=True)
class CpuTimes:
    """The machine's CPU time so far, in seconds summed over all cores (``/proc/stat``)."""

    busy: float
    steal: float
    total: float

    @classmethod
    def read(cls, path: Path = Path("/proc/stat")) -> CpuTimes | None:
        try:
            with path.open() as stat:
                fields = stat.readline().split()
        except OSError:
            return None
        if not fields or fields[0] != "cpu":
            return None
        # user nice system idle iowait irq softirq steal (guest time is inside user already)
        values = [int(value) / _TICKS for value in fields[1:9]] + [0.0] * 8
        user, nice, system, idle, iowait, irq, softirq, steal = values[:8]
        busy = user + nice + system + irq + softirq
        return cls(busy=busy, steal=steal, total=busy + idle + iowait + steal)


@dataclass(frozen=True)
class Noise:
    """What other work did to one cell's fit, and the verdict (a row's ``noise``)."""

    verdict: str  # "quiet", "busy", or "unmeasured"
    reason: str
    window_seconds: float | None = None
    samples: int = 0
    other_cores_mean: float | None = None
    busy_share: float | None = None
    other_cores_when_busy: float | None = None
    steal_share: float | None = None
    load_average: list[float] | None = None  # 1-minute load at the start and the end
    cpu_mhz: list[float] | None = None  # the lowest and highest clock seen, where readable
    cores: int | None = None
    #: cores the runner itself used meanwhile (sampling, reading the cell's events): the
    #: harness's own cost beside the cell, stated rather than hidden
    runner_cores: float | None = None

    def as_dict(self) -> dict[str, Any]:
        return {key: value for key, value in asdict(self).items() if value is not None}


def unmeasured(reason: str) -> Noise:
    """The noise of a cell that could not be watched from outside (inline or Ray executors)."""
    return Noise(verdict="unmeasured", reason=reason)


@dataclass
class _Sample:
    at: float
    machine: CpuTimes
    cell: float
    runner: float


class NoiseSampler:
    """Samples the machine beside one cell's process tree; :meth:`result` judges the window.

    Call :meth:`start` when the fit starts, :meth:`poll` as often as convenient (it samples at
    most every :data:`INTERVAL` seconds) and :meth:`stop` when it ends.
    """

    def __init__(self, pid: int) -> None:
        try:
            self._process: psutil.Process | None = psutil.Process(pid)
        except psutil.Error:
            self._process = None
        self._runner = psutil.Process()
        self._samples: list[_Sample] = []
        self._running = False
        self._load: list[float] = []
        self._mhz: list[float] = []

    def start(self) -> None:
        self._running = True
        self._edge()
        self._take()

    def poll(self) -> None:
        if self._running and time.monotonic() - self._samples[-1].at >= INTERVAL:
            self._take()

    def stop(self) -> None:
        if self._running:
            self._take()
            self._edge()
            self._running = False

    def _edge(self) -> None:
        """What is read only at the start and the end of the window."""
        self._load.append(os.getloadavg()[0])
        self._mhz += cpu_mhz()

    def _take(self) -> None:
        machine = CpuTimes.read()
        cell = _tree_cpu_seconds(self._process)
        if machine is None or cell is None:
            return
        runner = sum(self._runner.cpu_times()[:2])
        self._samples.append(_Sample(time.monotonic(), machine, cell, runner))

    def result(self) -> Noise | None:
        """The verdict over the fit; ``None`` when the fit never started (nothing to judge)."""
        if not self._load:
            return None
        if CpuTimes.read() is None:
            return unmeasured("no /proc/stat on this system")
        if len(self._samples) < 2:
            return unmeasured(f"the fit was too short to sample (one sample every {INTERVAL} s)")
        return judge(self._samples, self._load, self._mhz)


def judge(samples: list[_Sample], load: list[float], mhz: list[float]) -> Noise:
    """The verdict over consecutive samples (see the thresholds at the top of this module)."""
    intervals = []
    for before, after in zip(samples, samples[1:], strict=False):
        wall = after.at - before.at
        if wall <= 0:
            continue
        used = after.machine.busy - before.machine.busy
        own = (after.cell - before.cell) + (after.runner - before.runner)
        intervals.append((wall, max(0.0, used - own) / wall))
    first, last = samples[0], samples[-1]
    window = last.at - first.at
    total = last.machine.total - first.machine.total
    steal = (last.machine.steal - first.machine.steal) / total if total > 0 else 0.0
    busy_wall = sum(wall for wall, cores in intervals if cores >= BUSY_INTERVAL_CORES)
    busy_cores = [cores for wall, cores in intervals if cores >= BUSY_INTERVAL_CORES]
    mean_cores = sum(wall * cores for wall, cores in intervals) / window if window > 0 else 0.0
    busy_share = busy_wall / window if window > 0 else 0.0
    runner = (last.runner - first.runner) / window if window > 0 else 0.0
    when_busy = sum(busy_cores) / len(busy_cores) if busy_cores else 0.0
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    reasons = []
    if busy_share >= BUSY_SHARE:
        reasons.append(
            f"other processes used {when_busy:.1f} of {cores} cores for {busy_share:.0%} of the fit"
        )
    elif mean_cores >= BUSY_MEAN_CORES:
        reasons.append(f"other processes used {mean_cores:.2f} of {cores} cores on average")
    if steal >= STEAL_SHARE:
        reasons.append(f"the hypervisor took {steal:.0%} of the CPU time (steal)")
    return Noise(
        verdict="busy" if reasons else "quiet",
        reason="; ".join(reasons)
        or f"other processes used {mean_cores:.2f} of {cores} cores on average",
        window_seconds=round(window, 3),
        samples=len(samples),
        other_cores_mean=round(mean_cores, 3),
        busy_share=round(busy_share, 3),
        other_cores_when_busy=round(when_busy, 3),
        steal_share=round(steal, 4),
        load_average=[round(value, 2) for value in load] or None,
        cpu_mhz=[round(min(mhz)), round(max(mhz))] if mhz else None,
        cores=cores,
        runner_cores=round(runner, 4),
    )


def _tree_cpu_seconds(process: psutil.Process | None) -> float | None:
    """User and system CPU seconds of a process and its live descendants, each with its reaped
    children's: a pool of workers (torch.compile's) that exits is counted by whichever process of
    the tree reaps it, so the tree's time never drops and shows up as another process's."""
    if process is None:
        return None
    try:
        total = sum(process.cpu_times()[:4])  # user, system, children_user, children_system
        for child in process.children(recursive=True):
            # one that exits between listing and reading is counted by its parent, once reaped
            with contextlib.suppress(psutil.Error):
                total += sum(child.cpu_times()[:4])
        return total
    except psutil.Error:
        return None


def cpu_mhz() -> list[float]:
    """The current clock of each core in MHz (cpufreq, else ``/proc/cpuinfo``); empty where
    neither tells."""
    readings = []
    for path in Path("/sys/devices/system/cpu").glob("cpu[0-9]*/cpufreq/scaling_cur_freq"):
        with contextlib.suppress(OSError, ValueError):
            readings.append(int(path.read_text()) / 1000)
    if not readings:
        try:
            lines = Path("/proc/cpuinfo").read_text().splitlines()
        except OSError:
            return []
        for line in lines:
            key, _, value = line.partition(":")
            if key.strip() == "cpu MHz":
                with contextlib.suppress(ValueError):
                    readings.append(float(value))
    return readings
