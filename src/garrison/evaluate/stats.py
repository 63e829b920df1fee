"""Statistics for decisions: every number with its interval, paired comparisons, and the gate.

Pure functions on plain sequences (no catalog access), seeded so the same inputs give the same
figures. The methods, with their formulas, are in ``docs/evaluation.md``:

- :func:`wilson` -- the two-sided interval of a rate (never of zero width, even at 0/N or N/N);
- :func:`clopper_pearson_upper` -- the exact one-sided upper bound of a rare failure rate (leaks);
- :func:`bootstrap_mean` -- the percentile bootstrap of a mean, resampling source documents
  (clusters) rather than items when they are given;
- :func:`clustered_se` -- the cluster-robust (CR1) standard error of a mean;
- :func:`estimate` -- the default interval of a metric (Wilson with a design-effect-adjusted n
  for rates, the bootstrap for other means);
- :func:`paired_compare` -- two systems on the same items: the paired bootstrap of the mean
  difference, with McNemar's exact test for binary outcomes on independent items;
- :func:`holm` / :func:`adjust` -- Holm--Bonferroni across the metrics of one comparison;
- :func:`detectable_difference`, :func:`zero_failure_bound`, :func:`power_statement` -- what a
  suite of ``n`` items can tell;
- :func:`slices` -- the same intervals per slice (marking, source, media type, language);
- :func:`gate` / :func:`upper_bound_gate` -- pass/fail verdicts a deployment pipeline acts on.

Inputs are validated and the functions fail closed: an empty sample, a NaN, a non-binary value
where a rate is expected, or sequences of different lengths raise
:class:`~garrison.core.errors.InvalidInput` rather than produce a number.
"""

from __future__ import annotations

import math
from collections.abc import Hashable, Mapping, Sequence
from dataclasses import dataclass, replace
from statistics import NormalDist
from typing import Any, Literal

import numpy as np
import numpy.typing as npt

from garrison.core.errors import InvalidInput

__all__ = [
    "ALPHA",
    "Comparison",
    "Estimate",
    "Verdict",
    "adjust",
    "bootstrap_mean",
    "clopper_pearson_upper",
    "clustered_se",
    "design_effect",
    "detectable_difference",
    "estimate",
    "gate",
    "holm",
    "mcnemar_exact",
    "paired_compare",
    "power_statement",
    "slices",
    "upper_bound_gate",
    "wilson",
    "zero_failure_bound",
]

#: The significance level of the superiority gate (two-sided).
ALPHA = 0.05
#: Bootstrap resamples are drawn in blocks of at most this many values (bounded memory).
_BLOCK = 1_000_000

Floats = npt.NDArray[np.float64]


@dataclass(frozen=True)
class Estimate:
    """A figure with its interval: ``value`` in ``[low, high]`` at ``confidence``, from ``n``
    items, by ``method``. ``clusters`` (the number of source documents) and ``effective_n``
    (``n`` divided by the design effect) are set when the interval accounts for clustering."""

    value: float
    low: float
    high: float
    n: int
    method: str
    confidence: float = 0.95
    clusters: int | None = None
    effective_n: float | None = None

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "value": self.value,
            "low": self.low,
            "high": self.high,
            "n": self.n,
            "method": self.method,
            "confidence": self.confidence,
        }
        if self.clusters is not None:
            out["clusters"] = self.clusters
        if self.effective_n is not None:
            out["effective_n"] = self.effective_n
        return out

    def __str__(self) -> str:
        return f"{self.value:.3f} [{self.low:.3f}, {self.high:.3f}] (n={self.n})"


# -- validation --------------------------------------------------------------------------------


def _confidence(confidence: float) -> float:
    if not (isinstance(confidence, int | float) and 0.0 < float(confidence) < 1.0):
        raise InvalidInput(
            f"A confidence level must lie strictly between 0 and 1, not {confidence}."
        )
    return float(confidence)


def _count(value: int, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < 0:
        raise InvalidInput(f"The {what} must be a whole number of at least 0, not {value!r}.")
    return int(value)


def _values(values: Sequence[float] | npt.ArrayLike, *, binary: bool = False) -> Floats:
    try:
        array = np.asarray(values, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise InvalidInput("Metric values must be numbers.") from exc
    if array.ndim != 1:
        raise InvalidInput("Metric values must be a flat sequence of numbers.")
    if array.size == 0:
        raise InvalidInput("There are no values to estimate from (n = 0).")
    if not np.all(np.isfinite(array)):
        raise InvalidInput("Metric values must be finite numbers (a NaN or infinity was given).")
    if binary and not np.all((array == 0.0) | (array == 1.0)):
        raise InvalidInput("A binary metric takes only the values 0 and 1 (or False and True).")
    return array


def _cluster_index(clusters: Sequence[Hashable], n: int) -> tuple[npt.NDArray[np.int64], int]:
    """Each item's cluster as an index ``0..G-1`` (in order of first appearance), and ``G``."""
    if len(clusters) != n:
        raise InvalidInput(f"There are {len(clusters)} cluster ids for {n} values; give one each.")
    seen: dict[Hashable, int] = {}
    index = np.fromiter((seen.setdefault(c, len(seen)) for c in clusters), np.int64, count=n)
    return index, len(seen)


def _z(confidence: float) -> float:
    return NormalDist().inv_cdf(1.0 - (1.0 - confidence) / 2.0)


# -- rates -------------------------------------------------------------------------------------


def _wilson_bounds(successes: float, n: float, z: float) -> tuple[float, float]:
    p = successes / n
    denominator = 1.0 + z * z / n
    centre = (p + z * z / (2.0 * n)) / denominator
    half = z * math.sqrt(p * (1.0 - p) / n + z * z / (4.0 * n * n)) / denominator
    # Exact at the edges (0/N starts at 0, N/N ends at 1) and never excluding p by rounding.
    low = 0.0 if successes <= 0 else min(p, max(0.0, centre - half))
    high = 1.0 if successes >= n else max(p, min(1.0, centre + half))
    return low, high


def wilson(successes: int, n: int, confidence: float = 0.95) -> Estimate:
    """The Wilson score interval of the rate ``successes / n``.

    With ``z`` the two-sided normal quantile and ``p = successes / n``: centre
    ``(p + z²/2n) / (1 + z²/n)``, half-width ``z·sqrt(p(1-p)/n + z²/4n²) / (1 + z²/n)``. Unlike
    the normal (Wald) interval it keeps a positive width at 0/N and N/N.
    """
    confidence = _confidence(confidence)
    successes, n = _count(successes, "number of successes"), _count(n, "number of items")
    if n == 0:
        raise InvalidInput("A rate needs at least one item (n = 0).")
    if successes > n:
        raise InvalidInput(f"There cannot be {successes} successes in {n} items.")
    low, high = _wilson_bounds(successes, n, _z(confidence))
    return Estimate(successes / n, low, high, n, "wilson", confidence)


def _log_binomial_cdf(log_comb: Floats, k: int, n: int, p: float) -> float:
    """log P(X <= k) for X ~ Binomial(n, p), from the precomputed log C(n, 0..k)."""
    i = np.arange(k + 1, dtype=np.float64)
    terms = log_comb + i * math.log(p) + (n - i) * math.log1p(-p)
    top = float(terms.max())
    return top + math.log(float(np.exp(terms - top).sum()))


def clopper_pearson_upper(failures: int, n: int, confidence: float = 0.95) -> Estimate:
    """The exact (Clopper--Pearson) one-sided upper bound of the rate ``failures / n``.

    The bound is the rate ``u`` at which seeing ``failures`` or fewer has probability
    ``1 - confidence``: ``P(Binomial(n, u) <= failures) = 1 - confidence`` (the ``confidence``
    quantile of Beta(failures + 1, n - failures)); 1 when every item failed. With no failure it
    is ``1 - (1 - confidence)^(1/n)`` (the "rule of three": about 3/n at 95%). ``low`` is 0.
    """
    confidence = _confidence(confidence)
    failures, n = _count(failures, "number of failures"), _count(n, "number of items")
    if n == 0:
        raise InvalidInput("A rate needs at least one item (n = 0).")
    if failures > n:
        raise InvalidInput(f"There cannot be {failures} failures in {n} items.")
    rate = failures / n
    if failures == n:
        high = 1.0
    elif failures == 0:
        high = zero_failure_bound(n, confidence)
    else:
        log_comb = np.array(
            [
                math.lgamma(n + 1) - math.lgamma(i + 1) - math.lgamma(n - i + 1)
                for i in range(failures + 1)
            ]
        )
        target = math.log1p(-confidence)
        lo, hi = rate, 1.0  # P(X <= failures) falls from above 1/2 at the rate towards 0 at 1
        for _ in range(200):
            mid = (lo + hi) / 2.0
            if _log_binomial_cdf(log_comb, failures, n, mid) > target:
                lo = mid
            else:
                hi = mid
            if hi - lo < 1e-15:
                break
        high = (lo + hi) / 2.0
    return Estimate(rate, 0.0, high, n, "clopper-pearson-upper", confidence)


def zero_failure_bound(n: int, confidence: float = 0.95) -> float:
    """The exact upper bound of a failure rate after 0 failures in ``n``:
    ``1 - (1 - confidence)^(1/n)``."""
    confidence = _confidence(confidence)
    n = _count(n, "number of items")
    if n == 0:
        raise InvalidInput("A bound needs at least one item (n = 0).")
    return -math.expm1(math.log1p(-confidence) / n)


# -- means, clusters ---------------------------------------------------------------------------


def _percentile_interval(draws: Floats, point: float, confidence: float) -> tuple[float, float]:
    tail = (1.0 - confidence) / 2.0 * 100.0
    low, high = np.percentile(draws, [tail, 100.0 - tail])
    return min(float(low), point), max(float(high), point)


def _resampled_means(
    columns: Sequence[Floats],
    index: npt.NDArray[np.int64] | None,
    groups: int,
    resamples: int,
    seed: int,
) -> list[Floats]:
    """For each column, its mean over ``resamples`` bootstrap resamples, the same resamples for
    every column (so paired columns stay paired). With ``index`` (each item's cluster), whole
    clusters are drawn: the resampled mean is the drawn clusters' total over their size."""
    resamples = _count(resamples, "number of resamples")
    if resamples < 100:
        raise InvalidInput("A bootstrap needs at least 100 resamples.")
    rng = np.random.default_rng(seed)
    if index is None:
        units: list[Floats] = list(columns)
        sizes = np.ones(columns[0].size)
    else:
        units = [
            np.bincount(index, weights=column, minlength=groups).astype(np.float64)
            for column in columns
        ]
        sizes = np.bincount(index, minlength=groups).astype(np.float64)
    count = sizes.size
    block = max(1, _BLOCK // count)
    out: list[list[Floats]] = [[] for _ in columns]
    done = 0
    while done < resamples:
        size = min(block, resamples - done)
        draw = rng.integers(0, count, size=(size, count))
        denominator = sizes[draw].sum(axis=1)
        for column, totals in enumerate(units):
            out[column].append(totals[draw].sum(axis=1) / denominator)
        done += size
    return [np.concatenate(parts) for parts in out]


def bootstrap_mean(
    values: Sequence[float] | npt.ArrayLike,
    *,
    clusters: Sequence[Hashable] | None = None,
    resamples: int = 2000,
    seed: int = 0,
    confidence: float = 0.95,
) -> Estimate:
    """The mean of ``values`` with its percentile bootstrap interval.

    Each of ``resamples`` resamples draws ``n`` items with replacement (or, with ``clusters`` --
    one source-document id per item -- ``G`` whole documents with replacement, the mean being
    the drawn items' total over their number); the interval is the ``(1-c)/2`` and ``(1+c)/2``
    percentiles of the resampled means, widened to contain the point value. Seeded: the same
    inputs give the same interval.
    """
    confidence = _confidence(confidence)
    array = _values(values)
    point = float(array.mean())
    index, groups = (None, array.size) if clusters is None else _cluster_index(clusters, array.size)
    (draws,) = _resampled_means([array], index, groups, resamples, seed)
    low, high = _percentile_interval(draws, point, confidence)
    if clusters is None:
        return Estimate(point, low, high, int(array.size), "bootstrap", confidence)
    return Estimate(
        point, low, high, int(array.size), "cluster-bootstrap", confidence, clusters=groups
    )


def clustered_se(values: Sequence[float] | npt.ArrayLike, clusters: Sequence[Hashable]) -> float:
    """The cluster-robust standard error of the mean of ``values`` (CR1).

    With residuals ``e_i = y_i - ȳ`` summed per cluster ``E_g``, ``G`` clusters and ``n``
    items: ``SE = sqrt(G/(G-1) · Σ_g E_g²) / n`` -- the sandwich estimator of an OLS fit on a
    constant with the small-sample factor ``G/(G-1) · (n-1)/(n-k)``, ``k = 1``. Needs two or
    more clusters.
    """
    array = _values(values)
    index, groups = _cluster_index(clusters, array.size)
    if groups < 2:
        raise InvalidInput("A clustered standard error needs at least two clusters.")
    residual_sums = np.bincount(index, weights=array - array.mean(), minlength=groups)
    return math.sqrt(groups / (groups - 1) * float((residual_sums**2).sum())) / array.size


def design_effect(values: Sequence[float] | npt.ArrayLike, clusters: Sequence[Hashable]) -> float:
    """How much clustering inflates the variance of the mean: the CR1 variance over the
    variance of independent items (``s²/n``, ``s²`` with divisor ``n``), at least 1. It is 1
    where it cannot be estimated (one cluster, or values that do not vary)."""
    array = _values(values)
    _, groups = _cluster_index(clusters, array.size)
    naive = float(array.var()) / array.size
    if groups < 2 or naive <= 0.0:
        return 1.0
    return max(1.0, clustered_se(array, clusters) ** 2 / naive)


def estimate(
    values: Sequence[float] | npt.ArrayLike,
    *,
    binary: bool,
    clusters: Sequence[Hashable] | None = None,
    seed: int = 0,
    confidence: float = 0.95,
    resamples: int = 2000,
) -> Estimate:
    """The default interval of a metric over items.

    - binary, no clusters (or every item its own cluster): :func:`wilson`;
    - binary, with clusters: the Wilson interval at the effective sample size ``n / deff``
      (:func:`design_effect`, the CR1 variance over the independent-items variance, at least
      1), so it keeps a positive width at 0/N and N/N where a cluster bootstrap would
      collapse to a point; where clustering cannot be estimated (one document, or every
      outcome the same) ``deff`` is 1;
    - other means: :func:`bootstrap_mean` (the cluster bootstrap with clusters).
    """
    confidence = _confidence(confidence)
    array = _values(values, binary=binary)
    n = int(array.size)
    if not binary:
        return bootstrap_mean(
            array, clusters=clusters, resamples=resamples, seed=seed, confidence=confidence
        )
    successes = int(array.sum())
    if clusters is None:
        return wilson(successes, n, confidence)
    _, groups = _cluster_index(clusters, n)
    if groups == n:  # every item its own document: independent items
        return wilson(successes, n, confidence)
    deff = design_effect(array, clusters)
    effective = n / deff
    low, high = _wilson_bounds(successes / n * effective, effective, _z(confidence))
    return Estimate(
        successes / n,
        low,
        high,
        n,
        "wilson-cluster",
        confidence,
        clusters=groups,
        effective_n=round(effective, 6),
    )


def slices(
    values: Sequence[float] | npt.ArrayLike,
    keys: Sequence[str],
    *,
    binary: bool,
    clusters: Sequence[Hashable] | None = None,
    seed: int = 0,
    confidence: float = 0.95,
    resamples: int = 2000,
) -> dict[str, Estimate]:
    """:func:`estimate` per slice: ``keys[i]`` is item ``i``'s slice value (its marking, source,
    media type or language); the result is ordered by slice value."""
    array = _values(values, binary=binary)
    if len(keys) != array.size:
        raise InvalidInput(
            f"There are {len(keys)} slice keys for {array.size} values; give one each."
        )
    if clusters is not None and len(clusters) != array.size:
        raise InvalidInput(
            f"There are {len(clusters)} cluster ids for {array.size} values; give one each."
        )
    out: dict[str, Estimate] = {}
    for key in sorted(set(keys)):
        rows = [i for i, k in enumerate(keys) if k == key]
        out[key] = estimate(
            array[rows],
            binary=binary,
            clusters=None if clusters is None else [clusters[i] for i in rows],
            seed=seed,
            confidence=confidence,
            resamples=resamples,
        )
    return out


# -- comparisons -------------------------------------------------------------------------------


def mcnemar_exact(a_only: int, b_only: int) -> float:
    """McNemar's exact test: the two-sided binomial p-value of the discordant pairs.

    Under the null, each of the ``a_only + b_only`` discordant pairs is as likely to favour
    either system: ``p = min(1, 2 · P(Binomial(a_only + b_only, 1/2) <= min(a_only, b_only)))``,
    computed in exact integer arithmetic. No discordant pair gives 1.
    """
    a_only, b_only = (
        _count(a_only, "count of pairs only A got right"),
        _count(b_only, "count of pairs only B got right"),
    )
    n = a_only + b_only
    if n == 0:
        return 1.0
    tail = sum(math.comb(n, i) for i in range(min(a_only, b_only) + 1))
    return min(1.0, float(2 * tail / 2**n))


@dataclass(frozen=True)
class Comparison:
    """Two systems on the same ``n`` items: their estimates, the paired difference ``b - a``
    with its interval, the test that gave ``p_value``, and the Holm-adjusted p once
    :func:`adjust` ran across the metrics of the comparison."""

    metric: str
    a: Estimate
    b: Estimate
    difference: Estimate
    test: str
    p_value: float
    p_adjusted: float | None
    n: int
    higher_is_better: bool

    def to_json(self) -> dict[str, Any]:
        return {
            "metric": self.metric,
            "a": self.a.to_json(),
            "b": self.b.to_json(),
            "difference": self.difference.to_json(),
            "test": self.test,
            "p_value": self.p_value,
            "p_adjusted": self.p_adjusted,
            "n": self.n,
            "higher_is_better": self.higher_is_better,
        }


def paired_compare(
    metric: str,
    a_values: Sequence[float] | npt.ArrayLike,
    b_values: Sequence[float] | npt.ArrayLike,
    *,
    binary: bool,
    clusters: Sequence[Hashable] | None = None,
    resamples: int = 2000,
    seed: int = 0,
    higher_is_better: bool = True,
    confidence: float = 0.95,
) -> Comparison:
    """Systems A and B scored on the same items, in the same order.

    The difference is ``mean(b) - mean(a)`` with the paired bootstrap interval: each resample
    draws items (or, with ``clusters``, whole source documents) and takes the mean of
    ``b_i - a_i`` over them, so the pairing is kept. The test:

    - ``mcnemar-exact`` for binary outcomes on independent items (no clusters, or every item its
      own cluster): :func:`mcnemar_exact` on the discordant pairs;
    - ``paired-bootstrap`` otherwise (other means, and binary outcomes where items share a
      source document, which McNemar's test would treat as independent): the two-sided
      bootstrap p ``min(1, 2 · min((1 + #{d* <= 0}) / (B + 1), (1 + #{d* >= 0}) / (B + 1)))``
      over the ``B`` resampled mean differences ``d*``; it is below 0.05 about when the 95%
      interval excludes 0.
    """
    confidence = _confidence(confidence)
    a = _values(a_values, binary=binary)
    b = _values(b_values, binary=binary)
    if a.size != b.size:
        raise InvalidInput(
            f"A paired comparison needs the same items for both systems ({a.size} and {b.size} "
            "values were given)."
        )
    n = int(a.size)
    index, groups = (None, n) if clusters is None else _cluster_index(clusters, n)
    diff = b - a
    point = float(diff.mean())
    (draws,) = _resampled_means([diff], index, groups, resamples, seed)
    low, high = _percentile_interval(draws, point, confidence)
    clustered = groups < n
    method = "paired-cluster-bootstrap" if clusters is not None else "paired-bootstrap"
    difference = Estimate(
        point,
        low,
        high,
        n,
        method,
        confidence,
        clusters=groups if clusters is not None else None,
    )
    if binary and not clustered:
        test = "mcnemar-exact"
        p_value = mcnemar_exact(int(((a == 1) & (b == 0)).sum()), int(((a == 0) & (b == 1)).sum()))
    else:
        test = "paired-bootstrap"
        count = draws.size
        below = (1 + int((draws <= 0.0).sum())) / (count + 1)
        above = (1 + int((draws >= 0.0).sum())) / (count + 1)
        p_value = min(1.0, 2.0 * min(below, above))
    return Comparison(
        metric=metric,
        a=estimate(
            a,
            binary=binary,
            clusters=clusters,
            seed=seed,
            confidence=confidence,
            resamples=resamples,
        ),
        b=estimate(
            b,
            binary=binary,
            clusters=clusters,
            seed=seed,
            confidence=confidence,
            resamples=resamples,
        ),
        difference=difference,
        test=test,
        p_value=p_value,
        p_adjusted=None,
        n=n,
        higher_is_better=higher_is_better,
    )


def holm(p_values: Mapping[str, float]) -> dict[str, float]:
    """Holm--Bonferroni adjusted p-values: sorted ascending, the i-th of m (from 1) becomes
    ``max over j <= i of min(1, (m - j + 1) · p_(j))`` -- monotone, at most 1."""
    for name, p in p_values.items():
        if not (isinstance(p, int | float) and 0.0 <= float(p) <= 1.0):
            raise InvalidInput(f"The p-value of {name!r} must lie between 0 and 1, not {p!r}.")
    ordered = sorted(p_values.items(), key=lambda item: float(item[1]))
    m = len(ordered)
    out: dict[str, float] = {}
    running = 0.0
    for rank, (name, p) in enumerate(ordered):
        running = max(running, min(1.0, (m - rank) * float(p)))
        out[name] = running
    return {name: out[name] for name in p_values}


def adjust(comparisons: Sequence[Comparison]) -> list[Comparison]:
    """The comparisons of one A-vs-B decision with ``p_adjusted`` set by :func:`holm` across
    them (same order)."""
    adjusted = holm({str(i): c.p_value for i, c in enumerate(comparisons)})
    return [replace(c, p_adjusted=adjusted[str(i)]) for i, c in enumerate(comparisons)]


# -- power -------------------------------------------------------------------------------------


def detectable_difference(
    n: int,
    *,
    baseline: float = 0.5,
    alpha: float = ALPHA,
    power: float = 0.8,
    paired: bool = True,
    discordance: float | None = None,
) -> float:
    """The smallest difference of two rates a suite of ``n`` items detects with probability
    ``power`` by a two-sided test at level ``alpha`` (normal approximation).

    With ``z = z(1 - alpha/2) + z(power)`` and ``p`` the baseline rate:

    - paired (both systems on the same items): ``δ = z · sqrt(ψ / n)``, ``ψ`` the share of items
      on which the two systems disagree (``discordance``); unknown, it is taken as
      ``2p(1-p)``, what two independent systems would give -- conservative, since systems
      tested on the same items usually agree more;
    - unpaired (two independent samples of ``n``): ``δ = z · sqrt(2p(1-p) / n)``.
    """
    n = _count(n, "number of items")
    if n == 0:
        raise InvalidInput("A power statement needs at least one item (n = 0).")
    for name, value in (("baseline", baseline), ("alpha", alpha), ("power", power)):
        if not 0.0 < value < 1.0:
            raise InvalidInput(f"The {name} must lie strictly between 0 and 1, not {value}.")
    z = NormalDist().inv_cdf(1.0 - alpha / 2.0) + NormalDist().inv_cdf(power)
    independent = 2.0 * baseline * (1.0 - baseline)
    if not paired:
        return z * math.sqrt(independent / n)
    if discordance is None:
        discordance = independent
    if not 0.0 < discordance <= 1.0:
        raise InvalidInput(f"The discordance must lie in (0, 1], not {discordance}.")
    return z * math.sqrt(discordance / n)


def _percent(rate: float) -> str:
    return f"{rate * 100:.1f}%"


def power_statement(
    n: int,
    failures: int | None = None,
    *,
    confidence: float = 0.95,
    baseline: float = 0.5,
    alpha: float = ALPHA,
    power: float = 0.8,
    discordance: float | None = None,
) -> str:
    """What a suite of ``n`` items can tell, in one sentence.

    With ``failures`` (a rare-failure count such as leaks), the exact upper bound:
    ``"0 failures in 300 -> rate below 1.0% at 95%"``; otherwise the detectable difference:
    ``"this suite detects a difference of 11.4 points at 80% power"``.
    """
    if failures is not None:
        bound = clopper_pearson_upper(failures, n, confidence).high
        noun = "failure" if failures == 1 else "failures"
        return f"{failures} {noun} in {n} -> rate below {_percent(bound)} at {confidence:.0%}"
    delta = detectable_difference(
        n, baseline=baseline, alpha=alpha, power=power, discordance=discordance
    )
    return f"this suite detects a difference of {delta * 100:.1f} points at {power:.0%} power"


# -- the gate ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Verdict:
    """A gate's decision: ``passed``, the ``rule`` applied, and the ``reason`` in one sentence."""

    passed: bool
    rule: str
    reason: str

    def to_json(self) -> dict[str, Any]:
        return {"passed": self.passed, "rule": self.rule, "reason": self.reason}


def _oriented_low(comparison: Comparison) -> float:
    """The lower end of the improvement of B over A (the difference, negated when lower is
    better)."""
    d = comparison.difference
    return d.low if comparison.higher_is_better else -d.high


def gate(
    comparison: Comparison,
    *,
    mode: Literal["non-inferiority", "superiority"],
    margin: float = 0.0,
) -> Verdict:
    """The deployment decision on one comparison of B (the candidate) against A.

    With ``L`` the lower end of the interval of B's improvement over A (``b - a``, or
    ``a - b`` where lower is better):

    - ``non-inferiority``: passes when ``L > -margin`` (B is at most ``margin`` worse);
    - ``superiority``: passes when ``L > 0`` and the p-value (Holm-adjusted when set) is below
      0.05.
    """
    if not (isinstance(margin, int | float) and math.isfinite(margin) and margin >= 0.0):
        raise InvalidInput(f"A gate margin must be a number of at least 0, not {margin!r}.")
    low = _oriented_low(comparison)
    what = f"the lower end of B's improvement on {comparison.metric}"
    if mode == "non-inferiority":
        rule = f"non-inferiority (margin {margin:g})"
        if low > -margin:
            return Verdict(True, rule, f"Passed: {what}, {low:+.4f}, is above {-margin:+.4f}.")
        return Verdict(False, rule, f"Failed: {what}, {low:+.4f}, is not above {-margin:+.4f}.")
    if mode == "superiority":
        rule = f"superiority (alpha {ALPHA:g})"
        adjusted = comparison.p_adjusted is not None
        p = comparison.p_adjusted if comparison.p_adjusted is not None else comparison.p_value
        label = "adjusted p" if adjusted else "p"
        if low <= 0.0:
            return Verdict(False, rule, f"Failed: {what}, {low:+.4f}, is not above 0.")
        if p >= ALPHA:
            return Verdict(False, rule, f"Failed: the {label}, {p:.4g}, is not below {ALPHA:g}.")
        return Verdict(
            True, rule, f"Passed: {what}, {low:+.4f}, is above 0 and the {label} is {p:.4g}."
        )
    raise InvalidInput(f"A gate mode is 'non-inferiority' or 'superiority', not {mode!r}.")


def upper_bound_gate(estimate: Estimate, limit: float) -> Verdict:
    """Passes when the upper bound of a failure rate (``estimate.high``, such as
    :func:`clopper_pearson_upper` of leaks) is below ``limit``."""
    if not (isinstance(limit, int | float) and 0.0 < limit <= 1.0):
        raise InvalidInput(f"A rate limit must lie in (0, 1], not {limit!r}.")
    rule = f"upper bound below {limit:g}"
    bound = f"the {estimate.confidence:.0%} upper bound of the rate, {estimate.high:.4g}"
    if estimate.high < limit:
        return Verdict(True, rule, f"Passed: {bound}, is below {limit:g} (n={estimate.n}).")
    return Verdict(False, rule, f"Failed: {bound}, is not below {limit:g} (n={estimate.n}).")
