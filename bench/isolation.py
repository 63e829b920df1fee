"""Isolated parsing: reusing forked workers vs. forking a fresh child per task.

Both run the same tasks through :func:`garrison.core.isolation.run_isolated` with the same
limits; only ``reuse`` differs. Two functions: a trivial one (the cost is all fork, pipe and
bookkeeping) and a small CPU one (about a millisecond, like parsing a small text file). Each is
timed with 1 and 2 workers, and every outcome must be ok with the right value (checked).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from typing import Any

from bench._timing import interleaved
from garrison.core.isolation import Limits, run_isolated

LIMITS = Limits(timeout_s=60.0, memory_mb=2048)


def _trivial(task: int) -> int:
    return task


def _small_cpu(task: int) -> int:
    # About a millisecond of hashing: a small file's worth of parsing.
    digest = task.to_bytes(8, "little")
    for _ in range(2000):
        digest = hashlib.sha256(digest).digest()
    return digest[0]


def _runner(fn: Callable[[int], int], n: int, workers: int, reuse: bool) -> Callable[[], None]:
    expected = {task: fn(task) for task in range(n)}

    def go() -> None:
        results = dict(run_isolated(range(n), fn, workers=workers, limits=LIMITS, reuse=reuse))
        assert len(results) == n
        for task, outcome in results.items():
            assert outcome.ok and outcome.value == expected[task], (task, outcome)

    return go


def run(*, quick: bool = False) -> dict[str, Any]:
    n = 200 if quick else 1000
    rounds = 3 if quick else 5
    results: dict[str, Any] = {"tasks per round": n, "rounds": rounds}
    for name, fn in (("trivial", _trivial), ("small CPU", _small_cpu)):
        for workers in (1, 2):
            reused, forked = interleaved(
                _runner(fn, n, workers, reuse=True),
                _runner(fn, n, workers, reuse=False),
                rounds,
            )
            key = f"{name}, {workers} worker{'s' if workers > 1 else ''}"
            results[f"{key}: reuse tasks/s"] = round(n / reused)
            results[f"{key}: fork-per-task tasks/s"] = round(n / forked)
            results[f"{key}: speed-up"] = f"{forked / reused:.1f}x"
    return {
        "title": "Isolated parsing: worker reuse vs. fork per task",
        "what": __doc__.strip().splitlines()[0] if __doc__ else "",
        "results": results,
    }
