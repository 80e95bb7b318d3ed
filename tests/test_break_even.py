"""A compiled mode's break-even against eager, from the rows a run already has: its extra
first-epoch cost over the steady steps it saves."""

import pytest

from harness.analysis.summary import summarise, summary_line
from harness.workload.tasks import Target


def row(mode: str, first: float, steady: float, framework: str = "torch") -> dict:
    return {
        "task": "mnist_mlp", "framework": framework, "mode": mode, "precision": "float32",
        "device": "cpu", "host": "here", "status": "ok", "repeat": 0,
        "metrics": {
            "first_epoch_seconds": first, "steady_epoch_seconds": steady,
            "fit_seconds": first + 2 * steady, "train_samples": 3200, "batch_size": 32,
        },
    }  # fmt: skip


def groups(*rows):
    return {(g.framework, g.mode): g for g in summarise(list(rows))}


def test_the_extra_fixed_cost_over_the_saving_per_step():
    # fixed costs: eager 2.0 - 1.0 = 1.0 s, compiled 10.0 - 0.5 = 9.5 s; steps of 100 an epoch
    # take 10 ms and 5 ms: 8.5 s / 5 ms = 1,700 steps, 54,400 samples
    found = groups(row("eager", 2.0, 1.0), row("compiled", 10.0, 0.5))
    even = found["torch", "compiled"].break_even
    assert even.steps == pytest.approx(1700)
    assert even.samples == pytest.approx(54_400)
    assert even.describe() == "1,700 / 54,400"
    assert found["torch", "eager"].break_even is None  # eager is what it is measured against
    line = summary_line(found["torch", "compiled"], Target(metric="test_accuracy", min=0.9))
    assert line["break_even"] == "1,700 / 54,400"


def test_never_when_compiled_steps_are_no_faster_and_at_once_when_it_costs_nothing_extra():
    slower = groups(row("eager", 2.0, 1.0), row("compiled", 10.0, 1.2))
    assert slower["torch", "compiled"].break_even.describe() == "never"
    free = groups(row("eager", 2.0, 1.0), row("compiled", 1.4, 0.5))
    assert free["torch", "compiled"].break_even.steps == 0


def test_only_against_the_eager_mode_of_the_same_framework():
    found = groups(row("eager", 2.0, 1.0, "jax"), row("compiled", 10.0, 0.5, "torch"))
    assert found["torch", "compiled"].break_even is None


def swept(mode: str, batch: int, first: float, steady: float) -> dict:
    found = row(mode, first, steady)
    found["variant"] = {"training.batch_size": batch}
    found["metrics"]["batch_size"] = batch
    return found


def test_a_sweep_shows_the_break_even_at_each_value():
    from harness.analysis.scaling import analyse, break_even_rows, to_json
    from harness.present.console import scaling_output

    rows = [
        swept("eager", 32, 2.0, 1.0),
        swept("compiled", 32, 10.0, 0.5),  # 8.5 s over 5 ms a step: 1,700 steps of 32
        swept("eager", 64, 1.0, 0.5),
        swept("compiled", 64, 5.0, 0.5),  # no faster at 64: never
    ]
    [analysis] = analyse(rows)
    assert break_even_rows(analysis) == [("torch (compiled)", ["1,700 / 54,400", "never"])]
    [curve] = to_json([analysis])[0]["break_even"]
    assert [point["steps"] for point in curve["points"]] == [pytest.approx(1700), None]
    shown = scaling_output([analysis])
    assert any("compile break-even over batch_size" in str(part) for part in shown)
