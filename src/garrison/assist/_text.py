"""Text helpers of the assistant: sentences, content terms, overlap and token estimates (pure).

- sentences: a chunk's text split at sentence ends (``.``, ``!``, ``?`` followed by white space)
  and at blank lines; each keeps its character span in the chunk, so a citation quotes exactly
  what the source says;
- content terms: lower-cased word tokens without English function words (and without the words
  questions are made of: *what*, *does*, *tell* ...), so that overlap measures subject matter;
- overlap: the share of one text's content terms found in another, optionally weighted by
  inverse document frequency over the candidate sentences;
- token estimate: a conservative count for a generator whose tokenizer Garrison does not hold
  (an endpoint): one token per three characters or per word, whichever is larger.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

__all__ = [
    "STOPWORDS",
    "Span",
    "content_terms",
    "estimate_tokens",
    "idf_weights",
    "overlap",
    "split_sentences",
]

_WORD = re.compile(r"\w+")
# A sentence ends at . ! ? (with closing quotes or brackets) before white space, or at a blank
# line; list and table lines end at their line break.
_BOUNDARY = re.compile(r"(?<=[.!?])[\"')\]]*\s+|\n\s*\n|\n(?=\s*(?:[-*•]|\d+[.)])\s)")
#: Longest sentence kept whole (characters); longer runs are cut at word boundaries.
MAX_SENTENCE = 600

#: Function words and question words: they say nothing about what a question is about.
_STOP = """
    a about above after again against all also am an and any are as at be because been before
    being below between both but by can could did do does doing done down during each either
    else ever every few for from further get gets got had has have having he her here hers
    herself him himself his how i if in into is it its itself just know let like made make
    many may me might more most much must my myself near no nor not now of off on once only
    or other our ours ourselves out over own please said same say says she should show so some
    such tell than that the their theirs them themselves then there these they this those
    through to too under until up upon us very was we were what whats when where which while
    who whom whose why will with would yes yet you your yours yourself yourselves
"""
STOPWORDS = frozenset(_STOP.split())


@dataclass(frozen=True)
class Span:
    """A sentence of a text: ``text[start:end]`` with surrounding white space trimmed."""

    start: int
    end: int
    text: str


def split_sentences(text: str) -> list[Span]:
    """The sentences of ``text``, in order, each with its span (empty pieces dropped)."""
    out: list[Span] = []
    start = 0
    for match in _BOUNDARY.finditer(text):
        _add(out, text, start, match.start())
        start = match.end()
    _add(out, text, start, len(text))
    return out


def _add(out: list[Span], text: str, start: int, end: int) -> None:
    while start < end and text[start].isspace():
        start += 1
    while end > start and text[end - 1].isspace():
        end -= 1
    while end - start > MAX_SENTENCE:
        cut = text.rfind(" ", start, start + MAX_SENTENCE)
        if cut <= start:
            cut = start + MAX_SENTENCE
        _add(out, text, start, cut)
        start = cut
        while start < end and text[start].isspace():
            start += 1
    if end > start and _WORD.search(text, start, end):
        out.append(Span(start, end, text[start:end]))


def content_terms(text: str) -> list[str]:
    """Lower-cased word tokens of ``text`` that are not function words, in order."""
    return [w for w in _WORD.findall(text.lower()) if w not in STOPWORDS and len(w) > 1]


def idf_weights(documents: Iterable[Iterable[str]]) -> dict[str, float]:
    """``log(1 + N / df)`` per term over ``documents`` (each an iterable of terms)."""
    df: dict[str, int] = {}
    n = 0
    for terms in documents:
        n += 1
        for term in set(terms):
            df[term] = df.get(term, 0) + 1
    return {term: math.log(1 + n / count) for term, count in df.items()}


def overlap(
    wanted: Sequence[str],
    found: Iterable[str],
    weights: Mapping[str, float] | None = None,
    *,
    default_weight: float = 1.0,
) -> float:
    """The (weighted) share of the distinct terms of ``wanted`` that occur in ``found``, 0..1."""
    distinct = list(dict.fromkeys(wanted))
    if not distinct:
        return 0.0
    present = set(found)
    total = hit = 0.0
    for term in distinct:
        weight = weights.get(term, default_weight) if weights is not None else 1.0
        total += weight
        if term in present:
            hit += weight
    return hit / total if total > 0 else 0.0


def estimate_tokens(text: str) -> int:
    """A conservative token count for a tokenizer Garrison does not hold."""
    return max(len(text) // 3, len(text.split())) + 1
