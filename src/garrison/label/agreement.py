"""Agreement between annotators: Krippendorff's alpha, Cohen's and Fleiss' kappa, span F1, box
matching, each with a bootstrap interval over units.

Pure functions over plain values (no catalog): the labeling store reads the replicas and calls
these. Conventions shared by every function:

- a *unit* is what was labeled (a task, a token, an image); missing values are allowed where the
  metric allows them (``None`` or an absent coder);
- a span is ``(start, end, label)`` with character offsets, ``end`` exclusive;
- a box is ``(x, y, width, height, label)`` in pixels (COCO's convention);
- a metric that is undefined on its input (one value only, nothing pairable) is ``nan``, never
  a made-up 0 or 1.

Krippendorff's alpha is computed here from the coincidence matrix (Krippendorff 2011, "Computing
Krippendorff's alpha-reliability"): the ``krippendorff`` package is GPL and serves only as a
reference in the tests.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Callable, Hashable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal, TypeVar

import numpy as np
import numpy.typing as npt

from garrison.core.errors import InvalidInput
from garrison.models import bootstrap

__all__ = [
    "BoxMatch",
    "Estimate",
    "SpanScores",
    "alpha_interval",
    "cohen_kappa",
    "fleiss_kappa",
    "krippendorff_alpha",
    "match_boxes",
    "span_f1",
    "span_scores",
    "span_token_alpha",
    "span_token_units",
    "tokenize",
    "with_interval",
]

Level = Literal["nominal", "ordinal", "interval"]
Span = tuple[int, int, str]
Box = tuple[float, float, float, float, str]
Unit = Mapping[Hashable, Any]
T = TypeVar("T")

_NAN = float("nan")


# -- Krippendorff's alpha ------------------------------------------------------------------------


def _units(data: Mapping[Any, Unit] | Sequence[Unit]) -> list[list[Any]]:
    """The non-missing values of each unit."""
    rows = data.values() if isinstance(data, Mapping) else data
    out = []
    for row in rows:
        if not isinstance(row, Mapping):
            raise InvalidInput("Each unit of alpha's data is a mapping of coder to value.")
        out.append([v for v in row.values() if v is not None and not _is_nan(v)])
    return out


def _is_nan(value: Any) -> bool:
    return isinstance(value, float) and math.isnan(value)


def _domain(values: set[Any], level: Level) -> list[Any]:
    if level == "nominal":
        return sorted(values, key=lambda v: (type(v).__name__, str(v)))
    if level == "interval" and not all(
        isinstance(v, int | float) and not isinstance(v, bool) for v in values
    ):
        raise InvalidInput("Interval alpha needs numeric values.")
    try:
        return sorted(values)
    except TypeError as exc:
        raise InvalidInput("Ordinal alpha needs values that can be ordered.") from exc


def krippendorff_alpha(
    data: Mapping[Any, Unit] | Sequence[Unit], *, level: Level = "nominal"
) -> float:
    """Krippendorff's alpha of ``data``: units, each a mapping of coder to value (missing allowed).

    ``data`` is a mapping ``unit -> {coder: value}`` or a sequence of such per-unit mappings (a
    sequence may repeat a unit, as a bootstrap resample does). ``level`` picks the difference
    function: nominal (0/1), ordinal (Krippendorff's rank-based metric over the pairable values)
    or interval (squared difference). Units with fewer than two values are not pairable and are
    left out. ``nan`` when fewer than two distinct values are pairable (alpha is undefined).
    """
    domain, counts = _count_matrix(data, level)
    return _alpha_of_counts(domain, counts, level)


def _count_matrix(
    data: Mapping[Any, Unit] | Sequence[Unit], level: Level
) -> tuple[list[Any], npt.NDArray[np.float64]]:
    """The pairable values in order, and per unit how many times each was given."""
    if level not in ("nominal", "ordinal", "interval"):
        raise InvalidInput(f"Unknown alpha level {level!r}: use nominal, ordinal or interval.")
    units = _units(data)
    values = {v for u in units if len(u) >= 2 for v in u}
    if len(values) < 2:
        return [], np.zeros((len(units), 0))
    domain = _domain(values, level)
    index = {v: i for i, v in enumerate(domain)}
    rows = [r for r, u in enumerate(units) if len(u) >= 2 for _ in u]
    cols = [index[v] for u in units if len(u) >= 2 for v in u]
    counts = np.zeros((len(units), len(domain)), dtype=np.float64)
    np.add.at(counts, (np.array(rows, dtype=np.int64), np.array(cols, dtype=np.int64)), 1.0)
    return domain, counts


def _unit_coincidences(counts: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    """Each unit's contribution to the coincidence matrix, flattened: row u holds
    ``(n_uc n_uk - [c == k] n_uc) / (m_u - 1)``, zeros for a unit with fewer than two values."""
    m = counts.sum(axis=1)
    k = counts.shape[1]
    weights = np.where(m >= 2, 1.0 / np.maximum(m - 1.0, 1.0), 0.0)
    pairs = counts[:, :, None] * counts[:, None, :]
    pairs[:, np.arange(k), np.arange(k)] -= counts
    return np.asarray((pairs * weights[:, None, None]).reshape(len(counts), k * k))


def _alpha_of_coincidence(
    domain: list[Any], coincidence: npt.NDArray[np.float64], level: Level
) -> float:
    marginals = coincidence.sum(axis=1)
    if np.count_nonzero(marginals) < 2:
        return _NAN
    n = float(marginals.sum())
    delta = _delta(domain, marginals, level)
    observed = float((coincidence * delta).sum())
    expected = float((np.outer(marginals, marginals) * delta).sum()) / (n - 1)
    if expected == 0:
        return _NAN
    return float(1.0 - observed / expected)


def _alpha_of_counts(domain: list[Any], counts: npt.NDArray[np.float64], level: Level) -> float:
    k = counts.shape[1]
    if k < 2:
        return _NAN
    coincidence = _unit_coincidences(counts).sum(axis=0).reshape(k, k)
    return _alpha_of_coincidence(domain, coincidence, level)


def alpha_interval(
    data: Mapping[Any, Unit] | Sequence[Unit],
    *,
    level: Level = "nominal",
    resamples: int = 1000,
    seed: int = 0,
) -> Estimate:
    """Krippendorff's alpha with its bootstrap interval over units: what
    ``with_interval(krippendorff_alpha, data)`` gives, computed once per resample on a matrix
    of counts rather than from the units (seconds for 100,000 units)."""
    domain, counts = _count_matrix(data, level)
    n, k = counts.shape
    per_unit = _unit_coincidences(counts) if k >= 2 else np.zeros((n, 0))

    def alpha(indices: npt.NDArray[np.int64]) -> float:
        if k < 2:
            return _NAN
        times = np.bincount(indices, minlength=n).astype(np.float64)
        return _alpha_of_coincidence(domain, (times @ per_unit).reshape(k, k), level)

    result = bootstrap(alpha, n, resamples=resamples, seed=seed)
    return Estimate(result["value"], result["low"], result["high"], n)


def _delta(
    domain: list[Any], marginals: npt.NDArray[np.float64], level: Level
) -> npt.NDArray[np.float64]:
    k = len(domain)
    if level == "nominal":
        return np.ones((k, k)) - np.eye(k)
    if level == "interval":
        v = np.asarray(domain, dtype=np.float64)
        return np.asarray((v[:, None] - v[None, :]) ** 2, dtype=np.float64)
    # Ordinal: the number of pairable values ranked between c and k, halving the ends.
    cumulative = np.concatenate([[0.0], np.cumsum(marginals)])
    lo = np.minimum.outer(np.arange(k), np.arange(k))
    hi = np.maximum.outer(np.arange(k), np.arange(k))
    between = cumulative[hi + 1] - cumulative[lo]
    return np.asarray((between - (marginals[lo] + marginals[hi]) / 2) ** 2, dtype=np.float64)


# -- kappas --------------------------------------------------------------------------------------


def cohen_kappa(a: Sequence[Any], b: Sequence[Any]) -> float:
    """Cohen's kappa between two annotators' labels of the same units (aligned sequences).

    Units where either label is ``None`` are left out. ``nan`` when nothing is left, or when
    both annotators always gave one and the same label (chance agreement is 1).
    """
    if len(a) != len(b):
        raise InvalidInput("Cohen's kappa needs the two annotators' labels of the same units.")
    pairs = [(x, y) for x, y in zip(a, b, strict=True) if x is not None and y is not None]
    if not pairs:
        return _NAN
    n = len(pairs)
    observed = sum(x == y for x, y in pairs) / n
    left, right = Counter(x for x, _ in pairs), Counter(y for _, y in pairs)
    expected = sum(left[c] * right[c] for c in left) / (n * n)
    if expected == 1:
        return _NAN
    return float((observed - expected) / (1 - expected))


def fleiss_kappa(ratings: Sequence[Sequence[Any]]) -> float:
    """Fleiss' kappa of ``ratings``: for each unit, the labels its raters gave (the same number
    of raters for every unit, at least two; who they are does not matter).

    ``nan`` when every rating is the same label (chance agreement is 1) or there are no units.
    """
    units = [list(r) for r in ratings]
    if not units:
        return _NAN
    raters = {len(u) for u in units}
    if len(raters) != 1 or next(iter(raters)) < 2:
        raise InvalidInput(
            "Fleiss' kappa needs the same number of ratings (two or more) for every unit."
        )
    m = next(iter(raters))
    categories = sorted({v for u in units for v in u}, key=str)
    index = {c: i for i, c in enumerate(categories)}
    table = np.zeros((len(units), len(categories)), dtype=np.float64)
    for row, unit in enumerate(units):
        for value in unit:
            table[row, index[value]] += 1
    p_units = ((table * table).sum(axis=1) - m) / (m * (m - 1))
    p_bar = float(p_units.mean())
    shares = table.sum(axis=0) / (len(units) * m)
    p_e = float((shares * shares).sum())
    if p_e == 1:
        return _NAN
    return (p_bar - p_e) / (1 - p_e)


# -- spans ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SpanScores:
    """Span precision, recall and F1 with the counts they come from."""

    precision: float
    recall: float
    f1: float
    true_positives: int
    predicted: int
    gold: int


def _is_item(item: Any, size: int) -> bool:
    return (
        isinstance(item, tuple | list)
        and len(item) == size
        and isinstance(item[0], int | float)
        and not isinstance(item[0], bool)
    )


def _documents(items: Sequence[Any], size: int) -> list[list[tuple[Any, ...]]]:
    """One document's items, or a sequence of documents' items, as a list of documents."""
    if items and all(_is_item(i, size) for i in items):
        return [[tuple(i) for i in items]]
    return [[tuple(i) for i in doc] for doc in items]


def _check_span(span: tuple[Any, ...]) -> Span:
    start, end, label = span
    if not (isinstance(start, int) and isinstance(end, int) and 0 <= start < end):
        raise InvalidInput(f"A span is (start, end, label) with 0 <= start < end, not {span!r}.")
    return int(start), int(end), str(label)


def _matched_spans(predicted: list[Span], gold: list[Span], mode: str) -> int:
    if mode == "exact":
        return sum((Counter(predicted) & Counter(gold)).values())
    from scipy.optimize import linear_sum_assignment  # type: ignore[import-untyped]

    if not predicted or not gold:
        return 0
    overlap = np.zeros((len(predicted), len(gold)), dtype=np.float64)
    for i, (ps, pe, pl) in enumerate(predicted):
        for j, (gs, ge, gl) in enumerate(gold):
            if pl == gl:
                overlap[i, j] = max(0, min(pe, ge) - max(ps, gs))
    rows, cols = linear_sum_assignment(overlap, maximize=True)
    return int(np.count_nonzero(overlap[rows, cols] > 0))


def span_scores(
    predicted: Sequence[Any], gold: Sequence[Any], *, mode: Literal["exact", "overlap"] = "exact"
) -> SpanScores:
    """Span precision/recall/F1 of ``predicted`` against ``gold``.

    Each is one document's spans ``[(start, end, label), ...]`` or a sequence of documents'
    span lists (aligned). ``exact``: a predicted span counts when a gold span has the same
    offsets and label; ``overlap``: when it shares at least one character with a gold span of
    the same label, each gold span matched at most once (maximum matching).
    """
    if mode not in ("exact", "overlap"):
        raise InvalidInput(f"Unknown span matching {mode!r}: use exact or overlap.")
    p_docs, g_docs = _documents(predicted, 3), _documents(gold, 3)
    if len(p_docs) != len(g_docs):
        raise InvalidInput("Span F1 needs predicted and gold spans for the same documents.")
    tp = n_pred = n_gold = 0
    for p_doc, g_doc in zip(p_docs, g_docs, strict=True):
        p = [_check_span(s) for s in p_doc]
        g = [_check_span(s) for s in g_doc]
        tp += _matched_spans(p, g, mode)
        n_pred += len(p)
        n_gold += len(g)
    precision = tp / n_pred if n_pred else _NAN
    recall = tp / n_gold if n_gold else _NAN
    f1 = _NAN if n_pred + n_gold == 0 else 2 * tp / (n_pred + n_gold)
    return SpanScores(precision, recall, f1, tp, n_pred, n_gold)


def span_f1(
    predicted: Sequence[Any], gold: Sequence[Any], *, mode: Literal["exact", "overlap"] = "exact"
) -> float:
    """The F1 of :func:`span_scores` (``nan`` when there are no spans on either side)."""
    return span_scores(predicted, gold, mode=mode).f1


_TOKEN = re.compile(r"\w+|[^\w\s]", re.UNICODE)


def tokenize(text: str) -> list[tuple[int, int]]:
    """Character offsets ``(start, end)`` of the tokens of ``text``: runs of word characters and
    single punctuation marks (the tokenization CoNLL export and token alpha share)."""
    return [(m.start(), m.end()) for m in _TOKEN.finditer(text)]


#: The value of a token no span covers.
OUTSIDE = "O"


def span_token_units(
    texts: Sequence[str], spans_by_coder: Mapping[Hashable, Sequence[Sequence[Any] | None]]
) -> list[dict[Hashable, str]]:
    """One unit per token of ``texts``: each coder's label of that token.

    ``spans_by_coder[coder][d]`` is the coder's spans on document ``d`` (``None``, or a list
    shorter than ``texts``, when the coder did not label it: missing, not "no entity"). A token
    takes the label of a span it overlaps, ``"O"`` when none does.
    """
    units: list[dict[Hashable, str]] = []
    for d, text in enumerate(texts):
        tokens = tokenize(text)
        per_coder: dict[Hashable, list[str]] = {}
        for coder, docs in spans_by_coder.items():
            if d >= len(docs) or docs[d] is None:
                continue
            labels = [OUTSIDE] * len(tokens)
            for span in docs[d] or ():
                start, end, label = _check_span(tuple(span))
                for t, (ts, te) in enumerate(tokens):
                    if ts < end and start < te:
                        labels[t] = label
            per_coder[coder] = labels
        for t in range(len(tokens)):
            units.append({coder: labels[t] for coder, labels in per_coder.items()})
    return units


def span_token_alpha(
    texts: Sequence[str], spans_by_coder: Mapping[Hashable, Sequence[Sequence[Any] | None]]
) -> float:
    """Nominal Krippendorff's alpha over tokens (see :func:`span_token_units`)."""
    return krippendorff_alpha(span_token_units(texts, spans_by_coder), level="nominal")


# -- boxes ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class BoxMatch:
    """Boxes matched one-to-one at an IoU threshold.

    ``matched``: pairs at or above the threshold with the same label; ``wrong_label``: such
    pairs with different labels; ``missing``: gold boxes left unmatched; ``extra``: predicted
    boxes left unmatched.
    """

    matched: int
    missing: int
    extra: int
    wrong_label: int

    @property
    def precision(self) -> float:
        predicted = self.matched + self.wrong_label + self.extra
        return self.matched / predicted if predicted else _NAN

    @property
    def recall(self) -> float:
        gold = self.matched + self.wrong_label + self.missing
        return self.matched / gold if gold else _NAN

    @property
    def f1(self) -> float:
        total = 2 * self.matched + 2 * self.wrong_label + self.extra + self.missing
        return 2 * self.matched / total if total else _NAN


def _box(item: tuple[Any, ...]) -> tuple[float, float, float, float, str]:
    x, y, w, h, label = item
    if w <= 0 or h <= 0:
        raise InvalidInput(f"A box is (x, y, width, height, label) with a positive size: {item!r}.")
    return float(x), float(y), float(w), float(h), str(label)


def _iou(a: Sequence[Any], b: Sequence[Any]) -> float:
    ix = max(0.0, min(a[0] + a[2], b[0] + b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[1] + a[3], b[1] + b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = a[2] * a[3] + b[2] * b[3] - inter
    return inter / union if union > 0 else 0.0


def match_boxes(predicted: Sequence[Any], gold: Sequence[Any], *, iou: float = 0.5) -> BoxMatch:
    """Match ``predicted`` boxes to ``gold`` boxes (one image's lists, or aligned lists of
    images' lists) with the Hungarian algorithm.

    Pairs need IoU >= ``iou``; among those, the assignment prefers same-label pairs, then the
    larger IoU (each box is matched at most once).
    """
    from scipy.optimize import linear_sum_assignment

    if not 0 < iou <= 1:
        raise InvalidInput("The IoU threshold is in (0, 1].")
    p_docs, g_docs = _documents(predicted, 5), _documents(gold, 5)
    if len(p_docs) != len(g_docs):
        raise InvalidInput("Box matching needs predicted and gold boxes for the same images.")
    matched = wrong = pairs = n_pred = n_gold = 0
    for p_doc, g_doc in zip(p_docs, g_docs, strict=True):
        p = [_box(b) for b in p_doc]
        g = [_box(b) for b in g_doc]
        n_pred += len(p)
        n_gold += len(g)
        if not p or not g:
            continue
        overlaps = np.array([[_iou(a, b) for b in g] for a in p], dtype=np.float64)
        same = np.array([[a[4] == b[4] for b in g] for a in p], dtype=np.float64)
        eligible = overlaps >= iou - 1e-12
        score = np.where(eligible, 1.0 + same + overlaps, 0.0)
        rows, cols = linear_sum_assignment(score, maximize=True)
        for r, c in zip(rows, cols, strict=True):
            if eligible[r, c]:
                pairs += 1
                if same[r, c]:
                    matched += 1
                else:
                    wrong += 1
    return BoxMatch(
        matched=matched, missing=n_gold - pairs, extra=n_pred - pairs, wrong_label=wrong
    )


# -- intervals -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Estimate:
    """A metric with its 95% percentile-bootstrap interval over ``n`` units."""

    value: float
    low: float
    high: float
    n: int

    def as_dict(self) -> dict[str, float | int]:
        return {"value": self.value, "low": self.low, "high": self.high, "n": self.n}


def with_interval(
    fn: Callable[[list[T]], float],
    units: Sequence[T] | Mapping[Any, T],
    *,
    resamples: int = 1000,
    seed: int = 0,
) -> Estimate:
    """``fn(units)`` with a bootstrap interval: ``fn`` is recomputed on ``resamples`` resamples
    of the units drawn with replacement (seeded, so the same data give the same interval).

    ``fn`` takes a list of units, so it sees repeated units as a resample holds them: for
    alpha pass the per-unit mappings (``with_interval(krippendorff_alpha, data)`` works on a
    mapping, whose values are the units); for Cohen's kappa pass pairs,
    ``with_interval(lambda us: cohen_kappa(*zip(*us)), list(zip(a, b)))``; for span F1 and box
    matching pass ``(predicted, gold)`` pairs per document. Resamples where the metric is
    undefined (``nan``) are left out of the interval.
    """
    items: list[T] = list(units.values()) if isinstance(units, Mapping) else list(units)

    def metric(indices: npt.NDArray[np.int64]) -> float:
        value = fn([items[i] for i in indices])
        return _NAN if value is None else float(value)

    result = bootstrap(metric, len(items), resamples=resamples, seed=seed)
    return Estimate(result["value"], result["low"], result["high"], len(items))
