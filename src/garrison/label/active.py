"""Active learning: which records to label next, and how many labels it saves.

:func:`next_batch` scores each unlabeled record by the uncertainty of a logistic regression
retrained on the labels so far (``margin``: one minus the gap between the two most probable
classes; ``entropy``: the entropy of the predicted distribution over its maximum) and picks a
batch greedily, k-center style: each pick maximizes

    (1 - diversity) * uncertainty + diversity * distance / max distance

where ``distance`` is the record's Euclidean distance (on the embeddings) to the nearest record
already labeled or picked, so a batch does not spend its labels on near-duplicates. Before two
classes are labeled there is nothing to be uncertain about: the batch is a seeded random draw.
On a large pool the picks are made among its most uncertain records (``MIN_CANDIDATES``, or
``CANDIDATES_PER_PICK`` per record of the batch, whichever is more), which bounds the distance
computations.

:func:`simulate` measures the saving on records whose labels are known: per seed, the labels an
active ordering needs to reach a target test accuracy against a random ordering's, and the mean
saving over the seeds with a bootstrap interval.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import numpy.typing as npt

from garrison.core.errors import InvalidInput, MissingExtra
from garrison.label.agreement import Estimate
from garrison.models import bootstrap
from garrison.models._train_classifier import fit_head, softmax_probabilities

__all__ = ["SeedRun", "Simulation", "next_batch", "simulate", "uncertainty"]

Strategy = Literal["margin", "entropy"]
Matrix = npt.NDArray[np.float64]

#: The logistic regression's inverse regularization (scikit-learn's default).
_C = 1.0


def _matrix(x: Any, what: str) -> Matrix:
    array = np.asarray(x, dtype=np.float64)
    if array.ndim == 1 and array.size == 0:
        return array.reshape(0, 0)
    if array.ndim != 2:
        raise InvalidInput(f"The {what} are a matrix: one embedding per row.")
    if not np.isfinite(array).all():
        raise InvalidInput(f"The {what} hold a value that is not a finite number.")
    return array


class _Model:
    """A logistic regression on the labels so far (classes in sorted order)."""

    def __init__(self, x: Matrix, labels: Sequence[Any], seed: int) -> None:
        self.classes = sorted(set(labels), key=lambda v: (type(v).__name__, str(v)))
        index = {c: i for i, c in enumerate(self.classes)}
        y = np.array([index[v] for v in labels], dtype=np.int64)
        try:
            self.weight, self.bias = fit_head(x, y, len(self.classes), _C, seed)
        except ImportError as exc:
            raise MissingExtra("embed", "scikit-learn") from exc

    def probabilities(self, x: Matrix) -> Matrix:
        return softmax_probabilities(x, self.weight, self.bias)

    def predict(self, x: Matrix) -> list[Any]:
        return [self.classes[i] for i in self.probabilities(x).argmax(axis=1)]


def uncertainty(probabilities: Matrix, strategy: Strategy = "margin") -> Matrix:
    """Uncertainty in [0, 1] of each row of class probabilities (1: the most uncertain)."""
    p = np.asarray(probabilities, dtype=np.float64)
    if p.shape[1] < 2:
        return np.zeros(p.shape[0])
    if strategy == "margin":
        top = np.sort(p, axis=1)[:, -2:]
        return np.asarray(1.0 - (top[:, 1] - top[:, 0]), dtype=np.float64)
    if strategy == "entropy":
        clipped = np.clip(p, 1e-12, 1.0)
        entropy = -(clipped * np.log(clipped)).sum(axis=1)
        return np.asarray(entropy / np.log(p.shape[1]), dtype=np.float64)
    raise InvalidInput(f"Unknown active-learning strategy {strategy!r}: use margin or entropy.")


def _nearest(pool: Matrix, anchors: Matrix, chunk: int = 4096) -> Matrix:
    """Each pool row's Euclidean distance to its nearest anchor row (inf without anchors)."""
    if anchors.shape[0] == 0:
        return np.full(pool.shape[0], np.inf)
    out = np.empty(pool.shape[0])
    anchor_sq = (anchors * anchors).sum(axis=1)
    for start in range(0, pool.shape[0], chunk):
        block = pool[start : start + chunk]
        sq = (block * block).sum(axis=1)[:, None] - 2 * block @ anchors.T + anchor_sq[None, :]
        out[start : start + chunk] = np.sqrt(np.maximum(sq.min(axis=1), 0.0))
    return out


def next_batch(
    labeled_embeddings: Any,
    labels: Sequence[Any],
    pool_embeddings: Any,
    *,
    strategy: Strategy = "margin",
    diversity: float = 0.5,
    batch: int = 10,
    seed: int = 0,
) -> list[int]:
    """The indices (rows of ``pool_embeddings``) of the next ``batch`` records to label.

    ``labeled_embeddings[i]`` was labeled ``labels[i]``; the pool is what is not labeled yet.
    Deterministic for the same inputs and ``seed``. See the module docstring for the score.
    """
    if not 0.0 <= diversity <= 1.0:
        raise InvalidInput("The diversity weight is between 0 and 1.")
    if batch < 1:
        raise InvalidInput("A batch holds at least one record.")
    uncertainty(np.zeros((0, 2)), strategy)  # an unknown strategy fails before any work
    pool = _matrix(pool_embeddings, "pool embeddings")
    labeled = _matrix(labeled_embeddings, "labeled embeddings")
    if labeled.shape[0] != len(labels):
        raise InvalidInput("There is one label per labeled embedding.")
    n = pool.shape[0]
    if n == 0:
        return []
    if labeled.shape[0] and labeled.shape[1] != pool.shape[1]:
        raise InvalidInput("The labeled and pool embeddings have different dimensions.")
    rng = np.random.default_rng(seed)
    if len(set(labels)) < 2:
        return [int(i) for i in rng.permutation(n)[: min(batch, n)]]
    scores = uncertainty(_Model(labeled, labels, seed).probabilities(pool), strategy)
    candidates = np.arange(n)
    limit = max(CANDIDATES_PER_PICK * batch, MIN_CANDIDATES)
    if n > limit and diversity < 1.0:
        # Distances from a large pool to every labeled record dominate the cost: keep the most
        # uncertain records (stable order, so ties keep their pool order).
        candidates = np.sort(np.argsort(-scores, kind="stable")[:limit])
    picks = _pick(pool[candidates], labeled, scores[candidates], diversity, min(batch, n))
    return [int(candidates[i]) for i in picks]


#: On a pool larger than ``max(CANDIDATES_PER_PICK * batch, MIN_CANDIDATES)`` records, the
#: batch is picked among that many of the most uncertain (unless diversity is 1: pure k-center).
CANDIDATES_PER_PICK = 200
MIN_CANDIDATES = 5000


def _pick(pool: Matrix, labeled: Matrix, scores: Matrix, diversity: float, batch: int) -> list[int]:
    """Greedy picks maximizing the mixed score (see the module docstring)."""
    n = pool.shape[0]
    distance = _nearest(pool, labeled)
    picked: list[int] = []
    available = np.ones(n, dtype=bool)
    for _ in range(batch):
        finite = distance[available & np.isfinite(distance)]
        scale = float(finite.max()) if finite.size else 0.0
        spread = distance / scale if scale > 0 else np.zeros(n)
        combined = (1.0 - diversity) * scores + diversity * np.minimum(spread, 1.0)
        combined[~available] = -np.inf
        best = int(np.argmax(combined))
        picked.append(best)
        available[best] = False
        distance = np.minimum(distance, _nearest(pool, pool[best : best + 1]))
    return picked


# -- simulation ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class SeedRun:
    """One seed of :func:`simulate`: the labels each ordering needed (``reached`` False: the
    ordering labeled the whole pool without reaching the target, and counts the pool)."""

    seed: int
    active: int
    random: int
    active_reached: bool
    random_reached: bool

    @property
    def saving(self) -> int:
        return self.random - self.active


@dataclass(frozen=True)
class Simulation:
    """Labels needed to reach ``target_accuracy`` with active ordering vs random, per seed.

    ``saving``: the mean over seeds of (random - active) labels, with a bootstrap interval over
    the seeds; ``relative_saving``: the same for ``1 - active / random``.
    """

    target_accuracy: float
    strategy: str
    batch: int
    diversity: float
    pool: int
    test: int
    runs: tuple[SeedRun, ...]
    saving: Estimate
    relative_saving: Estimate

    @property
    def mean_active(self) -> float:
        return float(np.mean([r.active for r in self.runs]))

    @property
    def mean_random(self) -> float:
        return float(np.mean([r.random for r in self.runs]))


def _accuracy(x: Matrix, y: list[Any], test_x: Matrix, test_y: list[Any], seed: int) -> float:
    if len(set(y)) < 2:
        guess = y[0] if y else None
        return float(np.mean([t == guess for t in test_y]))
    predicted = _Model(x, y, seed).predict(test_x)
    return float(np.mean([p == t for p, t in zip(predicted, test_y, strict=True)]))


def _labels_needed(
    order_fn: Any,
    pool_x: Matrix,
    pool_y: list[Any],
    test_x: Matrix,
    test_y: list[Any],
    target: float,
    seed: int,
) -> tuple[int, bool]:
    labeled: list[int] = []
    remaining = list(range(len(pool_y)))
    step = 0
    while remaining:
        chosen = order_fn(labeled, remaining, step)
        labeled.extend(chosen)
        taken = set(chosen)
        remaining = [i for i in remaining if i not in taken]
        step += 1
        y = [pool_y[i] for i in labeled]
        if _accuracy(pool_x[labeled], y, test_x, test_y, seed) >= target:
            return len(labeled), True
    return len(labeled), False


def _run_seed(
    x: Matrix,
    y: list[Any],
    n_test: int,
    seed: int,
    target: float,
    strategy: Strategy,
    batch: int,
    diversity: float,
) -> SeedRun:
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(y))
    test_idx, pool_idx = order[:n_test], order[n_test:]
    pool_x, test_x = x[pool_idx], x[test_idx]
    pool_y = [y[i] for i in pool_idx]
    test_y = [y[i] for i in test_idx]
    random_order = [int(i) for i in np.random.default_rng(seed + 7919).permutation(len(pool_y))]

    def randomly(labeled: list[int], remaining: list[int], step: int) -> list[int]:
        return random_order[step * batch : (step + 1) * batch]

    def actively(labeled: list[int], remaining: list[int], step: int) -> list[int]:
        if step == 0:  # both orderings start from the same random batch
            return random_order[:batch]
        picks = next_batch(
            pool_x[labeled],
            [pool_y[i] for i in labeled],
            pool_x[remaining],
            strategy=strategy,
            diversity=diversity,
            batch=batch,
            seed=seed + step,
        )
        return [remaining[p] for p in picks]

    active, active_ok = _labels_needed(actively, pool_x, pool_y, test_x, test_y, target, seed)
    rand, rand_ok = _labels_needed(randomly, pool_x, pool_y, test_x, test_y, target, seed)
    return SeedRun(seed, active, rand, active_ok, rand_ok)


def simulate(
    embeddings: Any,
    labels: Sequence[Any],
    *,
    target_accuracy: float,
    strategy: Strategy = "margin",
    seeds: Sequence[int] = (0, 1, 2, 3, 4),
    batch: int = 10,
    test_fraction: float = 0.3,
    diversity: float = 0.5,
    resamples: int = 1000,
) -> Simulation:
    """Replay labeling on records whose ``labels`` are known.

    Per seed the records are split at random into a pool and a test set (``test_fraction``);
    both orderings label the pool ``batch`` records at a time (the active one through
    :func:`next_batch`, the random one in a seeded random order), retrain the logistic
    regression after each batch, and stop when its test accuracy reaches ``target_accuracy``.
    """
    x = _matrix(embeddings, "embeddings")
    y = list(labels)
    if x.shape[0] != len(y):
        raise InvalidInput("There is one label per embedding.")
    if not 0 < test_fraction < 1:
        raise InvalidInput("The test fraction is between 0 and 1.")
    if not 0 < target_accuracy <= 1:
        raise InvalidInput("The target accuracy is in (0, 1].")
    if not seeds:
        raise InvalidInput("The simulation needs at least one seed.")
    n_test = max(1, round(len(y) * test_fraction))
    if len(y) - n_test < batch:
        raise InvalidInput("Too few records for a pool of one batch and a test set.")
    runs = [
        _run_seed(x, y, n_test, int(seed), target_accuracy, strategy, batch, diversity)
        for seed in seeds
    ]
    savings = np.array([r.saving for r in runs], dtype=np.float64)
    relative = np.array([1.0 - r.active / r.random for r in runs], dtype=np.float64)

    def mean_of(values: Matrix) -> Estimate:
        result = bootstrap(
            lambda idx: float(values[idx].mean()), len(values), resamples=resamples, seed=0
        )
        return Estimate(result["value"], result["low"], result["high"], len(values))

    return Simulation(
        target_accuracy=target_accuracy,
        strategy=strategy,
        batch=batch,
        diversity=diversity,
        pool=len(y) - n_test,
        test=n_test,
        runs=tuple(runs),
        saving=mean_of(savings),
        relative_saving=mean_of(relative),
    )
