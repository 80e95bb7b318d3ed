"""Run the test suite beside CPU burners: the check that no test's verdict depends on a quiet machine.

A laptop or a shared CI runner is seldom quiet. This starts ``--burners`` processes that spin
on the CPU (two by default: on a 2-core machine, every core is contended), runs ``pytest`` with
any further arguments, stops the burners it started (and only those) and exits with pytest's
code. The load average before and after is printed, so that the output says how busy it was.

    python benchmarks/busy_suite.py                  # the default suite beside two burners
    python benchmarks/busy_suite.py --burners 4 -- tests/test_noise.py -x

It prints figures and a verdict; it is not itself a test.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time

SPIN = "while True:\n    pass"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--burners", type=int, default=2, help="CPU burners to run beside it")
    parser.add_argument("pytest_args", nargs="*", help="passed to pytest (after --)")
    args = parser.parse_args()
    burners = [subprocess.Popen([sys.executable, "-c", SPIN]) for _ in range(args.burners)]
    print(
        f"{args.burners} CPU burner(s) started beside the suite on {os.cpu_count()} core(s); "
        f"load average {os.getloadavg()[0]:.2f}",
        flush=True,
    )
    start = time.monotonic()
    try:
        code = subprocess.call([sys.executable, "-m", "pytest", *args.pytest_args])
    finally:
        load = os.getloadavg()
        for burner in burners:
            burner.kill()
            burner.wait()
    minutes = (time.monotonic() - start) / 60
    print(
        f"pytest exited {code} after {minutes:.1f} min beside {args.burners} burner(s); "
        f"load average at the end {load[0]:.2f} (1 min), {load[2]:.2f} (15 min)"
    )
    return code


if __name__ == "__main__":
    sys.exit(main())
