"""Energy over a cell's fit, where a counter measures it: never an estimate.

On a GPU cell, NVML's total-energy counter of each GPU the cell's processes use (Volta and
later). On a CPU cell, the RAPL package counters of ``/sys/class/powercap`` where the kernel
lets this user read them; they count the whole package, other processes included, which the
row's ``noise`` verdict says something about. Where neither can be read the row says why, and
has no figure: a nominal TDP times the time would be a guess dressed as a measurement.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

logger = logging.getLogger(__name__)

POWERCAP = Path("/sys/class/powercap")


class EnergyMeter:
    """Reads the counters at :meth:`start` and :meth:`stop`; :meth:`result` gives the row's
    ``energy``: joules and their source, or the reason there are none."""

    def __init__(self, gpu: bool) -> None:
        self.gpu = gpu  #: read the GPU's counter (else RAPL); settled by the cell's runtime
        self._start: dict[str, float] | None = None
        self._stop: dict[str, float] | None = None
        self._reason = ""
        self._source = ""

    def start(self) -> None:
        self._start = self._read()

    def stop(self) -> None:
        if self._start is not None and self._stop is None:
            self._stop = self._read()

    def _read(self) -> dict[str, float] | None:
        if self.gpu:
            readings = _nvml_millijoules()
            if readings:
                self._source = "nvml"
                return {name: value / 1000 for name, value in readings.items()}
            self._reason = "no NVML energy counter (no NVIDIA driver, or a GPU older than Volta)"
            return None
        readings = _rapl_microjoules()
        if readings:
            self._source = "rapl"
            return {name: value / 1e6 for name, value in readings.items()}
        self._reason = (
            "no readable RAPL counter (/sys/class/powercap): a VM, or not permitted for this user"
        )
        return None

    def result(self) -> dict[str, Any] | None:
        if self._start is None and not self._reason:
            return None  # the fit never started
        if self._start is None or self._stop is None:
            return {"joules": None, "reason": self._reason or "the fit did not end"}
        joules = 0.0
        for name, before in self._start.items():
            after = self._stop.get(name, before)
            joules += after - before if after >= before else after + _range(name) - before
        return {"joules": round(joules, 3), "source": self._source}


def _nvml_millijoules() -> dict[str, float]:
    try:
        import pynvml

        pynvml.nvmlInit()
        readings = {}
        for index in range(pynvml.nvmlDeviceGetCount()):
            handle = pynvml.nvmlDeviceGetHandleByIndex(index)
            readings[f"gpu{index}"] = float(pynvml.nvmlDeviceGetTotalEnergyConsumption(handle))
        return readings
    except Exception as exc:  # no library, no driver, an old GPU
        logger.debug("NVML energy unavailable: %s", exc)
        return {}


def _rapl_microjoules() -> dict[str, float]:
    """``{domain: microjoules}`` of the package domains (``intel-rapl:N``); empty if unreadable."""
    readings = {}
    for domain in sorted(POWERCAP.glob("intel-rapl:[0-9]*")):
        if domain.name.count(":") != 1:
            continue  # a sub-domain (core, uncore, dram): already inside its package
        try:
            readings[str(domain)] = float((domain / "energy_uj").read_text())
        except (OSError, ValueError):
            return {}
    return readings


def _range(name: str) -> float:
    """Where a RAPL counter wraps, in joules (NVML's does not wrap in practice)."""
    try:
        return float((Path(name) / "max_energy_range_uj").read_text()) / 1e6
    except (OSError, ValueError):
        return 0.0
