"""Summaries of repeated measurements: medians with a spread, and step-time percentiles."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Summary:
    """The median of some repeated values and their interquartile range."""

    median: float
    q1: float
    q3: float
    count: int

    @property
    def iqr(self) -> float:
        return self.q3 - self.q1


def summarize(values: Sequence[float]) -> Summary | None:
    """Median and quartiles (linear interpolation); ``None`` when there are no values."""
    clean = [v for v in map(_as_float, values) if v is not None and np.isfinite(v)]
    if not clean:
        return None
    q1, median, q3 = np.percentile(clean, [25, 50, 75])
    return Summary(float(median), float(q1), float(q3), len(clean))


def percentiles(
    values: Sequence[float], points: Sequence[float] = (50, 90, 99)
) -> dict[str, float]:
    """``{"p50": ..., "p90": ..., "p99": ...}`` of the values (nearest-rank on sorted samples)."""
    if not values:
        return {}
    ordered = np.sort(np.asarray(values, dtype=float))
    result = {}
    for point in points:
        # nearest rank: the smallest value with at least point % of the samples at or below it
        rank = max(1, int(np.ceil(point / 100 * len(ordered))))
        result[f"p{point:g}"] = float(ordered[rank - 1])
    return result


def _as_float(value: object) -> float | None:
    """``value`` as a float; ``None`` for nothing, or for a number no float holds."""
    if value is None:
        return None
    try:
        return float(value)  # type: ignore[arg-type]
    except (OverflowError, TypeError, ValueError):
        return None
