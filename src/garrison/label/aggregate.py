"""Aggregating replicas into one label per task: majority vote and Dawid–Skene, compared on gold.

``labels`` is ``task -> {annotator: label}`` everywhere (a task an annotator did not label is
absent from its mapping; ``None`` values count as absent). Pure functions: the labeling store
reads the replicas and calls these.

Dawid–Skene (Dawid and Skene 1979) models each annotator by a confusion matrix
``pi[a][j][l] = P(annotator a says l | the true class is j)`` and the classes by priors ``p[j]``;
expectation–maximization alternates the posteriors of each task's true class
(``T[i][j] ∝ p[j] · Π_a Π_l pi[a][j][l]^n[i,a,l]``) and the maximum-likelihood ``p`` and ``pi``
given them, from the majority vote's vote shares, until the log-likelihood moves by less than
``tolerance`` times its magnitude. A small additive smoothing keeps an unseen (class, answer)
pair from zeroing a posterior.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Hashable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

from garrison.core.errors import InvalidInput

__all__ = [
    "DawidSkene",
    "GoldAccuracy",
    "MajorityVote",
    "compare_on_gold",
    "dawid_skene",
    "majority_vote",
    "wilson_interval",
]

Labels = Mapping[Any, Mapping[Any, Any]]

#: Additive smoothing of the priors and confusion counts (a pseudo-count per cell).
_SMOOTHING = 0.01


def _clean(labels: Labels) -> dict[Hashable, dict[Hashable, Any]]:
    if not isinstance(labels, Mapping):
        raise InvalidInput("Labels are a mapping of task to {annotator: label}.")
    out: dict[Hashable, dict[Hashable, Any]] = {}
    for task, votes in labels.items():
        if not isinstance(votes, Mapping):
            raise InvalidInput(
                f"The labels of task {task!r} are not a mapping of annotator to label."
            )
        out[task] = {a: v for a, v in votes.items() if v is not None}
    return out


def _order(values: Any) -> list[Any]:
    return sorted(values, key=lambda v: (type(v).__name__, str(v)))


@dataclass(frozen=True)
class MajorityVote:
    """The most frequent label of each task.

    ``support``: the share of the task's votes its label got. ``ties``: the tasks whose top
    count was shared, with the tied labels; such a tie goes to the label most frequent over all
    tasks, then to the first in sorted order, so the same votes always give the same answer.
    Tasks without any vote are left out of ``labels``.
    """

    labels: dict[Hashable, Any]
    support: dict[Hashable, float]
    ties: dict[Hashable, tuple[Any, ...]]


def majority_vote(labels: Labels) -> MajorityVote:
    """Majority vote over each task's annotators (see :class:`MajorityVote` for ties)."""
    clean = _clean(labels)
    overall = Counter(v for votes in clean.values() for v in votes.values())
    rank = {v: i for i, v in enumerate(_order(overall))}
    chosen: dict[Hashable, Any] = {}
    support: dict[Hashable, float] = {}
    ties: dict[Hashable, tuple[Any, ...]] = {}
    for task, votes in clean.items():
        if not votes:
            continue
        counts = Counter(votes.values())
        top = max(counts.values())
        tied = [v for v, c in counts.items() if c == top]
        tied.sort(key=lambda v: (-overall[v], rank[v]))
        chosen[task] = tied[0]
        support[task] = top / len(votes)
        if len(tied) > 1:
            ties[task] = tuple(tied)
    return MajorityVote(chosen, support, ties)


@dataclass(frozen=True)
class DawidSkene:
    """Dawid–Skene's estimates.

    ``posteriors[task][class]``: P(true class | votes); ``labels[task]``: the most probable
    class (ties to the first class in ``classes``); ``confusion[annotator][true][given]``:
    the annotator's estimated answer probabilities; ``priors[class]``; ``iterations`` run, and
    whether the log-likelihood ``converged`` within ``max_iterations``.
    """

    classes: tuple[Any, ...]
    posteriors: dict[Hashable, dict[Any, float]]
    labels: dict[Hashable, Any]
    confusion: dict[Hashable, dict[Any, dict[Any, float]]]
    priors: dict[Any, float]
    iterations: int
    converged: bool
    log_likelihood: float = field(default=float("nan"))


def dawid_skene(
    labels: Labels,
    *,
    classes: Sequence[Any] | None = None,
    max_iterations: int = 100,
    tolerance: float = 1e-6,
) -> DawidSkene:
    """Dawid–Skene aggregation by EM, initialized from the majority vote's vote shares.

    ``classes`` fixes the class set and its order (default: every label seen, sorted); a vote
    outside it is invalid input.
    """
    clean = _clean(labels)
    seen = {v for votes in clean.values() for v in votes.values()}
    order = list(classes) if classes is not None else _order(seen)
    if len(set(order)) != len(order):
        raise InvalidInput("Dawid–Skene's classes repeat a class.")
    unknown = seen - set(order)
    if unknown:
        raise InvalidInput(f"A vote is outside the classes given: {_order(unknown)[0]!r}.")
    if max_iterations < 1 or tolerance <= 0:
        raise InvalidInput("Dawid–Skene needs max_iterations >= 1 and a positive tolerance.")
    tasks = [t for t, votes in clean.items() if votes]
    annotators = _order({a for votes in clean.values() for a in votes})
    k = len(order)
    if not tasks or k == 0:
        return DawidSkene(tuple(order), {}, {}, {}, dict.fromkeys(order, 0.0), 0, True)
    c_index = {c: i for i, c in enumerate(order)}
    a_index = {a: i for i, a in enumerate(annotators)}
    obs = [(ti, a_index[a], c_index[v]) for ti, t in enumerate(tasks) for a, v in clean[t].items()]
    task_i = np.array([o[0] for o in obs], dtype=np.int64)
    ann_i = np.array([o[1] for o in obs], dtype=np.int64)
    lab_i = np.array([o[2] for o in obs], dtype=np.int64)
    n_tasks, n_ann = len(tasks), len(annotators)

    # Initial posteriors: each task's vote shares.
    posterior = np.zeros((n_tasks, k), dtype=np.float64)
    np.add.at(posterior, (task_i, lab_i), 1.0)
    posterior /= posterior.sum(axis=1, keepdims=True)

    previous = -np.inf
    converged = False
    iterations = 0
    log_likelihood = float("nan")
    priors = np.full(k, 1.0 / k)
    confusion = np.full((n_ann, k, k), 1.0 / k)
    while iterations < max_iterations:
        iterations += 1
        priors, confusion = _maximize(posterior, task_i, ann_i, lab_i, n_ann, k)
        posterior, log_likelihood = _expect(priors, confusion, task_i, ann_i, lab_i, n_tasks)
        if abs(log_likelihood - previous) < tolerance * max(1.0, abs(log_likelihood)):
            converged = True
            break
        previous = log_likelihood

    best = posterior.argmax(axis=1)
    return DawidSkene(
        classes=tuple(order),
        posteriors={
            t: {c: float(posterior[i, j]) for j, c in enumerate(order)} for i, t in enumerate(tasks)
        },
        labels={t: order[int(best[i])] for i, t in enumerate(tasks)},
        confusion={
            a: {
                order[j]: {order[m]: float(confusion[ai, j, m]) for m in range(k)} for j in range(k)
            }
            for ai, a in enumerate(annotators)
        },
        priors={c: float(priors[j]) for j, c in enumerate(order)},
        iterations=iterations,
        converged=converged,
        log_likelihood=log_likelihood,
    )


Array = npt.NDArray[np.float64]
Ints = npt.NDArray[np.int64]


def _maximize(
    posterior: Array, task_i: Ints, ann_i: Ints, lab_i: Ints, n_ann: int, k: int
) -> tuple[Array, Array]:
    priors = posterior.sum(axis=0) + _SMOOTHING
    priors /= priors.sum()
    counts = np.full((n_ann, k, k), _SMOOTHING, dtype=np.float64)
    # counts[a, j, l] += T[i, j] for every vote (i, a, l).
    np.add.at(
        counts,
        (ann_i[:, None], np.arange(k)[None, :], lab_i[:, None]),
        posterior[task_i],
    )
    confusion = counts / counts.sum(axis=2, keepdims=True)
    return priors, confusion


def _expect(
    priors: Array, confusion: Array, task_i: Ints, ann_i: Ints, lab_i: Ints, n_tasks: int
) -> tuple[Array, float]:
    log_post = np.tile(np.log(priors), (n_tasks, 1))
    np.add.at(log_post, task_i, np.log(confusion[ann_i, :, lab_i]))
    top = log_post.max(axis=1, keepdims=True)
    weights = np.exp(log_post - top)
    total = weights.sum(axis=1, keepdims=True)
    log_likelihood = float((np.log(total) + top).sum())
    return weights / total, log_likelihood


# -- against gold --------------------------------------------------------------------------------


def wilson_interval(correct: int, n: int, *, confidence: float = 0.95) -> tuple[float, float]:
    """The Wilson score interval of ``correct`` successes in ``n`` trials (``nan`` when n = 0)."""
    if n == 0:
        return float("nan"), float("nan")
    from scipy.stats import binomtest  # type: ignore[import-untyped]

    ci = binomtest(correct, n).proportion_ci(confidence_level=confidence, method="wilson")
    return float(ci.low), float(ci.high)


@dataclass(frozen=True)
class GoldAccuracy:
    """A method's accuracy on the gold tasks it labeled, with its Wilson interval.

    ``n`` counts the gold tasks the method gave a label; ``coverage`` is their share of all
    gold tasks.
    """

    accuracy: float
    low: float
    high: float
    correct: int
    n: int
    coverage: float

    def as_dict(self) -> dict[str, float | int]:
        return {
            "accuracy": self.accuracy,
            "low": self.low,
            "high": self.high,
            "correct": self.correct,
            "n": self.n,
            "coverage": self.coverage,
        }


def compare_on_gold(
    aggregated: Mapping[str, Mapping[Any, Any] | MajorityVote | DawidSkene],
    gold: Mapping[Any, Any],
) -> dict[str, GoldAccuracy]:
    """Each method's accuracy on ``gold`` (task -> true label), side by side.

    ``aggregated`` maps a method's name to its labels (task -> label) or to its result
    (:class:`MajorityVote`, :class:`DawidSkene`).
    """
    out: dict[str, GoldAccuracy] = {}
    for method, result in aggregated.items():
        chosen = result.labels if isinstance(result, MajorityVote | DawidSkene) else result
        scored = [t for t in gold if t in chosen and chosen[t] is not None]
        correct = sum(chosen[t] == gold[t] for t in scored)
        n = len(scored)
        low, high = wilson_interval(correct, n)
        out[method] = GoldAccuracy(
            accuracy=correct / n if n else float("nan"),
            low=low,
            high=high,
            correct=correct,
            n=n,
            coverage=n / len(gold) if gold else float("nan"),
        )
    return out
