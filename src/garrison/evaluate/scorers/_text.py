"""Scorers of an answer's text against its references: exact and normalized match, token F1,
ROUGE-L (``rouge-score``), chrF (``sacrebleu``), regex and includes.

With several references an item takes its best score over them. On an unanswerable QA item
(``answerable`` false) each credits a refusal and nothing else (1 when the response refused,
else 0), the convention of SQuAD 2.0.
"""

from __future__ import annotations

import re
import string
from collections import Counter
from collections.abc import Callable
from typing import Any

from garrison.core.errors import InvalidInput, MissingExtra
from garrison.evaluate.scorers._base import (
    NotApplicable,
    Score,
    Scored,
    references,
    refusal_score,
    register,
    response_text,
    string_list,
    unanswerable,
)

__all__ = ["normalize_answer", "token_f1"]

TEXT_KINDS = frozenset({"qa", "generation"})
_ARTICLES = re.compile(r"\b(a|an|the)\b")
_PUNCTUATION = str.maketrans("", "", string.punctuation + "‘’“”–—…")


def normalize_answer(text: str) -> str:
    """Lower case, without punctuation or the articles a/an/the, whitespace collapsed."""
    text = text.lower().translate(_PUNCTUATION)
    return " ".join(_ARTICLES.sub(" ", text).split())


def token_f1(prediction: str, reference: str) -> float:
    """The F1 of the normalized tokens shared by ``prediction`` and ``reference`` (both empty:
    1; one empty: 0)."""
    predicted, gold = normalize_answer(prediction).split(), normalize_answer(reference).split()
    if not predicted or not gold:
        return float(predicted == gold)
    common = sum((Counter(predicted) & Counter(gold)).values())
    if common == 0:
        return 0.0
    precision, recall = common / len(predicted), common / len(gold)
    return 2 * precision * recall / (precision + recall)


class _ReferenceScorer:
    """A scorer comparing the response text with each reference, keeping the best."""

    version = "1"

    def __init__(
        self,
        name: str,
        compare: Callable[[str, str], float],
        *,
        binary: bool,
        kinds: frozenset[str] = TEXT_KINDS,
    ) -> None:
        self.name = name
        self.binary = binary
        self.kinds = kinds
        self._compare = compare

    def score(self, item: Scored) -> Score:
        if unanswerable(item):
            return refusal_score(self.name, item, binary=self.binary)
        text = response_text(item)
        refs = references(item)
        values = [float(self._compare(text, ref)) for ref in refs]
        best = max(range(len(values)), key=values.__getitem__)
        return Score(self.name, values[best], self.binary, {"reference": best})


@register("exact")
def _exact() -> _ReferenceScorer:
    return _ReferenceScorer("exact", lambda t, r: float(t.strip() == r.strip()), binary=True)


@register("normalized")
def _normalized() -> _ReferenceScorer:
    return _ReferenceScorer(
        "normalized",
        lambda t, r: float(normalize_answer(t) == normalize_answer(r)),
        binary=True,
    )


@register("token-f1")
def _token_f1() -> _ReferenceScorer:
    return _ReferenceScorer("token-f1", token_f1, binary=False)


@register("rouge-l")
def _rouge_l(*, stemmer: bool = False) -> _ReferenceScorer:
    try:
        from rouge_score import rouge_scorer  # type: ignore[import-untyped]
    except ImportError as exc:
        raise MissingExtra("evaluate", "rouge-score") from exc
    scorer = rouge_scorer.RougeScorer(["rougeL"], use_stemmer=stemmer)

    def compare(text: str, reference: str) -> float:
        return float(scorer.score(reference, text)["rougeL"].fmeasure)

    return _ReferenceScorer("rouge-l", compare, binary=False)


@register("chrf")
def _chrf() -> _ReferenceScorer:
    try:
        from sacrebleu.metrics.chrf import CHRF
    except ImportError as exc:
        raise MissingExtra("evaluate", "sacrebleu") from exc
    metric = CHRF()

    def compare(text: str, reference: str) -> float:
        return float(metric.sentence_score(text, [reference]).score) / 100.0

    return _ReferenceScorer("chrf", compare, binary=False)


class _Regex:
    name = "regex"
    version = "1"
    binary = True
    kinds = frozenset({"qa", "generation", "extraction"})

    def __init__(self, pattern: str | None, ignore_case: bool) -> None:
        self._flags = re.IGNORECASE if ignore_case else 0
        self._pattern = _compile(pattern, self._flags) if pattern is not None else None

    def score(self, item: Scored) -> Score:
        pattern = self._pattern
        if pattern is None:
            given = item.expected.get("regex")
            if not isinstance(given, str):
                raise NotApplicable("The item has no regex to match (expected 'regex').")
            pattern = _compile(given, self._flags)
        if unanswerable(item):
            return refusal_score(self.name, item, binary=True)
        found = pattern.search(response_text(item))
        return Score(self.name, float(found is not None), True, {"pattern": pattern.pattern})


def _compile(pattern: str, flags: int) -> re.Pattern[str]:
    try:
        return re.compile(pattern, flags)
    except re.error as exc:
        raise InvalidInput(f"The regex {pattern!r} is not valid: {exc}.") from exc


@register("regex")
def _regex(*, pattern: str | None = None, ignore_case: bool = False) -> _Regex:
    return _Regex(pattern, ignore_case)


class _Includes:
    name = "includes"
    version = "1"
    binary = True
    kinds = frozenset({"qa", "generation", "extraction"})

    def __init__(self, text: Any, ignore_case: bool) -> None:
        self._targets = string_list(text, "includes text") if text is not None else None
        self._ignore_case = ignore_case

    def score(self, item: Scored) -> Score:
        """Every target is in the text; without targets, one of the references is."""
        targets = self._targets
        given = item.expected.get("includes")
        if targets is None and given is not None:
            try:
                targets = string_list(given, "expected 'includes'")
            except InvalidInput as exc:
                raise NotApplicable(str(exc)) from exc
        if unanswerable(item):
            return refusal_score(self.name, item, binary=True)
        fold: Callable[[str], str] = str.casefold if self._ignore_case else (lambda s: s)
        text = fold(response_text(item))
        if targets is None:
            found = [r for r in references(item) if fold(r) in text]
            return Score(self.name, float(bool(found)), True, {"found": found})
        missing = [t for t in targets if fold(t) not in text]
        return Score(self.name, float(not missing), True, {"missing": missing})


@register("includes")
def _includes(*, text: Any = None, ignore_case: bool = True) -> _Includes:
    return _Includes(text, ignore_case)
