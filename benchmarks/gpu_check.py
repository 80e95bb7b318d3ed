"""Check the GPU path end to end, on a machine that has a GPU.

Trains each task (``mnist_mlp``, the ResNet ``fashion_resnet`` and the language model
``text_gpt`` by default) with ``--device gpu`` in every installed framework and mode, in
float32 and bfloat16 by default, then asserts that each cell really ran on the GPU (the
framework named a GPU device and allocated memory on it), that a float32 cell's precision
manifest has TF32 off, and that it reached the task's target; prints the figures to record in
docs/measuring.md.

    pip install -e '.[all,gpu]'      # a CUDA build of each framework, and NVML
    python benchmarks/gpu_check.py   # exits non-zero if any check fails
    python benchmarks/gpu_check.py --task text_gpt --precision mixed -- --repeats 3

Not part of the test suite: the project's CI machines have no GPU.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

DEFAULT_TASKS = ("mnist_mlp", "fashion_resnet", "text_gpt")
DEFAULT_PRECISIONS = ("float32", "bfloat16")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--task", action="append", help="a task to check (repeatable)")
    parser.add_argument(
        "--precision",
        action="append",
        choices=("float32", "bfloat16", "mixed"),
        help="a precision to check (repeatable; default float32 and bfloat16)",
    )
    parser.add_argument("run_args", nargs="*", help="passed to harness run (after --)")
    args = parser.parse_args()
    precisions = args.precision or list(DEFAULT_PRECISIONS)
    codes = [
        check(task, ["--precision", precision, *args.run_args])
        for task in args.task or DEFAULT_TASKS
        for precision in precisions
    ]
    return max(codes)


def check(task: str, run_args: list[str]) -> int:
    """Run one task on the GPU and check its rows; 1 if any check failed."""
    with tempfile.TemporaryDirectory() as out:
        command = [
            sys.executable,
            "-m",
            "harness",
            "run",
            "--task",
            task,
            "--all-frameworks",
            "--device",
            "gpu",
            "--mode",
            "all",
            "--out",
            out,
            *run_args,
        ]
        run = subprocess.run(command, text=True)
        [run_dir] = Path(out).iterdir()
        rows = [json.loads(line) for line in (run_dir / "results.jsonl").read_text().splitlines()]
    problems, skipped = [], []
    print(
        f"\n{task}\n{'framework':<12}{'mode':<10}{'precision':<10}{'device':<28}"
        f"{'quality':>8}{'fit s':>8}"
        f"{'framework MiB':>15}{'NVML MiB':>10}"
    )
    for row in rows:
        metrics = row["metrics"]
        cell = f"{row['framework']} {row['mode']} {row.get('precision', 'float32')}"
        if row["status"] == "skipped":
            # a framework that isn't installed here, or a mode it doesn't have, is not a fault
            # of the GPU path; it is listed so that nobody reads it as covered
            skipped.append(f"{cell}: {row['kind']}: {row['error']}")
            continue
        if row["status"] != "ok":
            problems.append(f"{cell}: {row['status']}: {row['error']}")
            continue
        allocated = metrics.get("peak_device_memory_bytes")
        nvml = metrics.get("peak_device_memory_nvml_bytes")
        print(
            f"{row['framework']:<12}{row['mode']:<10}{row.get('precision', 'float32'):<10}"
            f"{row['device_name'][:27]:<28}"
            f"{quality(metrics):>8.4f}{metrics['fit_seconds']:>8.2f}"
            f"{(allocated or 0) / 2**20:>15,.0f}{(nvml or 0) / 2**20:>10,.0f}"
        )
        if row["device"] != "gpu" or row["device_name"] in ("", "cpu"):
            problems.append(f"{cell}: ran on {row['device_name']!r}, not a GPU")
        if not allocated:
            problems.append(f"{cell}: the framework reports no GPU memory allocated")
        manifest = row.get("precision_manifest") or {}
        if row.get("precision", "float32") == "float32" and manifest.get("tf32") is not False:
            problems.append(f"{cell}: float32 products may round to TF32: {manifest}")
        if not row["met_target"]:
            problems.append(f"{cell}: missed the target: {row['error']}")
    for reason in skipped:
        print("skipped", reason)
    for problem in problems:
        print("FAIL", problem)
    failed = problems or run.returncode != 0 or not any(r["status"] == "ok" for r in rows)
    print(f"{task}: GPU path FAILED" if failed else f"{task}: GPU path OK")
    return 1 if failed else 0


def quality(metrics: dict) -> float:
    """The row's quality figure: accuracy, bits per character or MSE, whichever it has."""
    for name in ("test_bits_per_char", "test_accuracy", "test_mse"):
        if metrics.get(name) is not None:
            return float(metrics[name])
    return float("nan")


if __name__ == "__main__":
    sys.exit(main())
