"""The report data: what the runs code builds and every renderer reads (see
:mod:`garrison.evaluate.report`)."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from garrison.security.markings import Marking

if TYPE_CHECKING:
    from garrison.evaluate.stats import Comparison, Estimate, Verdict

__all__ = [
    "DOWNGRADE_RULE",
    "REPORT_FORMAT",
    "CompareReport",
    "MetricResult",
    "RunReport",
    "Sample",
    "distribution",
    "estimate_json",
]

#: The format tag of :func:`report_json` and :func:`stats_only` documents.
REPORT_FORMAT = "garrison.eval-report/1"

#: What a statistics-only export says about being shared lower than its marking.
DOWNGRADE_RULE = (
    "This export is marked like the report it summarizes. Sharing it at a lower level is a "
    "downgrade under MARKINGS.md section 6: an explicit, reasoned, audited action by a steward "
    "who dominates this marking. It is never automatic."
)


@dataclass(frozen=True)
class MetricResult:
    """One metric of a run: its estimate (interval and n), the per-item values it was computed
    from (for the distribution figure), and per-slice estimates (``{dimension: {value: est}}``,
    dimensions such as ``marking``, ``source``, ``media_type``, ``language``)."""

    name: str
    estimate: Estimate
    binary: bool
    values: tuple[float, ...] = ()
    slices: Mapping[str, Mapping[str, Estimate]] = field(default_factory=dict)


@dataclass(frozen=True)
class RunReport:
    """What one run measured.

    ``suite`` and ``system`` are plain mappings (the runs code decides their keys; the usual
    ones are ``name``, ``ref``, ``id``, ``version``, ``kind``, ``count``, ``holdout`` for a suite
    and ``kind``, ``ref``, ``version``, ``parameters``, ``subject``, ``ceiling`` for a system).
    ``scorers`` maps each scorer's name to its version; ``counts`` has ``scored``,
    ``not-eligible`` and ``error`` (and may have ``total``); ``power`` holds the power
    statements; ``notes`` anything else a reader must know.
    """

    run_id: str
    title: str
    marking: Marking
    suite: Mapping[str, Any]
    system: Mapping[str, Any]
    scorers: Mapping[str, str]
    garrison_version: str
    created: str
    counts: Mapping[str, int]
    metrics: Sequence[MetricResult]
    power: Sequence[str] = ()
    notes: Sequence[str] = ()


@dataclass(frozen=True)
class CompareReport:
    """Two runs on the same items: ``comparisons`` (B minus A, paired, Holm-adjusted across
    metrics) and the gate's ``verdicts`` (one per comparison, in the same order, when the gate
    was applied per metric). ``marking`` is the join of both runs'."""

    a: RunReport
    b: RunReport
    comparisons: Sequence[Comparison]
    verdicts: Sequence[Verdict]
    marking: Marking


@dataclass(frozen=True)
class Sample:
    """One item of a run as the Inspect export shows it.

    ``input`` and ``target`` are text (a mapping or list is written as JSON); ``output`` is
    the response text (or a response mapping whose ``text`` is used); ``scores`` maps scorer
    names to values; ``metadata`` must carry the sample's own ``marking`` (the item joined with
    its response: a :class:`Marking` or its banner text), dominated by the report's marking.
    """

    id: str
    input: Any
    target: Any
    output: Any
    scores: Mapping[str, float]
    metadata: Mapping[str, Any]


def estimate_json(estimate: Estimate) -> dict[str, Any]:
    """An estimate as JSON: value, interval (low, high), n, method and confidence, and the
    number of clusters and effective n when the interval accounts for clustering."""
    data: dict[str, Any] = {
        "value": _num(estimate.value),
        "low": _num(estimate.low),
        "high": _num(estimate.high),
        "n": int(estimate.n),
        "method": str(estimate.method),
        "confidence": _num(getattr(estimate, "confidence", 0.95)),
    }
    clusters = getattr(estimate, "clusters", None)
    if clusters is not None:
        data["clusters"] = int(clusters)
    effective = getattr(estimate, "effective_n", None)
    if effective is not None:
        data["effective_n"] = _num(effective)
    return data


def _num(value: Any) -> float | None:
    """A float for JSON; NaN and infinities (not JSON) become None."""
    number = float(value)
    return number if math.isfinite(number) else None


def distribution(values: Sequence[float], *, binary: bool, bins: int = 10) -> list[dict[str, Any]]:
    """The score distribution of a metric as bins ``{low, high, count}``.

    Binary outcomes get two bins (0 and 1); other scores ten equal bins over ``[0, 1]`` when
    every value lies there (most scorers), else over ``[min, max]``. The last bin is closed.
    """
    finite = [float(v) for v in values if math.isfinite(float(v))]
    if binary:
        ones = sum(1 for v in finite if v >= 0.5)
        return [
            {"low": 0.0, "high": 0.0, "count": len(finite) - ones},
            {"low": 1.0, "high": 1.0, "count": ones},
        ]
    if not finite:
        return []
    low, high = min(finite), max(finite)
    if low >= 0.0 and high <= 1.0:
        low, high = 0.0, 1.0
    if high == low:
        return [{"low": low, "high": high, "count": len(finite)}]
    width = (high - low) / bins
    counts = [0] * bins
    for v in finite:
        counts[min(int((v - low) / width), bins - 1)] += 1
    return [
        {"low": round(low + i * width, 6), "high": round(low + (i + 1) * width, 6), "count": c}
        for i, c in enumerate(counts)
    ]
