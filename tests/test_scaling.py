"""The scaling analysis on synthetic series with known answers: the fixed/marginal fit, log-log
slopes, and crossovers judged as `harness compare` judges a change (noise is a tie)."""

from __future__ import annotations

import math

import pytest
from scipy import stats

from harness.analysis.scaling import (
    SIZE_METRICS,
    WORK_METRICS,
    Point,
    Series,
    analyse,
    crossover,
    linear_fit,
    to_json,
)

THROUGHPUT = SIZE_METRICS[0]  # higher is better
FIT_TIME = WORK_METRICS[0]  # lower is better


def series(label: str, values: dict[float, list[float]], missed: set[float] = frozenset()):
    return Series(label, tuple(Point(x, tuple(v), x in missed) for x, v in values.items()))


def test_a_line_without_noise_is_recovered_exactly():
    xs = [5_000, 15_000, 25_000, 35_000]
    fit = linear_fit(xs, [3.0 + 2e-4 * x for x in xs])
    assert fit.intercept == pytest.approx(3.0) and fit.slope == pytest.approx(2e-4)
    assert fit.r_squared == pytest.approx(1.0)
    assert fit.intercept_ci == pytest.approx(0.0, abs=1e-9)
    assert fit.slope_ci == pytest.approx(0.0, abs=1e-12)


def test_the_intervals_are_the_textbook_ones():
    """Two repeats per value, scattered: the same intervals as scipy's regression gives."""
    xs = [10, 10, 20, 20, 40, 40, 80, 80]
    ys = [2.1, 1.9, 3.2, 2.7, 5.1, 4.8, 9.3, 8.9]
    fit = linear_fit(xs, ys)
    reference = stats.linregress(xs, ys)
    t = stats.t.ppf(0.975, len(xs) - 2)
    assert fit.slope == pytest.approx(reference.slope)
    assert fit.intercept == pytest.approx(reference.intercept)
    assert fit.slope_ci == pytest.approx(t * reference.stderr)
    assert fit.intercept_ci == pytest.approx(t * reference.intercept_stderr)
    assert fit.r_squared == pytest.approx(reference.rvalue**2)
    assert 0 < fit.r_squared < 1


def test_two_points_fit_without_an_interval_and_one_value_not_at_all():
    fit = linear_fit([1, 2], [1.0, 3.0])
    assert (fit.slope, fit.intercept) == pytest.approx((2.0, -1.0))
    assert fit.slope_ci is None and fit.intercept_ci is None
    assert linear_fit([5, 5, 5], [1.0, 2.0, 3.0]) is None


def test_log_log_slopes_of_a_power_law():
    curve = series("a", {x: [10 * x**0.5] for x in (32, 64, 128, 1024)})
    slopes = curve.slopes()
    assert [(a, b) for a, b, _ in slopes] == [(32, 64), (64, 128), (128, 1024)]
    assert [slope for _, _, slope in slopes] == pytest.approx([0.5, 0.5, 0.5])


def test_a_real_crossing_is_found_between_the_values_where_the_order_changes():
    """a's throughput is flat; b's grows past it: b overtakes between 128 and 256."""
    a = series("torch (eager)", {x: [1000, 1010] for x in (32, 64, 128, 256, 512)})
    b = series(
        "jax (eager)",
        {32: [300, 310], 64: [500, 505], 128: [800, 790], 256: [2000, 2020], 512: [4000, 3900]},
    )
    found = crossover(a, b, THROUGHPUT, "training.batch_size")
    assert found.crosses and found.changes
    assert found.crossings() == [(128, 256)]
    assert [(s.order, s.first, s.last) for s in found.segments] == [(1, 32, 128), (-1, 256, 512)]
    assert found.sentence == (
        "torch (eager) is faster than jax (eager) up to batch_size 128; "
        "jax (eager) is faster than torch (eager) from batch_size 256 up"
    )


def test_a_crossing_inside_the_noise_is_a_tie_not_a_crossing():
    """b's median ends up 4 % above a's: under the 10 % threshold, so tied, not overtaken."""
    a = series("a", {1: [100.0, 101.0], 2: [100.0, 99.0], 3: [100.0, 102.0]})
    b = series("b", {1: [50.0, 51.0], 2: [104.0, 105.0], 3: [104.0, 103.0]})
    found = crossover(a, b, THROUGHPUT, "model.layers[1].units")
    assert not found.crosses and found.changes
    assert found.crossings() == []
    assert [s.order for s in found.segments] == [1, 0]
    assert (
        found.sentence == "a is faster than b at layers[1].units 1; tied from layers[1].units 2 up"
    )


def test_a_large_difference_the_repeats_disagree_on_is_a_tie():
    """b's median is 50 % better at x=2, but a's repeats straddle it: inconclusive, a tie."""
    a = series("a", {1: [100, 101, 102], 2: [100, 100, 300]})
    b = series("b", {1: [50, 51, 52], 2: [150, 150, 150]})
    found = crossover(a, b, THROUGHPUT, "training.batch_size")
    assert [s.order for s in found.segments] == [1, 0] and not found.crosses


def test_lower_is_better_metrics_order_the_other_way():
    a = series("a", {1: [1.0], 2: [1.0]})
    b = series("b", {1: [2.0], 2: [0.5]})
    found = crossover(a, b, FIT_TIME, "dataset.train_samples")
    assert [s.order for s in found.segments] == [1, -1]
    assert found.sentence == (
        "a is faster than b at train_samples 1; b is faster than a at train_samples 2"
    )


def test_one_order_everywhere_is_one_sentence():
    a = series("a", {1: [10.0], 2: [20.0]})
    b = series("b", {1: [1.0], 2: [2.0]})
    found = crossover(a, b, THROUGHPUT, "training.batch_size")
    assert not found.changes
    assert found.sentence == "a is faster than b at every batch_size"


def row(framework, mode, variant, **metrics):
    return {
        "framework": framework,
        "mode": mode,
        "device": "cpu",
        "status": "ok",
        "met_target": metrics.pop("met", True),
        "variant": variant,
        "metrics": metrics,
    }


def test_a_work_sweep_gives_each_series_its_fixed_and_marginal_cost():
    """fit = 4 s + 50 µs/sample for one framework, 0.5 s + 200 µs/sample for the other, two
    repeats each with ±0.1 s of noise: the fits find them, and the pair crosses."""
    rows = []
    for samples in (5_000, 15_000, 25_000, 35_000, 45_000, 55_000):
        for noise in (-0.1, 0.1):
            variant = {"dataset.train_samples": samples}
            common = {"train_samples": samples, "epochs": 1}
            rows.append(
                row("jax", "compiled", variant, fit_seconds=4 + 50e-6 * samples + noise, **common)
            )
            rows.append(
                row("torch", "eager", variant, fit_seconds=0.5 + 200e-6 * samples + noise, **common)
            )
    [analysis] = analyse(rows)
    assert analysis.work and analysis.key == "dataset.train_samples"
    fits = {(cost.series, cost.part): cost.fit for cost in analysis.fits}
    jax, torch = fits["jax (compiled)", "fit"], fits["torch (eager)", "fit"]
    assert jax.intercept == pytest.approx(4, abs=0.1) and jax.slope == pytest.approx(
        50e-6, rel=0.05
    )
    assert torch.intercept == pytest.approx(0.5, abs=0.1)
    assert torch.slope == pytest.approx(200e-6, rel=0.05)
    assert jax.intercept - jax.intercept_ci < 4 < jax.intercept + jax.intercept_ci
    assert jax.points == 12 and 0.98 < jax.r_squared < 1
    [pair] = analysis.crossovers
    # equal at 3.5 / 150e-6 = 23,333 samples: at 25,000 they are 5 % apart, a tie
    assert pair.crossings() == [(15_000, 35_000)]
    assert pair.sentence == (
        "torch (eager) is faster than jax (compiled) up to train_samples 15,000; "
        "tied at train_samples 25,000; "
        "jax (compiled) is faster than torch (eager) from train_samples 35,000 up"
    )


def test_a_batch_sweep_follows_each_metric_and_marks_the_points_below_target():
    rows = []
    for batch in (32, 64, 128):
        variant = {"training.batch_size": batch, "training.epochs": 2}
        rows.append(
            row(
                "torch",
                "eager",
                variant,
                met=batch != 128,
                steady_samples_per_second=100.0 * batch,
                steady_epoch_seconds=0.01 * 8192 / batch,
                train_samples=8192,
                achieved_flops_per_second=1e9 * batch,
                peak_rss_bytes=2**30,
            )
        )
    analyses = analyse(rows)
    assert [a.key for a in analyses] == ["training.batch_size"]  # epochs has one value only
    [analysis] = analyses
    assert [c.spec.name for c in analysis.curves] == [
        "steady_samples_per_second",
        "step_seconds_mean",
        "achieved_flops_per_second",
        "peak_rss_bytes",
    ]
    [curve] = analysis.curves[0].series
    assert curve.label == "torch (eager) epochs=2"
    assert [p.missed_target for p in curve.points] == [False, False, True]
    assert [slope for _, _, slope in curve.slopes()] == pytest.approx([1.0, 1.0])
    # 8,192 samples a steady epoch of 0.01 s a step: the mean step time is flat
    step_times = analysis.curves[1].series[0].points
    assert [p.median for p in step_times] == pytest.approx([0.01, 0.01, 0.01])
    data = to_json(analyses)
    assert data[0]["metrics"][0]["series"][0]["loglog_slopes"][0]["slope"] == pytest.approx(1.0)
    assert math.isclose(data[0]["values"][-1], 128)


def test_a_one_epoch_sweep_follows_the_whole_fit_throughput():
    rows = [
        row("torch", "eager", {"training.batch_size": b}, samples_per_second=10.0 * b)
        for b in (32, 64)
    ]
    [analysis] = analyse(rows)
    assert analysis.headline.spec.name == "samples_per_second"


def test_rows_outside_a_sweep_or_unfinished_give_no_analysis():
    rows = [row("torch", "eager", None, fit_seconds=1.0)]
    failed = row("torch", "eager", {"training.batch_size": 64}, fit_seconds=1.0)
    failed["status"] = "failed"
    assert analyse([*rows, failed, row("torch", "eager", {"training.batch_size": 32})]) == []
