"""Classifier metrics, computed in Garrison, each with a 95% bootstrap interval.

``classification_report`` takes the true labels and the predicted probabilities of an
evaluation set and gives::

    {"records": n,
     "accuracy": {"value", "low", "high"},
     "macro_f1": {...},            # mean F1 over the classes present (true or predicted)
     "ece": {...},                 # expected calibration error, 10 equal-width bins
     "per_class": {label: {"support": n, "precision": {...}, "recall": {...}}}}

A precision with no prediction of its class, or a recall with no record of it, is undefined:
``None`` (JSON ``null``), and resamples where it is undefined are left out of its interval.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import numpy.typing as npt

from garrison.models._stats import Indices, bootstrap

__all__ = ["ECE_BINS", "classification_report", "expected_calibration_error"]

ECE_BINS = 10


def expected_calibration_error(
    confidence: npt.NDArray[np.float64], correct: npt.NDArray[np.bool_], bins: int = ECE_BINS
) -> float:
    """Sum over equal-width confidence bins of (bin share) * |accuracy - mean confidence|."""
    n = len(confidence)
    if n == 0:
        return float("nan")
    which = np.minimum((confidence * bins).astype(np.int64), bins - 1)
    counts = np.bincount(which, minlength=bins)
    conf_sum = np.bincount(which, weights=confidence, minlength=bins)
    acc_sum = np.bincount(which, weights=correct.astype(np.float64), minlength=bins)
    used = counts > 0
    gaps = np.abs(acc_sum[used] - conf_sum[used])  # per bin: count * |acc - conf|
    return float(gaps.sum() / n)


def _none_if_nan(metric: dict[str, float]) -> dict[str, float] | None:
    return None if any(math.isnan(v) for v in metric.values()) else metric


def classification_report(
    labels: list[str],
    y_true: list[str],
    probabilities: npt.NDArray[np.float64],
    *,
    seed: int = 0,
    resamples: int = 1000,
) -> dict[str, Any]:
    """Metrics of predictions ``argmax(probabilities)`` over ``labels`` against ``y_true``.

    ``y_true`` may hold labels the classifier never saw (it then can only miss them).
    """
    space = list(labels) + sorted(set(y_true) - set(labels))
    index = {label: i for i, label in enumerate(space)}
    k = len(space)
    true = np.array([index[y] for y in y_true], dtype=np.int64)
    n = len(true)
    probs = np.asarray(probabilities, dtype=np.float64).reshape(n, len(labels))
    pred = probs.argmax(axis=1).astype(np.int64) if n else np.zeros(0, dtype=np.int64)
    confidence = probs.max(axis=1) if n else np.zeros(0)
    correct = pred == true

    def counts(idx: Indices) -> tuple[npt.NDArray[np.float64], ...]:
        t, p = true[idx], pred[idx]
        tp = np.bincount(t[t == p], minlength=k)
        return tuple(
            a.astype(np.float64)
            for a in (tp, np.bincount(p, minlength=k), np.bincount(t, minlength=k))
        )

    def accuracy(idx: Indices) -> float:
        return float(correct[idx].mean())

    def macro_f1(idx: Indices) -> float:
        tp, predicted, actual = counts(idx)
        present = (predicted + actual) > 0
        f1 = 2 * tp[present] / (predicted[present] + actual[present])
        return float(f1.mean())

    def ece(idx: Indices) -> float:
        return expected_calibration_error(confidence[idx], correct[idx])

    def precision(c: int) -> Any:
        def metric(idx: Indices) -> float:
            tp, predicted, _ = counts(idx)
            return float(tp[c] / predicted[c]) if predicted[c] else float("nan")

        return metric

    def recall(c: int) -> Any:
        def metric(idx: Indices) -> float:
            tp, _, actual = counts(idx)
            return float(tp[c] / actual[c]) if actual[c] else float("nan")

        return metric

    def interval(metric: Any) -> dict[str, float]:
        return bootstrap(metric, n, resamples=resamples, seed=seed)

    support = np.bincount(true, minlength=k)
    return {
        "records": n,
        "accuracy": interval(accuracy),
        "macro_f1": interval(macro_f1),
        "ece": interval(ece),
        "per_class": {
            label: {
                "support": int(support[c]),
                "precision": _none_if_nan(interval(precision(c))),
                "recall": _none_if_nan(interval(recall(c))),
            }
            for c, label in enumerate(space)
        },
    }
