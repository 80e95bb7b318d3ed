"""What on this machine will disturb a measurement, with advice: ``harness doctor``.

Each check reads what Linux shows without privileges and says ``ok``, ``warn`` (this will move
the figures; the advice says what to do) or ``info`` (recorded, not judged). A check that can't
read its source says ``unknown`` rather than guess. Nothing is changed on the machine.
"""

from __future__ import annotations

import os
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import psutil

from harness.measure.environment import usable_cores
from harness.measure.noise import CpuTimes

#: variables that size or shape the frameworks' thread pools, reported as they are set
THREAD_VARIABLES = (
    "OMP_NUM_THREADS",
    "OMP_WAIT_POLICY",
    "KMP_BLOCKTIME",
    "KMP_AFFINITY",
    "MKL_NUM_THREADS",
    "OPENBLAS_NUM_THREADS",
    "TF_NUM_INTRAOP_THREADS",
    "TF_NUM_INTEROP_THREADS",
    "XLA_FLAGS",
)
CPU = Path("/sys/devices/system/cpu")


@dataclass(frozen=True)
class Finding:
    check: str
    value: str
    verdict: str  # "ok", "warn", "info" or "unknown"
    advice: str = ""
    data: Any = None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def diagnose(sample_seconds: float = 0.5) -> list[Finding]:
    """Every check, in the order the command prints them."""
    usage = _sample_usage(sample_seconds)
    return [
        _cores(),
        _load(),
        _other_processes(usage),
        _steal(usage),
        _governor(),
        _boost(),
        _smt(),
        _cgroup_quota(),
        _memory(),
        _swap(),
        _thread_variables(),
        *_gpus(),
    ]


def _cores() -> Finding:
    usable, logical = usable_cores(), os.cpu_count() or 0
    return Finding("cores", f"{usable} usable of {logical}", "info", data=usable)


def _load() -> Finding:
    one, five, _ = os.getloadavg()
    cores = usable_cores()
    value = f"{one:.2f} (1 min), {five:.2f} (5 min) on {cores} cores"
    if one >= 0.5 * cores:
        return Finding(
            "load", value, "warn", "wait for the machine to settle, or stop what runs", [one, five]
        )
    return Finding("load", value, "ok", data=[one, five])


def _sample_usage(seconds: float) -> dict[str, Any]:
    """CPU use of every process and of the machine over ``seconds``."""
    processes = {}
    for process in psutil.process_iter(["name", "cmdline"]):
        try:
            process.cpu_percent(None)
            processes[process.pid] = process
        except psutil.Error:
            pass
    before = CpuTimes.read()
    time.sleep(seconds)
    after = CpuTimes.read()
    users = []
    for pid, process in processes.items():
        if pid == os.getpid():
            continue
        try:
            percent = process.cpu_percent(None)
        except psutil.Error:
            continue
        if percent >= 1.0:
            command = " ".join(process.info.get("cmdline") or []) or process.info.get("name") or ""
            name = process.info.get("name") or command.split(" ")[0]
            users.append(
                {
                    "pid": pid,
                    "name": name,
                    "cpu_percent": round(percent, 1),
                    "command": command[:200],
                }
            )
    users.sort(key=lambda user: -user["cpu_percent"])
    return {"users": users[:5], "before": before, "after": after, "seconds": seconds}


def _other_processes(usage: dict[str, Any]) -> Finding:
    users = usage["users"]
    cores = sum(user["cpu_percent"] for user in users) / 100
    top = ", ".join(f"{u['name']} {u['pid']} ({u['cpu_percent']:.0f} %)" for u in users[:3])
    value = f"{cores:.2f} cores in use by others" + (f": {top}" if top else "")
    if cores >= 0.25:
        return Finding(
            "other processes",
            value,
            "warn",
            "they take CPU time from the cells: stop them, or expect rows marked busy",
            users,
        )
    return Finding("other processes", value, "ok", data=users)


def _steal(usage: dict[str, Any]) -> Finding:
    before, after = usage["before"], usage["after"]
    if before is None or after is None or after.total <= before.total:
        return Finding("steal", "no /proc/stat", "unknown")
    share = (after.steal - before.steal) / (after.total - before.total)
    value = f"{share:.1%} of CPU time taken by the hypervisor"
    if share >= 0.05:
        return Finding(
            "steal", value, "warn", "a noisy neighbour on this host: try another VM", share
        )
    return Finding("steal", value, "ok", data=share)


def _read(path: Path) -> str | None:
    try:
        return path.read_text().strip()
    except OSError:
        return None


def _governor() -> Finding:
    governors = {
        text for path in CPU.glob("cpu[0-9]*/cpufreq/scaling_governor") if (text := _read(path))
    }
    if not governors:
        return Finding("cpu governor", "not exposed (no cpufreq here, as in most VMs)", "unknown")
    value = ", ".join(sorted(governors))
    if governors != {"performance"}:
        return Finding(
            "cpu governor",
            value,
            "warn",
            "clocks move with load; for steady figures: cpupower frequency-set -g performance",
            sorted(governors),
        )
    return Finding("cpu governor", value, "ok", data=sorted(governors))


def _boost() -> Finding:
    no_turbo = _read(CPU / "intel_pstate" / "no_turbo")
    boost = _read(CPU / "cpufreq" / "boost")
    if no_turbo is None and boost is None:
        return Finding("turbo boost", "not exposed", "unknown")
    enabled = (no_turbo == "0") if no_turbo is not None else (boost == "1")
    if enabled:
        return Finding(
            "turbo boost",
            "on",
            "warn",
            "clocks depend on temperature and load; turn it off for repeatable figures",
            True,
        )
    return Finding("turbo boost", "off", "ok", data=False)


def _smt() -> Finding:
    active = _read(CPU / "smt" / "active")
    if active is None:
        return Finding("SMT (hyper-threading)", "not exposed", "unknown")
    on = active == "1"
    return Finding(
        "SMT (hyper-threading)",
        "on" if on else "off",
        "info",
        "two threads of one core share its units: --threads counts logical cores" if on else "",
        on,
    )


def _cgroup_quota() -> Finding:
    quota = _read(Path("/sys/fs/cgroup/cpu.max"))
    if quota is not None:
        limit, _, period = quota.partition(" ")
        cores = None if limit == "max" else int(limit) / int(period or 100000)
    else:
        limit_us = _read(Path("/sys/fs/cgroup/cpu/cpu.cfs_quota_us"))
        period_us = _read(Path("/sys/fs/cgroup/cpu/cpu.cfs_period_us"))
        if limit_us is None or period_us is None:
            return Finding("cgroup CPU quota", "not exposed", "unknown")
        cores = None if int(limit_us) < 0 else int(limit_us) / int(period_us)
    if cores is None:
        return Finding("cgroup CPU quota", "none", "ok")
    value = f"{cores:g} cores"
    if cores < usable_cores():
        return Finding(
            "cgroup CPU quota",
            value,
            "warn",
            f"fewer than the {usable_cores()} usable cores: run with --threads {max(1, int(cores))}",
            cores,
        )
    return Finding("cgroup CPU quota", value, "ok", data=cores)


def _memory() -> Finding:
    memory = psutil.virtual_memory()
    value = f"{memory.available / 2**30:.1f} GiB available of {memory.total / 2**30:.1f} GiB"
    if memory.available < 2 * 2**30:
        return Finding(
            "memory",
            value,
            "warn",
            "cells may swap or be killed: free memory first",
            memory.available,
        )
    return Finding("memory", value, "ok", data=memory.available)


def _swap() -> Finding:
    swap = psutil.swap_memory()
    if not swap.total:
        return Finding("swap", "none", "ok", data=0)
    value = f"{swap.used / 2**20:,.0f} MiB used of {swap.total / 2**20:,.0f} MiB"
    if swap.used > 256 * 2**20:
        return Finding("swap", value, "warn", "pages in swap slow whatever touches them", swap.used)
    return Finding("swap", value, "ok", data=swap.used)


def _thread_variables() -> Finding:
    values = {name: os.environ.get(name) for name in THREAD_VARIABLES}
    set_ = [f"{name}={value}" for name, value in values.items() if value is not None]
    value = ", ".join(set_) if set_ else "none set"
    advice = ""
    if values["OMP_WAIT_POLICY"] is None:
        advice = (
            "OMP_WAIT_POLICY unset: OpenMP threads spin while they wait, which costs most "
            "on a busy machine"
        )
    return Finding("thread variables", value, "info", advice, values)


def _gpus() -> list[Finding]:
    try:
        import pynvml

        pynvml.nvmlInit()
    except Exception:
        return [Finding("GPU", "no NVML (no NVIDIA driver, or nvidia-ml-py not installed)", "info")]
    findings = []
    for index in range(pynvml.nvmlDeviceGetCount()):
        handle = pynvml.nvmlDeviceGetHandleByIndex(index)
        name = pynvml.nvmlDeviceGetName(handle)
        try:
            persistence = pynvml.nvmlDeviceGetPersistenceMode(handle) == 1
            clock = pynvml.nvmlDeviceGetClockInfo(handle, pynvml.NVML_CLOCK_SM)
            top = pynvml.nvmlDeviceGetMaxClockInfo(handle, pynvml.NVML_CLOCK_SM)
        except pynvml.NVMLError as exc:
            findings.append(Finding(f"GPU {index}", f"{name}: {exc}", "unknown"))
            continue
        value = f"{name}, SM clock {clock}/{top} MHz, persistence {'on' if persistence else 'off'}"
        advice = "" if persistence else "persistence off: the first call pays driver start-up"
        verdict = "ok" if persistence else "warn"
        data = {"name": name, "sm_clock_mhz": clock, "max_sm_clock_mhz": top}
        findings.append(Finding(f"GPU {index}", value, verdict, advice, data))
    return findings
