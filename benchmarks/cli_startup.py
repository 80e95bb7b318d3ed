"""How long the command line takes to answer: `harness --help`, `harness list`, `harness --version`.

Each is run ``--repeats`` times in a fresh process; the median and the fastest are printed.
Subcommands import their heavy libraries (pandas, scipy, matplotlib, the runner) only when they
run, so ``--help`` should answer in well under half a second on a quiet machine.

    python benchmarks/cli_startup.py --repeats 10

This prints figures; it is not a test (a loaded machine would break any bound).
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import time

COMMANDS = (["--help"], ["--version"], ["list"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=10)
    args = parser.parse_args()
    harness = shutil.which("harness", path=os.path.dirname(sys.executable)) or "harness"
    print(
        f"{'command':<20}{'median s':>10}{'fastest s':>11}   (load average {os.getloadavg()[0]:.2f})"
    )
    # as on a user's machine: byte code is written once and read afterwards, and the first run
    # (which writes it, and the task summary cache) is not counted
    env = {key: value for key, value in os.environ.items() if key != "PYTHONDONTWRITEBYTECODE"}
    for command in COMMANDS:
        subprocess.run([harness, *command], capture_output=True, check=True, env=env)
        times = []
        for _ in range(args.repeats):
            start = time.perf_counter()
            subprocess.run([harness, *command], capture_output=True, check=True, env=env)
            times.append(time.perf_counter() - start)
        label = "harness " + " ".join(command)
        print(f"{label:<20}{statistics.median(times):>10.3f}{min(times):>11.3f}")


if __name__ == "__main__":
    main()
