import pytest

from harness.stats import percentiles, summarize


def test_median_and_quartiles_of_known_samples():
    summary = summarize([4.0, 1.0, 3.0, 2.0, 5.0])
    assert (summary.median, summary.q1, summary.q3, summary.count) == (3.0, 2.0, 4.0, 5)
    assert summary.iqr == 2.0


def test_missing_and_non_finite_values_are_left_out():
    summary = summarize([1.0, None, float("nan"), 3.0])
    assert (summary.median, summary.count) == (2.0, 2)
    assert summarize([]) is None and summarize([None]) is None


def test_nearest_rank_percentiles():
    values = list(range(1, 101))  # 1..100
    assert percentiles(values) == {"p50": 50.0, "p90": 90.0, "p99": 99.0}
    assert percentiles([7.0]) == {"p50": 7.0, "p90": 7.0, "p99": 7.0}
    assert percentiles([]) == {}


def test_a_single_slow_step_shows_in_p99_not_p50():
    values = [0.001] * 99 + [0.5]
    result = percentiles(values, points=(50, 99, 100))
    assert result["p50"] == 0.001 and result["p99"] == 0.001 and result["p100"] == 0.5
    assert percentiles([0.001] * 98 + [0.5, 0.5])["p99"] == pytest.approx(0.5)
