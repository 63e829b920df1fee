"""Interleaved timing: alternate candidate and baseline so machine noise hits both alike."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable


def interleaved(
    candidate: Callable[[], object], baseline: Callable[[], object], rounds: int
) -> tuple[float, float]:
    """Median seconds per round of each, measured alternately."""
    cand: list[float] = []
    base: list[float] = []
    for _ in range(rounds):
        t0 = time.perf_counter()
        candidate()
        t1 = time.perf_counter()
        baseline()
        t2 = time.perf_counter()
        cand.append(t1 - t0)
        base.append(t2 - t1)
    return statistics.median(cand), statistics.median(base)
