"""The comparison statistics on synthetic samples whose answers are known."""

import pytest

from harness.analysis.compare import (
    compare_runs,
    compare_samples,
    environment_differences,
    unmatched,
)
from harness.analysis.runs import Run
from harness.store.results import RunDir


def test_a_clear_slowdown_is_a_regression():
    ratio, worse, p, verdict = compare_samples(
        [10, 10.1, 9.9], [12, 12.1, 11.9], lower_is_better=True, threshold=0.1
    )
    assert ratio == pytest.approx(1.2) and worse == 1.0 and verdict == "regression"
    assert p == pytest.approx(0.1)  # the smallest two-sided exact p for 3 against 3


def test_fully_separated_samples_of_five_have_the_exact_p_value():
    _, _, p, verdict = compare_samples(
        [1, 2, 3, 4, 5], [6, 7, 8, 9, 10], lower_is_better=True, threshold=0.1
    )
    assert p == pytest.approx(2 / 252) and verdict == "regression"


def test_a_clear_speedup_is_an_improvement():
    ratio, worse, _, verdict = compare_samples(
        [10, 10.2, 9.8], [5, 5.1, 4.9], lower_is_better=True, threshold=0.1
    )
    assert ratio == pytest.approx(0.5) and worse == 0.0 and verdict == "improvement"


def test_a_change_below_the_threshold_is_no_change():
    *_, verdict = compare_samples(
        [10, 11, 12], [10.5, 11.5, 12.5], lower_is_better=True, threshold=0.1
    )
    assert verdict == "no change"


def test_a_large_change_the_repeats_disagree_on_is_inconclusive():
    ratio, worse, _, verdict = compare_samples(
        [10, 20, 30], [15, 25, 9], lower_is_better=True, threshold=0.1
    )
    assert (
        ratio == pytest.approx(0.75) and worse == pytest.approx(3 / 9) and verdict == "inconclusive"
    )


def test_for_accuracy_lower_is_worse():
    *_, verdict = compare_samples([0.98, 0.981], [0.80, 0.81], lower_is_better=False, threshold=0.1)
    assert verdict == "regression"
    *_, verdict = compare_samples([0.98], [0.979], lower_is_better=False, threshold=0.1)
    assert verdict == "no change"


def test_single_samples_have_no_p_value():
    _, worse, p, verdict = compare_samples([1.0], [2.0], lower_is_better=True, threshold=0.1)
    assert p is None and worse == 1.0 and verdict == "regression"


def synthetic_run(tmp_path, name, fits, environment, framework="torch"):
    rows = [
        {
            "task": "t",
            "framework": framework,
            "mode": "eager",
            "device": "cpu",
            "status": "ok",
            "metrics": {"fit_seconds": fit, "peak_rss_bytes": 100},
        }
        for fit in fits
    ]
    return Run(RunDir(tmp_path / name), {"task": {"name": "t"}}, environment, rows)


def test_runs_are_matched_cell_by_cell(tmp_path):
    a = synthetic_run(
        tmp_path, "a", [1.0, 1.1, 0.9], {"cpu_model": "X", "framework_versions": {"torch": "2.1"}}
    )
    b = synthetic_run(
        tmp_path, "b", [2.0, 2.1, 1.9], {"cpu_model": "X", "framework_versions": {"torch": "2.2"}}
    )
    [cell] = compare_runs(a, b)
    verdicts = {m.metric: m.verdict for m in cell.metrics}
    assert verdicts == {"fit_seconds": "regression", "peak_rss_bytes": "no change"}
    assert [m.metric for m in cell.regressions] == ["fit_seconds"]
    assert environment_differences(a, b) == {"framework_versions.torch": ("2.1", "2.2")}
    other = synthetic_run(tmp_path, "c", [1.0], {}, framework="jax")
    assert unmatched(a, other) == (["t/torch/eager/cpu"], ["t/jax/eager/cpu"])


def test_the_share_of_worse_pairs_is_counted_without_building_every_pair():
    """compare of a huge results file built every pair of repeats (it reached 23.7 GB); the
    share is now counted over sorted repeats, and agrees with the pairwise definition."""
    import random

    from harness.analysis.compare import _worse_share

    def pairwise(a, b, lower):
        pairs = [(x, y) for x in a for y in b]
        worse = sum(
            1.0 if (y > x if lower else y < x) else 0.5 if y == x else 0.0 for x, y in pairs
        )
        return worse / len(pairs)

    rng = random.Random(7)
    for _ in range(300):
        a = [rng.choice([1.0, 2.0, rng.random()]) for _ in range(rng.randint(1, 6))]
        b = [rng.choice([1.0, 2.0, rng.random()]) for _ in range(rng.randint(1, 6))]
        for lower in (True, False):
            assert _worse_share(a, b, lower_is_better=lower) == pytest.approx(pairwise(a, b, lower))
    many = [float(n) for n in range(200_000)]
    assert _worse_share(many, many, lower_is_better=True) == pytest.approx(0.5)
