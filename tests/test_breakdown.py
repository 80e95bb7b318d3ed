"""A profiled step split into categories (harness.measure.breakdown), on traces written here:
each instant of a marked step goes to one category, so the parts add up to the step."""

from __future__ import annotations

import pytest

from harness.api.profiling import (
    CATEGORIES,
    JaxProfiler,
    TensorFlowProfiler,
    TorchProfiler,
    xla_category,
)
from harness.measure.breakdown import breakdown, marked_regions, split_region, summarise


def op(name: str, ts: float, dur: float, *, tid: int = 1, cat: str = "cpu_op") -> dict:
    return {"ph": "X", "name": name, "ts": ts, "dur": dur, "pid": 1, "tid": tid, "cat": cat}


def by_name(event: dict) -> str | None:
    """A classifier for these tests: the event's ``cat`` is its category, ``None`` if unset."""
    return event.get("cat") if event.get("cat") in CATEGORIES else None


def test_the_innermost_operation_decides_and_gaps_are_overhead():
    events = [
        op("linear", 0, 50, cat="matmul"),
        op("add", 10, 20, cat="other_compute"),  # nested in the product: the innermost wins
        op("copy", 70, 10, cat="copy"),
        op("autograd bookkeeping", 80, 15, cat="not an operation"),
    ]
    parts = split_region(events, by_name, 0, 100)
    assert parts["matmul"] == 30 and parts["other_compute"] == 20 and parts["copy"] == 10
    # 50-70 and 80-100: nothing ran (the bookkeeping event is no operation)
    assert parts["overhead"] == 40
    assert sum(parts.values()) == 100


def test_the_optimizer_claims_what_runs_inside_it():
    events = [op("Optimizer.step", 0, 40, cat="optimizer"), op("mul_", 5, 10, cat="other_compute")]
    parts = split_region(events, by_name, 0, 40)
    assert parts["optimizer"] == 40 and parts["other_compute"] == 0


def test_across_threads_the_higher_priority_wins_and_the_region_clips():
    events = [
        op("waiting for the device", -20, 120, tid=1, cat="other_compute"),
        op("dot", 30, 40, tid=2, cat="matmul"),  # on a compute thread, meanwhile
        op("after the step", 95, 50, tid=2, cat="copy"),
    ]
    parts = split_region(events, by_name, 0, 100)
    assert parts["matmul"] == 40
    assert parts["other_compute"] == 55  # 0-30, 70-95; 95-100 both run: copy outranks it
    assert parts["copy"] == 5
    assert sum(parts.values()) == 100


def test_each_marked_step_is_split_and_what_the_clock_saw_beyond_it_is_unattributed():
    events = [
        op("harness step 0", 0, 100, cat="user_annotation"),
        op("mm", 10, 60, cat="matmul"),
        op("harness step 1", 200, 100, cat="user_annotation"),
        op("mm", 210, 30, cat="matmul"),
        op("harness epoch", 0, 400, cat="user_annotation"),
    ]
    assert set(marked_regions(events)) == {"harness step 0", "harness step 1", "harness epoch"}
    # the harness's clock read 100 µs and 110 µs; the epoch wasn't measured here
    steps = breakdown(events, by_name, {"harness step 0": 100e-6, "harness step 1": 110e-6})
    assert [step.region for step in steps] == ["harness step 0", "harness step 1"]
    first, second = steps
    assert first.parts["matmul"] == pytest.approx(60e-6)
    assert first.parts["overhead"] == pytest.approx(40e-6)
    assert first.parts["unattributed"] == 0
    assert second.parts["unattributed"] == pytest.approx(10e-6)
    assert second.seconds == pytest.approx(second.measured_seconds)


def test_the_summary_weighs_the_middle_half_of_the_steps():
    events, measured = [], {}
    for step, (length, product) in enumerate([(100, 50), (100, 50), (100, 50), (900, 50)]):
        start = step * 1000
        events += [
            op(f"harness step {step}", start, length),
            op("mm", start, product, cat="matmul"),
        ]
        measured[f"harness step {step}"] = length / 1e6
    summary = summarise(breakdown(events, by_name, measured))
    # the 900 µs step (something else ran) is left out: 50 of 100 µs are products
    assert summary["regions"] == 4 and summary["regions_summarised"] == 2
    assert summary["shares"]["matmul"] == pytest.approx(0.5)
    assert summary["measured_seconds_per_step"] == pytest.approx(100e-6)
    assert sum(summary["seconds_per_step"].values()) == pytest.approx(100e-6)


@pytest.mark.parametrize(
    ("name", "category"),
    [
        ("dot.3", "matmul"),
        ("ynn_fusion", "matmul"),
        ("convolution.1", "matmul"),
        ("MatMul.8", "matmul"),  # TensorFlow's XLA names an instruction for its op
        ("multiply_add_fusion", "other_compute"),
        ("convert_element_type", "other_compute"),
        ("copy.2", "copy"),
        ("gather_fusion", "copy"),
    ],
)
def test_xla_instructions_are_classified_by_their_name(name, category):
    event = {"name": name, "args": {"hlo_op": name, "hlo_module": "jit_step"}}
    assert xla_category(event) == category
    assert JaxProfiler(".").category(event) == category


@pytest.mark.parametrize(
    "name", ["PjitFunction(step)", "CommonPjRtBuffer::Await", "end: dot", "harness step 3"]
)
def test_xla_runtime_events_are_no_operation(name):
    # the runtime's own events carry no instruction (``hlo_op``)
    assert xla_category({"name": name, "args": {}}) is None


@pytest.mark.parametrize(
    ("name", "args", "category"),
    [
        ("_MklNativeFusedMatMul", {}, "matmul"),
        ("Conv2DBackpropFilter", {}, "matmul"),
        ("AddV2", {}, "other_compute"),
        ("Iterator::TensorSlice", {}, "copy"),
        ("EagerCopyToDevice", {}, "copy"),
        ("tf.function-graph_building", {}, "compile"),
        ("convert_to_tensor", {}, None),  # Python's, not an op
        ("StatefulPartitionedCall", {}, None),  # the call of the whole step's graph
        ("ExecutorState::Process", {}, None),
        ("MatMul.8", {"hlo_op": "MatMul.8"}, "matmul"),
        ("copy.2", {"hlo_op": "copy.2"}, "copy"),
    ],
)
def test_tensorflow_events_are_classified_by_op_type(name, args, category):
    assert TensorFlowProfiler(".").category({"name": name, "args": args}) == category


@pytest.mark.parametrize(
    ("name", "cat", "category"),
    [
        ("aten::addmm", "cpu_op", "matmul"),
        ("aten::mkldnn_convolution", "cpu_op", "matmul"),
        ("aten::copy_", "cpu_op", "copy"),
        ("aten::relu", "cpu_op", "other_compute"),
        ("Optimizer.step#Adam.step", "user_annotation", "optimizer"),
        ("autograd::engine::evaluate_function: AddmmBackward0", "cpu_op", None),
        ("AddmmBackward0", "cpu_op", None),
        ("harness step 0", "user_annotation", None),
        ("Memcpy HtoD (Pageable -> Device)", "gpu_memcpy", "copy"),
        ("ampere_sgemm_128x64_nn", "kernel", "matmul"),
        ("TorchDynamo Cache Lookup", "cpu_op", None),  # the guard check of a compiled step
        ("Torch-Compiled Region: 0/0", "cpu_op", None),
    ],
)
def test_torch_events_are_classified_by_the_operation(name, cat, category):
    assert TorchProfiler(".").category({"name": name, "cat": cat}) == category
