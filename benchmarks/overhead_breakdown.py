"""Where a step's time goes, through the harness and in a plain loop: the same profiler, the same categories.

For PyTorch (eager and compiled) and JAX eager on ``mnist_mlp``, this profiles the steady
steps of ``overhead.py``'s plain loop as ``harness run --profile`` profiles a cell (10 steps to
warm up, 10 timed, 10 under the framework's profiler, each marked), with the harness's own
profiler class and breakdown (:mod:`harness.measure.breakdown`), and prints it beside the
breakdown of the same cell profiled by ``harness run --profile``: microseconds per step by
category, and the operations a step runs (the profiler's events that fall in a category).
The count does not depend on how busy the machine is; the times do, so each side is the
median of ``--repeats`` runs, interleaved.

    python benchmarks/overhead_breakdown.py                # torch eager and compiled, jax eager
    python benchmarks/overhead_breakdown.py -f jax --repeats 3

This is a benchmark that prints figures, not a test: timings depend on the machine.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parent))
from overhead import JaxLoop, TorchLoop, run_child, training_data  # noqa: E402  (a sibling script)

from harness.present.profile import HEADINGS as COLUMNS  # noqa: E402  (the categories' headings)

#: the cells a plain loop can be profiled step by step (JAX's compiled loop scans its epoch)
CELLS = (("torch", "eager"), ("torch", "compiled"), ("jax", "eager"))
#: a hash in an operation's name: a compiled graph's call, named differently in each process
_HASH = re.compile(r"\b[a-z0-9]{40,}\b")


def operations(events: list[dict[str, Any]], classify) -> dict[str, list[float]]:
    """Each operation a marked step runs (the profiler's events that fall in a category,
    nested ones too): ``{name: [how many a step, µs a step]}``, medians over the steps."""
    from harness.measure.breakdown import marked_regions

    steps = []
    for marker, (start, end) in marked_regions(events).items():
        if not marker.startswith("harness step"):
            continue
        ran: dict[str, list[float]] = {}
        for event in events:
            if start <= float(event.get("ts", -1)) < end and classify(event) is not None:
                operation = _HASH.sub("…", str(event["name"]))
                count_and_time = ran.setdefault(operation, [0, 0.0])
                count_and_time[0] += 1
                count_and_time[1] += float(event.get("dur", 0.0))
        steps.append(ran)
    names = {name for ran in steps for name in ran}
    return {
        name: [statistics.median(ran.get(name, [0, 0.0])[i] for ran in steps) for i in (0, 1)]
        for name in names
    }


def differences(plain: dict[str, list[float]], harnessed: dict[str, list[float]]) -> str:
    """The operations one side's step runs more often than the other's, each with the time of
    the extra ones at that side's mean for the operation (an instance's own time varies with
    what it computes: Adam's ``add_`` over a layer's weights and the loss's over a scalar)."""
    parts, net = [], 0.0
    for name in sorted(plain.keys() | harnessed.keys()):
        (a, a_us), (b, b_us) = plain.get(name, [0, 0.0]), harnessed.get(name, [0, 0.0])
        if a == b:
            continue
        side, count, total, more = (
            ("harness", b, b_us, b - a) if b > a else ("plain", a, a_us, a - b)
        )
        extra = total / count * more
        net += extra if side == "harness" else -extra
        parts.append(f"{side} +{more:g} {name} ({extra:.1f} µs)")
    if not parts:
        return "the same operations"
    return "; ".join(parts) + f"; the harness's step {net:+.1f} µs in these"


# -- the plain loop's profiled pass (in a child process) ---------------------------------


def profile_plain(framework: str, mode: str) -> dict[str, Any]:
    """The plain loop's pass, as :func:`harness.checks.profiling.run_profile` makes a cell's."""
    from harness.api.profiling import JaxProfiler, TorchProfiler
    from harness.checks.profiling import PROFILED_STEPS, profile_metrics

    x, y = training_data()
    loop = {"torch": TorchLoop, "jax": JaxLoop}[framework](x, y, mode)
    order = loop.order()
    # each step slices its batch from the epoch's order, as the timed loop's steps do
    starts = [n * 32 for n in range(3 * PROFILED_STEPS)]
    warmup = starts[:PROFILED_STEPS]
    unprofiled = starts[PROFILED_STEPS : 2 * PROFILED_STEPS]
    profiled = starts[2 * PROFILED_STEPS :]
    for begin in warmup:
        loss = loop.step(order[begin : begin + 32])
    loop.wait(loss)
    plain_steps, began_epoch = [], time.perf_counter()
    for begin in unprofiled:
        began = time.perf_counter()
        loop.wait(loop.step(order[begin : begin + 32]))
        plain_steps.append(time.perf_counter() - began)
    plain_epoch = time.perf_counter() - began_epoch
    profiler = {"torch": TorchProfiler, "jax": JaxProfiler}[framework](Path(tempfile.mkdtemp()))
    marked_steps = []
    with profiler:
        began_epoch = time.perf_counter()
        for number, begin in enumerate(profiled):
            with profiler.step(number):  # entered before the clock starts, left after it stops
                began = time.perf_counter()
                loop.wait(loop.step(order[begin : begin + 32]))
                marked_steps.append(time.perf_counter() - began)
        epoch = time.perf_counter() - began_epoch
    trace = profiler.events()
    metrics = profile_metrics(
        trace, profiler, (plain_steps, plain_epoch), (marked_steps, epoch), PROFILED_STEPS
    )
    metrics["operations"] = operations(trace, profiler.category)
    return metrics


# -- the harness's profiled pass -----------------------------------------------------------


def profile_harness(framework: str, mode: str, threads: int) -> dict[str, Any]:
    from harness.api.profiling import JaxProfiler, TorchProfiler
    from harness.checks.profiling import read_profiles

    with tempfile.TemporaryDirectory() as out:
        command = [
            sys.executable, "-m", "harness", "run", "--task", "mnist_mlp", "-f", framework,
            "--mode", mode, "--device", "cpu", "--epochs", "1", "--train-subset", "640",
            "--threads", str(threads), "--profile", "--no-report", "--out", out,
        ]  # fmt: skip
        result = subprocess.run(command, capture_output=True, text=True)
        [run_dir] = Path(out).iterdir()
        [record] = read_profiles(run_dir)
        if record["status"] != "ok":
            raise SystemExit(f"harness {framework} {mode}: {record['error']}\n{result.stderr}")
        trace = json.loads((run_dir / record["trace"]).read_text())["traceEvents"]
    classify = {"torch": TorchProfiler, "jax": JaxProfiler}[framework](Path(out)).category
    events = [event for event in trace if event.get("ph") == "X"]
    metrics = record["metrics"]
    metrics["operations"] = operations(events, classify)
    return metrics


def median_metrics(runs: list[dict[str, Any]]) -> dict[str, float]:
    """Each category's µs per step, the measured step, the profiler's slowdown and the
    operations per step: medians over the runs."""
    figures = {
        name: statistics.median(run["seconds_per_step"][name] for run in runs) * 1e6
        for name in COLUMNS
    }
    figures["step"] = statistics.median(run["measured_seconds_per_step"] for run in runs) * 1e6
    figures["unprofiled"] = statistics.median(run["unprofiled_step_seconds"] for run in runs) * 1e6
    figures["operations"] = statistics.median(
        sum(count for count, _ in run["operations"].values()) for run in runs
    )
    return figures


def line(framework: str, mode: str, side: str, figures: dict[str, float]) -> str:
    parts = "".join(f"{figures[name]:>9.1f}" for name in COLUMNS)
    return (
        f"{framework:<7}{mode:<10}{side:<9}{figures['unprofiled']:>9.1f}{figures['step']:>9.1f}"
        f"{parts}{figures['operations']:>6.0f}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("-f", "--framework", action="append", choices=("torch", "jax"))
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=len(os.sched_getaffinity(0)))
    parser.add_argument("--plain", choices=("torch", "jax"), help=argparse.SUPPRESS)
    parser.add_argument("--mode", choices=("eager", "compiled"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.plain:
        print(json.dumps(profile_plain(args.plain, args.mode)))
        return

    print(
        f"mnist_mlp, {args.threads} thread(s), µs per step, median of {args.repeats} run(s) "
        f"each; 'timed': a step without the profiler, 'step': with it; 'ops': operations a step runs"
    )
    header = "".join(f"{title:>9}" for title in COLUMNS.values())
    print(f"{'':<7}{'mode':<10}{'side':<9}{'timed':>9}{'step':>9}{header}{'ops':>6}")
    for framework, mode in CELLS:
        if args.framework and framework not in args.framework:
            continue
        plain, harnessed = [], []
        for _ in range(args.repeats):  # interleaved, so drift hits both sides alike
            plain.append(run_child(__file__, ["--plain", framework, "--mode", mode], args.threads))
            harnessed.append(profile_harness(framework, mode, args.threads))
        print(line(framework, mode, "plain", median_metrics(plain)))
        print(line(framework, mode, "harness", median_metrics(harnessed)))
        # the operations of the last pair: which ones a step runs doesn't vary from run to run
        print(
            f"{'':<26}{differences(plain[-1]['operations'], harnessed[-1]['operations'])}",
            flush=True,
        )


if __name__ == "__main__":
    main()
