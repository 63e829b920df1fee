"""Metrics with 95% bootstrap intervals, computed in Garrison (nothing loaded from a hub).

Every reported metric is ``{"value": v, "low": lo, "high": hi}``: the metric on the whole
evaluation set and the 2.5th and 97.5th percentiles of the metric over ``resamples``
resamples of the set drawn with replacement (percentile bootstrap), from a seeded generator so
the same data give the same interval.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

__all__ = ["Interval", "bootstrap", "format_interval", "interval_dict"]

Interval = dict[str, float]
Indices = npt.NDArray[np.int64]


def interval_dict(value: float, low: float, high: float) -> Interval:
    return {
        "value": round(float(value), 6),
        "low": round(float(low), 6),
        "high": round(float(high), 6),
    }


def bootstrap(
    metric: Callable[[Indices], float],
    n: int,
    *,
    resamples: int = 1000,
    seed: int = 0,
    confidence: float = 0.95,
) -> Interval:
    """``metric`` (a function of the evaluation rows' indices) with its bootstrap interval.

    ``metric(np.arange(n))`` is the point value; each resample calls it on ``n`` indices drawn
    with replacement. ``n == 0`` gives NaN everywhere (nothing was measured).
    """
    if n <= 0:
        nan = float("nan")
        return {"value": nan, "low": nan, "high": nan}
    point = metric(np.arange(n, dtype=np.int64))
    rng = np.random.default_rng(seed)
    values = np.array(
        [metric(rng.integers(0, n, size=n, dtype=np.int64)) for _ in range(resamples)],
        dtype=np.float64,
    )
    values = values[~np.isnan(values)]
    if values.size == 0:
        return interval_dict(point, point, point)
    tail = (1.0 - confidence) / 2 * 100
    low, high = np.percentile(values, [tail, 100 - tail])
    return interval_dict(point, min(low, point), max(high, point))


def format_interval(metric: dict[str, Any], digits: int = 3) -> str:
    """``0.912 [0.880, 0.940]`` for a metric dict."""
    return f"{metric['value']:.{digits}f} [{metric['low']:.{digits}f}, {metric['high']:.{digits}f}]"


def mean(values: Sequence[float]) -> float:
    return float(np.mean(values)) if len(values) else float("nan")
