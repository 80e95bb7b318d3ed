"""The environment record written with every run: what ran, where, with which versions."""

from __future__ import annotations

import hashlib
import importlib.metadata
import os
import platform
import re
import socket
import sys
from datetime import UTC, datetime
from typing import Any

import psutil

import harness


def cpu_model() -> str:
    """The CPU's marketing name (``/proc/cpuinfo`` on Linux, ``platform`` elsewhere)."""
    try:
        with open("/proc/cpuinfo") as cpuinfo:
            for line in cpuinfo:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def usable_memory() -> tuple[int, str]:
    """The memory cells may use here, and what sets it: the machine's, or a smaller limit of
    this process's cgroup (a container's, a CI runner's)."""
    from harness.measure.monitor import cgroup_memory_limit

    machine = psutil.virtual_memory().total
    limit = cgroup_memory_limit()
    if limit is not None and limit < machine:
        return limit, "this process's cgroup memory limit"
    return machine, "this machine's memory"


def usable_cores() -> int:
    """Cores this process may run on (its affinity), which can be fewer than the machine has."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def environment_record(
    *,
    threads: int,
    seed: int,
    frameworks: dict[str, str | None],
    plugins: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """What a run's ``environment.json`` records: this machine, the versions, and the plugins
    (``plugins``: each plugin's source and the frameworks, tasks and datasets it provided)."""
    return {
        "harness_version": harness.__version__,
        "python_version": platform.python_version(),
        "python_implementation": platform.python_implementation(),
        "platform": platform.platform(),
        "hostname": socket.gethostname(),
        "cpu_model": cpu_model(),
        "physical_cores": psutil.cpu_count(logical=False),
        "logical_cores": psutil.cpu_count(logical=True),
        "usable_cores": usable_cores(),
        "memory_bytes": psutil.virtual_memory().total,
        "threads": threads,
        "seed": seed,
        "framework_versions": frameworks,
        "plugins": plugins or [],
        "command": " ".join(["harness", *sys.argv[1:]]),
        "recorded_at": datetime.now(UTC).isoformat(timespec="seconds"),
    }


def package_lock() -> tuple[dict[str, str], str]:
    """Every package this process can import, ``{name: version}``, and the lock's SHA-256.

    Read from package metadata in ``sys.path`` order, the first of a name winning as it does at
    import: in a ``--with`` environment, its pinned version, not the one behind it. The hash is
    of the sorted ``name==version`` lines, so two environments with the same packages match.
    """
    found: dict[str, str] = {}
    for distribution in importlib.metadata.distributions():
        name = distribution.metadata["Name"]
        if name:
            found.setdefault(re.sub(r"[-_.]+", "-", name).lower(), distribution.version)
    packages = dict(sorted(found.items()))
    text = "".join(f"{name}=={version}\n" for name, version in packages.items())
    return packages, hashlib.sha256(text.encode()).hexdigest()
