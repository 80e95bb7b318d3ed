"""What the harness itself costs each cell: the peak RSS and start-up of a cell that trains nothing.

Runs ``mnist_mlp`` (one epoch on 1,000 samples) with a framework that computes nothing
(``benchmarks/harness_empty_plugin.py``), in fresh processes, and prints the median over
``--repeats`` of the cell's peak resident memory, its start-up (framework import and setup,
then building the model), its data loading, and the whole cell's wall time. Every real
framework's ``peak_rss_bytes`` includes this floor; the child imports no pandas, scipy or
matplotlib, which a test asserts.

    python benchmarks/cell_footprint.py --repeats 5

This prints figures; it is not a test.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    env = dict(os.environ, HARNESS_PLUGINS="harness_empty_plugin")
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(HERE), env.get("PYTHONPATH")]))
    with tempfile.TemporaryDirectory() as out:
        command = [
            sys.executable,
            "-m",
            "harness",
            "run",
            "--task",
            "mnist_mlp",
            "--framework",
            "empty",
            "--epochs",
            "1",
            "--train-subset",
            "1000",
            "--repeats",
            str(args.repeats),
            "--threads",
            "1",
            "--out",
            out,
            "--no-report",
        ]
        subprocess.run(command, env=env, check=False, capture_output=True)
        [run_dir] = Path(out).iterdir()
        rows = [json.loads(line) for line in (run_dir / "results.jsonl").read_text().splitlines()]
    metrics = [row["metrics"] for row in rows if row["status"] == "ok"]
    if not metrics:
        sys.exit(f"no cell finished: {[row.get('error') for row in rows]}")

    def median(key: str, scale: float = 1.0) -> float:
        return statistics.median(m[key] for m in metrics) * scale

    print(f"empty cell, median of {len(metrics)} (harness {_version()}):")
    print(f"  peak RSS      {median('peak_rss_bytes', 2**-20):8.1f} MiB")
    print(
        f"  start-up      {median('startup_seconds'):8.3f} s  (framework import and setup, build)"
    )
    print(f"  data loading  {median('data_seconds'):8.3f} s")
    print(
        f"  whole cell    {statistics.median(row['wall_seconds'] for row in rows):8.3f} s  (process start to result)"
    )


def _version() -> str:
    from harness import __version__

    return __version__


if __name__ == "__main__":
    main()
