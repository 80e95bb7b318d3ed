"""What several commands share: exit codes, option types, and checks made before any work."""

from __future__ import annotations

import math
import re
from fractions import Fraction
from pathlib import Path
from typing import Any

import click

from harness.errors import HarnessError

EXIT_CODES = """\b
Exit codes:
  0  every cell finished (ok or skipped; ok includes target_missed)
  1  at least one cell failed (crash, oom, timeout, import_error, exception, diverged,
     parameter_mismatch, node_lost), or a framework failed to run its agreement steps
  2  bad input: unknown name, bad value, malformed task file, unusable or foreign
     run folder, GPU asked for and none present
  3  dataset missing, truncated or failing its checksum
  4  harness compare --fail-on-regression: a cell got slower beyond the threshold, or
     failed, was skipped or is missing in the second run where it finished in the first
  5  harness check-agreement: frameworks disagree beyond the task's tolerance
  6  harness compare: the runs have no cell in common (another task, other frameworks),
     or no cell of the first run finished: nothing could be compared
  7  harness compare --fail-on-regression: no regression, but a change of time could not
     be judged because a machine was busy ("inconclusive: busy machine"): rerun it quiet
"""


class FiniteRange(click.FloatRange):
    """A float range that also refuses ``nan`` and ``inf`` (click's own range lets both pass)."""

    def convert(self, value, param, ctx):
        number = super().convert(value, param, ctx)
        if not math.isfinite(number):
            self.fail(f"{value!r} is not a finite number", param, ctx)
        return number


class MemorySize(click.ParamType):
    """A byte count written like 512M, 4G or 1.5GiB."""

    name = "size"
    #: the largest size a signed 64-bit byte count holds, as the runner and result files keep it
    largest = 2**63 - 1
    _units = {"": 1, "k": 2**10, "m": 2**20, "g": 2**30, "t": 2**40}

    def convert(self, value, param, ctx):
        if isinstance(value, int) and not isinstance(value, bool):
            size = value
        else:
            match = re.fullmatch(
                r"\s*([0-9]+(?:\.[0-9]+)?)\s*([kmgt]?)(?:i?b)?\s*", str(value).lower()
            )
            if not match or Fraction(match.group(1)) <= 0:
                self.fail(f"{value!r} is not a size like 512M or 4G", param, ctx)
            # exact arithmetic: a float turns 400 digits into inf, which no int holds
            size = int(Fraction(match.group(1)) * self._units[match.group(2)])
        if size < 2**20:  # '0.5' would be 0 bytes, which reads back as "no limit"
            self.fail(f"{value!r} is less than 1M; give a size like 512M or 4G", param, ctx)
        if size > self.largest:
            self.fail(f"{value!r} is more than 8 EiB, more than any machine has", param, ctx)
        return size


#: options several commands share, defined once so they read and behave the same everywhere
framework_option = click.option(
    "--framework",
    "-f",
    "frameworks",
    multiple=True,
    metavar="NAME",
    help="A framework to include; repeat for several.",
)
dataset_option = click.option(
    "--dataset",
    default=None,
    metavar="NAME",
    help="Use another dataset of the same shape, e.g. fashion_mnist for an MNIST task.",
)


def device_option(help_text: str) -> Any:
    """``--device cpu|gpu|auto`` (auto: a GPU when the framework sees one)."""
    from harness.api.adapter import DEVICE_KINDS

    return click.option(
        "--device",
        type=click.Choice([*DEVICE_KINDS, "auto"]),
        default="auto",
        show_default=True,
        help=help_text,
    )


threads_option = click.option(
    "--threads",
    type=click.IntRange(1, 4096),
    default=None,
    help="Threads for every framework, at most the usable cores  [default: all usable cores]",
)
RESULTS_OPTION = click.option(
    "--results",
    type=click.Path(path_type=Path),
    default=Path("results"),
    show_default=True,
    help="The folder that holds the run folders (for a command's default run).",
)
data_dir_option = click.option(
    "--data-dir",
    type=click.Path(path_type=Path),
    default=None,
    help="Folder holding the dataset files (also $HARNESS_DATA_DIR); "
    "else the user cache, then the copy shipped with harness.",
)


def gpu_present() -> bool:
    """Whether this machine has an NVIDIA or ROCm GPU, judged without importing a framework."""
    nvidia = Path("/proc/driver/nvidia/gpus")
    return (nvidia.is_dir() and any(nvidia.iterdir())) or Path("/dev/kfd").exists()


def resolve_threads(threads: int | None) -> int:
    """``--threads``: at most the usable cores (the runner pins each cell to that many)."""
    from harness.measure.environment import usable_cores  # psutil: only for the commands that run

    cores = usable_cores()
    if threads is not None and threads > cores:
        raise click.BadParameter(
            f"{threads} is more than the {cores} usable cores", param_hint="'--threads'"
        )
    return threads or cores


def require_gpu_if_asked(device: str) -> None:
    if device == "gpu" and not gpu_present():
        raise HarnessError(
            "--device gpu: no GPU found on this machine (no NVIDIA or ROCm device); "
            "use --device cpu or --device auto"
        )
