"""How often does harness call a quiet machine busy? Its false-alarm rate, measured.

Runs short real cells (``mnist_mlp``, one epoch on a subset) several times per framework on a
machine left alone, and prints each cell's noise verdict, what other processes used, and the
share called ``busy``: on a quiet machine that share is the false-alarm rate of the thresholds
in ``harness/measure/noise.py``. Run it with nothing else going on; ``harness doctor`` first says
whether that is so.

    python benchmarks/noise_calibration.py                      # torch and jax, 10 runs each
    python benchmarks/noise_calibration.py -f torch --runs 20

With ``--burn N`` it starts N CPU-burning processes beside the cells instead, to show the
verdict on a busy machine. This is a benchmark that prints figures, not a test.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "-f", "--framework", action="append", choices=("tensorflow", "torch", "jax")
    )
    parser.add_argument("--runs", type=int, default=10, help="cells per framework")
    parser.add_argument("--train-subset", type=int, default=10000)
    parser.add_argument("--burn", type=int, default=0, help="CPU burners beside the cells")
    args = parser.parse_args()
    frameworks = args.framework or ["torch", "jax"]
    burners = [
        subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(args.burn)
    ]
    try:
        with tempfile.TemporaryDirectory() as out:
            command = [
                sys.executable, "-m", "harness", "run", "--task", "mnist_mlp", "--epochs", "1",
                "--train-subset", str(args.train_subset), "--repeats", str(args.runs),
                "--no-report", "--out", out, "--device", "cpu",
            ]  # fmt: skip
            for framework in frameworks:
                command += ["-f", framework]
            subprocess.run(command, check=True, capture_output=True)
            [results] = Path(out).glob("*/results.jsonl")
            rows = [json.loads(line) for line in results.read_text().splitlines()]
    finally:
        for burner in burners:
            burner.kill()
            burner.wait()
    print(f"{'cell':40} {'verdict':8} {'others':>8} {'busy share':>10} {'steal':>6}  fit s")
    busy = 0
    judged = [row for row in rows if row.get("noise", {}).get("verdict") in ("quiet", "busy")]
    for row in judged:
        noise = row["noise"]
        busy += noise["verdict"] == "busy"
        print(
            f"{row['cell_id']:40} {noise['verdict']:8} {noise['other_cores_mean']:8.3f} "
            f"{noise['busy_share']:10.0%} {noise['steal_share']:6.1%}  "
            f"{row['metrics'].get('fit_seconds', float('nan')):.2f}"
        )
    others = sorted(row["noise"]["other_cores_mean"] for row in judged)
    print(
        f"\n{busy} of {len(judged)} cells called busy ({busy / max(len(judged), 1):.0%}); "
        f"other processes' mean use: median {others[len(others) // 2]:.3f} cores, "
        f"most {others[-1]:.3f} cores"
        + (f" (with {args.burn} CPU burners)" if args.burn else " (nothing else started)")
    )


if __name__ == "__main__":
    main()
