"""Retrieval scorers: recall@k, MRR and nDCG@k of the ranked chunk ids a system retrieved,
against the item's relevant chunk ids (``relevant``, or a QA item's gold ``sources``).

Relevance is binary (a list of ids) or graded (an id -> grade mapping); nDCG uses the grades as
linear gains, ``DCG@k = Σ_{i<=k} gain_i / log2(i + 1)``, over the ideal ordering's DCG.
Repeated ids in a ranking count once, at their first rank.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from garrison.core.errors import InvalidInput
from garrison.evaluate.scorers._base import NotApplicable, Score, Scored, register

__all__ = ["ranking", "relevance"]

KINDS = frozenset({"retrieval", "qa"})


def relevance(item: Scored) -> dict[str, float]:
    """The item's relevant chunk ids with their grades (1 for a plain list)."""
    given: Any = item.expected.get("relevant")
    if given is None:
        given = item.expected.get("sources")
    if isinstance(given, Mapping):
        try:
            grades = {str(k): float(v) for k, v in given.items()}
        except (TypeError, ValueError) as exc:
            raise InvalidInput("Relevance grades must be numbers.") from exc
        if not all(math.isfinite(g) and g >= 0 for g in grades.values()):
            raise InvalidInput("Relevance grades must be finite numbers of at least 0.")
        grades = {k: g for k, g in grades.items() if g > 0}
    elif isinstance(given, list | tuple):
        grades = {str(k): 1.0 for k in given}
    else:
        grades = {}
    if not grades:
        raise NotApplicable("The item names no relevant chunks (expected 'relevant' or 'sources').")
    return grades


def ranking(item: Scored) -> list[str]:
    """The response's retrieved chunk ids, first occurrences only, in rank order."""
    retrieved = item.response.get("retrieved")
    if not isinstance(retrieved, list | tuple):
        raise NotApplicable("The response has no ranked list of retrieved chunks.")
    seen: dict[str, None] = {}
    for chunk in retrieved:
        seen.setdefault(str(chunk), None)
    return list(seen)


def _k(k: Any) -> int:
    if isinstance(k, bool) or not isinstance(k, int) or k < 1:
        raise InvalidInput(f"k must be a whole number of at least 1, not {k!r}.")
    return k


class _RecallAtK:
    version = "1"
    binary = False
    kinds = KINDS

    def __init__(self, k: int) -> None:
        self.k = _k(k)
        self.name = f"recall@{self.k}"

    def score(self, item: Scored) -> Score:
        relevant = relevance(item)
        found = [c for c in ranking(item)[: self.k] if c in relevant]
        return Score(
            self.name,
            len(found) / len(relevant),
            False,
            {"found": len(found), "relevant": len(relevant)},
        )


class _Mrr:
    name = "mrr"
    version = "1"
    binary = False
    kinds = KINDS

    def score(self, item: Scored) -> Score:
        relevant = relevance(item)
        for rank, chunk in enumerate(ranking(item), start=1):
            if chunk in relevant:
                return Score(self.name, 1.0 / rank, False, {"rank": rank})
        return Score(self.name, 0.0, False, {"rank": None})


class _NdcgAtK:
    version = "1"
    binary = False
    kinds = KINDS

    def __init__(self, k: int) -> None:
        self.k = _k(k)
        self.name = f"ndcg@{self.k}"

    def score(self, item: Scored) -> Score:
        grades = relevance(item)
        ranked = ranking(item)[: self.k]
        dcg = sum(grades.get(c, 0.0) / math.log2(i + 2) for i, c in enumerate(ranked))
        ideal = sorted(grades.values(), reverse=True)[: self.k]
        idcg = sum(g / math.log2(i + 2) for i, g in enumerate(ideal))
        return Score(self.name, dcg / idcg, False, {"dcg": dcg, "idcg": idcg})


@register("recall@k")
def _recall(*, k: int = 10) -> _RecallAtK:
    return _RecallAtK(k)


@register("mrr")
def _mrr() -> _Mrr:
    return _Mrr()


@register("ndcg@k")
def _ndcg(*, k: int = 10) -> _NdcgAtK:
    return _NdcgAtK(k)
