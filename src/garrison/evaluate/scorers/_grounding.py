"""Scorers of a grounded answer: citation precision and recall against the gold sources, the
answer-supported rate, and refusal correctness.

Citations are compared by chunk id (``level="chunk"``, against ``expected["sources"]``) or by
document id (``level="document"``, against ``expected["documents"]``). An answer that cites
nothing has precision 0 (nothing it cites is right). On an unanswerable item citations credit a
refusal only, like the text scorers.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from garrison.core.errors import InvalidInput
from garrison.evaluate.scorers._base import (
    NotApplicable,
    Score,
    Scored,
    refusal_score,
    refused,
    register,
    unanswerable,
)

__all__ = ["cited"]

QA = frozenset({"qa"})
_GOLD = {"chunk": "sources", "document": "documents"}
_ID = {"chunk": "chunk_id", "document": "document_id"}


def cited(item: Scored, level: str = "chunk") -> set[str]:
    """The ids the response cites: its ``citations``, or its sentences' citations."""
    citations = item.response.get("citations")
    if isinstance(citations, list | tuple):
        out = set()
        for c in citations:
            if isinstance(c, Mapping) and c.get(_ID[level]) is not None:
                out.add(str(c[_ID[level]]))
        return out
    sentences = item.response.get("sentences")
    if level == "chunk" and isinstance(sentences, list | tuple):
        return {
            str(c) for s in sentences if isinstance(s, Mapping) for c in s.get("citations") or ()
        }
    raise NotApplicable("The response carries no citations.")


def _gold(item: Scored, level: str) -> set[str]:
    gold = item.expected.get(_GOLD[level])
    if not isinstance(gold, list | tuple) or not gold:
        raise NotApplicable(f"The item names no gold {level} sources (expected '{_GOLD[level]}').")
    return {str(g) for g in gold}


class _Citations:
    version = "1"
    binary = False
    kinds = QA

    def __init__(self, which: str, level: str) -> None:
        if level not in _GOLD:
            raise InvalidInput(f"A citation level is 'chunk' or 'document', not {level!r}.")
        self.which = which
        self.level = level
        self.name = f"citation-{which}"

    def score(self, item: Scored) -> Score:
        if unanswerable(item):
            return refusal_score(self.name, item, binary=False)
        got = cited(item, self.level)
        gold = _gold(item, self.level)
        right = got & gold
        detail: dict[str, Any] = {"cited": len(got), "gold": len(gold), "correct": len(right)}
        if self.which == "precision":
            return Score(self.name, len(right) / len(got) if got else 0.0, False, detail)
        return Score(self.name, len(right) / len(gold), False, detail)


@register("citation-precision")
def _precision(*, level: str = "chunk") -> _Citations:
    return _Citations("precision", level)


@register("citation-recall")
def _recall(*, level: str = "chunk") -> _Citations:
    return _Citations("recall", level)


class _Supported:
    """Every sentence of the answer is supported and cites a source (1), else 0; an answer
    without sentences (a refusal) claims nothing unsupported (1)."""

    name = "supported"
    version = "1"
    binary = True
    kinds = QA

    def score(self, item: Scored) -> Score:
        sentences = item.response.get("sentences")
        if not isinstance(sentences, list | tuple):
            raise NotApplicable("The response has no sentences with their support.")
        bad = [
            i
            for i, s in enumerate(sentences)
            if not (isinstance(s, Mapping) and s.get("supported") is True and s.get("citations"))
        ]
        detail = {"sentences": len(sentences), "unsupported": bad}
        return Score(self.name, float(not bad), True, detail)


@register("supported")
def _supported() -> _Supported:
    return _Supported()


class _Refusal:
    """Right to refuse when the item is unanswerable, right to answer when it is (the
    ``answerable`` flag defaults to true)."""

    name = "refusal"
    version = "1"
    binary = True
    kinds = QA

    def score(self, item: Scored) -> Score:
        answerable = item.expected.get("answerable", True)
        if not isinstance(answerable, bool):
            raise InvalidInput("The item's 'answerable' flag must be true or false.")
        did_refuse = refused(item)
        detail = {"answerable": answerable, "refused": did_refuse}
        return Score(self.name, float(did_refuse != answerable), True, detail)


@register("refusal")
def _refusal() -> _Refusal:
    return _Refusal()
