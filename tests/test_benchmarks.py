"""The benchmark scripts' own arithmetic (their figures depend on the machine, so aren't tested)."""

import importlib.util
import math
import sys
from pathlib import Path

import pytest

from harness.registry.catalog import load_task
from harness.workload.flops import training_flops

BENCHMARKS = Path(__file__).parent.parent / "benchmarks"


def load_script(name):
    sys.path.insert(0, str(BENCHMARKS))  # roofline.py imports its sibling overhead.py
    try:
        spec = importlib.util.spec_from_file_location(name, BENCHMARKS / f"{name}.py")
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        return module
    finally:
        sys.path.remove(str(BENCHMARKS))


roofline = load_script("roofline")


def test_the_roofline_floor_counts_the_products_a_training_step_needs():
    task = load_task("mnist_mlp")
    assert roofline.step_products(task) == [
        ("layer 1 forward", 32, 784, 128),
        ("layer 1 weight gradient", 784, 32, 128),
        # no input gradient for the first dense layer: nothing below it learns
        ("layer 2 forward", 32, 128, 10),
        ("layer 2 weight gradient", 128, 32, 10),
        ("layer 2 input gradient", 32, 10, 128),
    ]
    # the FLOP formula (three forward passes) counts the first layer's input gradient too
    counted = sum(2 * m * k * n for _, m, k, n in roofline.step_products(task))
    assert counted == training_flops(task, 32) - 2 * 32 * 784 * 128


def test_the_roofline_floor_is_for_dense_models_only():
    with pytest.raises(SystemExit, match="conv2d: dense models only"):
        roofline.step_products(load_task("mnist_cnn"))


def test_a_product_is_timed_at_its_shape():
    # a figure per product, whatever the machine's speed: positive and finite, not a bound
    seconds = roofline.product_seconds("numpy", 32, 784, 128, threads=1)
    assert 0 < seconds < math.inf


def trace_of_steps(*steps: list[str]) -> list[dict]:
    """A trace with one marked step per list of operation names, each operation 2 µs long,
    and an operation between the steps that no step holds."""
    events = []
    for number, names in enumerate(steps):
        start = number * 100.0
        events.append({"name": f"harness step {number}", "ph": "X", "ts": start, "dur": 50.0})
        for offset, name in enumerate(names, start=1):
            events.append({"name": name, "ph": "X", "ts": start + 3 * offset, "dur": 2.0})
        events.append({"name": "between", "ph": "X", "ts": start + 60, "dur": 2.0})
    return events


def test_the_breakdown_script_names_the_operations_only_one_sides_step_runs():
    breakdown = load_script("overhead_breakdown")

    def classify(event):
        return None if event["name"].startswith("harness") else "other_compute"

    plain = breakdown.operations(trace_of_steps(["mm", "add"], ["mm", "add"]), classify)
    harnessed = breakdown.operations(
        trace_of_steps(["mm", "add", "add_"], ["mm", "add", "add_"]), classify
    )
    assert plain == {"mm": [1, 2.0], "add": [1, 2.0]}  # "between" is in no step
    assert breakdown.differences(plain, harnessed) == (
        "harness +1 add_ (2.0 µs); the harness's step +2.0 µs in these"
    )
    assert breakdown.differences(plain, plain) == "the same operations"
