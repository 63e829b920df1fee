"""Corpus-level classification metrics, each an :class:`~garrison.evaluate.stats.Estimate`.

:func:`classification_report` gives, by key:

- ``accuracy`` -- Wilson interval;
- ``macro-f1`` -- the mean F1 over the classes present (true or predicted), bootstrap interval;
- ``precision/LABEL`` and ``recall/LABEL`` -- Wilson intervals over the items predicted as, or
  truly of, the class (left out when the class was never predicted, or never true);
- ``f1/LABEL`` -- bootstrap interval;
- ``ece`` (with probabilities) -- the expected calibration error over 10 equal-width bins of the
  predicted label's probability, bootstrap interval.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

import numpy as np

from garrison.core.errors import InvalidInput
from garrison.evaluate.stats import Estimate, wilson

if TYPE_CHECKING:
    from garrison.models._stats import Indices

__all__ = ["classification_report"]


def _estimate(interval: Mapping[str, float], n: int, method: str) -> Estimate:
    return Estimate(interval["value"], interval["low"], interval["high"], n, method)


def classification_report(
    labels: Sequence[str],
    predicted: Sequence[str | None],
    probabilities: Sequence[Mapping[str, float] | None] | None = None,
    *,
    seed: int = 0,
    resamples: int = 2000,
) -> dict[str, Estimate]:
    """Accuracy, macro-F1, per-class precision/recall/F1 and ECE of ``predicted`` against the
    true ``labels`` (one each, same order); a ``None`` prediction is always wrong."""
    # The models package computes the same ECE and bootstrap for model cards; imported here
    # so that importing the scorers stays light.
    from garrison.models._classifier_metrics import expected_calibration_error
    from garrison.models._stats import bootstrap

    n = len(labels)
    if n == 0:
        raise InvalidInput("A classification report needs at least one item.")
    if len(predicted) != n or (probabilities is not None and len(probabilities) != n):
        raise InvalidInput("Give one prediction (and one probability map) per true label.")
    true_labels = [str(y) for y in labels]
    predicted_labels = [None if p is None else str(p) for p in predicted]
    space = sorted(set(true_labels) | {p for p in predicted_labels if p is not None})
    index = {label: i for i, label in enumerate(space)}
    k = len(space)
    true = np.array([index[y] for y in true_labels], dtype=np.int64)
    pred = np.array([-1 if p is None else index[p] for p in predicted_labels], dtype=np.int64)
    correct = pred == true

    def counts(idx: Indices) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        t, p = true[idx], pred[idx]
        hit = t[t == p]
        return (
            np.bincount(hit, minlength=k).astype(np.float64),
            np.bincount(p[p >= 0], minlength=k).astype(np.float64),
            np.bincount(t, minlength=k).astype(np.float64),
        )

    def macro_f1(idx: Indices) -> float:
        tp, guessed, actual = counts(idx)
        present = (guessed + actual) > 0
        return float((2 * tp[present] / (guessed[present] + actual[present])).mean())

    def f1(c: int) -> object:
        def metric(idx: Indices) -> float:
            tp, guessed, actual = counts(idx)
            total = guessed[c] + actual[c]
            return float(2 * tp[c] / total) if total else float("nan")

        return metric

    out: dict[str, Estimate] = {
        "accuracy": wilson(int(correct.sum()), n),
        "macro-f1": _estimate(
            bootstrap(macro_f1, n, resamples=resamples, seed=seed), n, "bootstrap"
        ),
    }
    tp, guessed, actual = counts(np.arange(n, dtype=np.int64))
    for c, label in enumerate(space):
        if guessed[c]:
            out[f"precision/{label}"] = wilson(int(tp[c]), int(guessed[c]))
        if actual[c]:
            out[f"recall/{label}"] = wilson(int(tp[c]), int(actual[c]))
        interval = bootstrap(f1(c), n, resamples=resamples, seed=seed)  # type: ignore[arg-type]
        out[f"f1/{label}"] = _estimate(interval, n, "bootstrap")
    if probabilities is not None:
        confidence = np.zeros(n, dtype=np.float64)
        for i, (p, probs) in enumerate(zip(predicted_labels, probabilities, strict=True)):
            if probs is None or p is None:
                continue
            value = float(probs.get(p, 0.0))
            if not 0.0 <= value <= 1.0:
                raise InvalidInput(f"A probability must lie between 0 and 1, not {value}.")
            confidence[i] = value

        def ece(idx: Indices) -> float:
            return expected_calibration_error(confidence[idx], correct[idx])

        out["ece"] = _estimate(bootstrap(ece, n, resamples=resamples, seed=seed), n, "bootstrap")
    return out
