"""The machine's peak: float32 matrix-product FLOP/s per framework and device, measured and cached.

``harness calibrate`` runs a short matrix-multiply loop in each framework, in a child process
pinned like a training cell, and caches the best FLOP/s per machine. Runs then relate each
cell's achieved FLOP/s to that peak: its model-FLOP utilisation.
"""

from __future__ import annotations

import json
import socket
import tempfile
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import platformdirs

from harness.errors import HarnessError
from harness.measure.environment import cpu_model, usable_cores
from harness.paths import read_regular
from harness.store.locking import MAX_CACHE_BYTES, update_json_file

DEFAULT_SIZE = {"cpu": 2048, "gpu": 8192}

if TYPE_CHECKING:
    from harness.runner.child_spec import ChildSpec
    from harness.runner.worker import Events


def cache_path() -> Path:
    return Path(platformdirs.user_cache_dir("harness")) / "calibration.json"


def machine_key() -> str:
    """What identifies this machine's peak: host, CPU model and usable cores."""
    return f"{socket.gethostname()}|{cpu_model()}|{usable_cores()} cores"


def entry_key(framework: str, version: str | None, device: str, threads: int | None) -> str:
    return f"{framework} {version or '?'} {device} {threads} threads"


def load() -> dict[str, dict[str, Any]]:
    """This machine's cached calibrations, by :func:`entry_key`."""
    try:
        data = json.loads(read_regular(cache_path(), MAX_CACHE_BYTES).decode("utf-8"))
    except (OSError, ValueError, HarnessError):  # missing, damaged, or not a file
        return {}
    machine = data.get(machine_key(), {}) if isinstance(data, dict) else {}
    return machine if isinstance(machine, dict) else {}


def save(entries: dict[str, dict[str, Any]]) -> Path:
    """Merge ``entries`` into this machine's cache, under a lock (read, merge, write whole)."""
    path = cache_path()

    def merge(data: dict[str, Any]) -> None:
        machine = data.get(machine_key())
        data[machine_key()] = {**(machine if isinstance(machine, dict) else {}), **entries}

    update_json_file(path, merge)
    return path


def peak_flops(framework: str, version: str | None, device: str, threads: int) -> float | None:
    """The cached peak FLOP/s for a cell, or ``None`` if ``harness calibrate`` hasn't measured it."""
    entry = load().get(entry_key(framework, version, device, threads))
    return entry.get("flops_per_second") if entry else None


def record(
    framework: str, version: str | None, device: str, threads: int, flops: float, size: int
) -> dict[str, Any]:
    return {
        entry_key(framework, version, device, threads): {
            "flops_per_second": flops,
            "matrix_size": size,
            "measured_at": datetime.now(UTC).isoformat(timespec="seconds"),
        }
    }


def measure(
    framework: str,
    *,
    device: str,
    threads: int,
    size: int | None,
    repeats: int,
    timeout: float = 600,
) -> dict[str, Any]:
    """Run one framework's matrix-multiply loop in a child process; returns its outcome.

    ``{"status": "ok", "device": "cpu", "flops_per_second": ..., "size": ...}`` or
    ``{"status": "failed", "error": ...}``.
    """
    from harness.runner.child_spec import ChildSpec
    from harness.runner.process import Limits, run_child

    spec = ChildSpec(
        entry="harness.checks.calibration:run_calibration",
        framework=framework,
        device=device,
        threads=threads,
        options={
            "size": size or DEFAULT_SIZE["gpu" if device == "gpu" else "cpu"],
            "repeats": repeats,
        },
    )
    with tempfile.TemporaryDirectory() as folder:
        log = Path(folder) / "calibrate.log"
        outcome = run_child(spec, threads=threads, limits=Limits(timeout), log_path=log)
        failure = outcome.failure(Limits(timeout), log)
    if failure is not None:
        return {"status": "failed", "error": failure[1]}
    assert outcome.result is not None
    if outcome.result["status"] != "ok":
        return {"status": outcome.result["status"], "error": outcome.result.get("error")}
    metrics = outcome.result["metrics"]
    return {
        "status": "ok",
        "device": outcome.result["device"],
        "device_name": outcome.result["device_name"],
        "flops_per_second": metrics["matmul_flops_per_second"],
        "size": metrics["size"],
    }


# -- in the child process --------------------------------------------------------


def run_calibration(spec: ChildSpec, events: Events) -> None:
    """Measure the adapter's float32 matrix-product FLOP/s (for ``harness calibrate``).
    ``spec.options``: ``size`` (of the square matrices), ``repeats``, ``rounds`` (default 3)."""
    from harness.runner import worker

    prepared = worker.prepare(spec, events)
    if prepared is None:
        return
    _, session, runtime_fields = prepared
    size, repeats = spec.options["size"], spec.options["repeats"]
    session.matmul_seconds(size, 2)  # warm-up: first-call compilation and allocation
    best = min(session.matmul_seconds(size, repeats) for _ in range(spec.options.get("rounds", 3)))
    flops = 2 * size**3 * repeats / best
    events.send(
        "result",
        status="ok",
        kind=None,
        error=None,
        metrics={"matmul_flops_per_second": flops, "size": size, "repeats": repeats},
        **runtime_fields,
    )
