"""The extractive answerer: the sentences of the context that best answer the question, quoted.

It needs no generative model. Each sentence of the context is scored against the question:

- term overlap: the share of the question's content terms (weighted by inverse document
  frequency over the candidate sentences) that the sentence contains;
- embedding similarity: the cosine between the question and the sentence, embedded with the
  model the index used for those chunks (the one search embeds queries with); when no such model
  can be loaded, term overlap alone decides;
- ``score = 0.65 * overlap + 0.35 * max(cosine, 0)`` (``overlap`` alone without a model).

A sentence is a candidate when it shares at least one content term with the question (or, with
a semantic embedder, when its cosine reaches :data:`COSINE_ALONE`). The question is answered
only when the best candidate reaches the relevance floor (:data:`RELEVANCE_FLOOR`); otherwise
the assistant refuses. The answer is the best candidates, best first, at most
:data:`MAX_SENTENCES`, none below half the best score, duplicates dropped; each sentence keeps
its source portion's marking and cites the span it quotes.

Follow-up questions in a conversation score against the previous question too, at half weight,
so "and when does it leave?" finds what "where is the ferry?" found.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from garrison.assist._context import SourceChunk, SourceSentence
from garrison.assist._text import content_terms, idf_weights, overlap
from garrison.core.errors import GarrisonError
from garrison.models import HASHING, EmbeddingModel, get_model

__all__ = [
    "COSINE_ALONE",
    "MAX_SENTENCES",
    "RELEVANCE_FLOOR",
    "Scored",
    "best_sentences",
    "embedder_for",
    "is_answerable",
    "score_sentences",
]

log = logging.getLogger(__name__)

#: The best sentence must score at least this for the question to be answered.
RELEVANCE_FLOOR = 0.2
#: Cosine at which a sentence is a candidate without sharing a term (semantic embedders only).
COSINE_ALONE = 0.55
#: Most sentences an extractive answer quotes.
MAX_SENTENCES = 3
TERM_WEIGHT = 0.65
HISTORY_WEIGHT = 0.5


@dataclass(frozen=True)
class Scored:
    """A context sentence and how well it answers the question."""

    chunk: SourceChunk
    sentence: SourceSentence
    score: float
    overlap: float
    cosine: float | None
    candidate: bool


def embedder_for(chunks: Sequence[SourceChunk]) -> EmbeddingModel | None:
    """The embedder most of ``chunks`` were embedded with, or None when it cannot be used."""
    names = Counter(c.embedding_model for c in chunks if c.embedding_model)
    if not names:
        return None
    name = sorted(names.items(), key=lambda item: (-item[1], item[0]))[0][0]
    try:
        return get_model(name)
    except (GarrisonError, ImportError, OSError) as exc:
        log.info("assistant ranks by term overlap only: embedder %s unusable (%s)", name, exc)
        return None


def score_sentences(
    question: str,
    chunks: Sequence[SourceChunk],
    embedder: EmbeddingModel | None,
    *,
    history: Sequence[str] = (),
) -> list[Scored]:
    """Every sentence of ``chunks`` scored against ``question`` (and earlier questions)."""
    pairs = [(c, s) for c in chunks for s in c.sentences]
    if not pairs:
        return []
    wanted = content_terms(question)
    earlier = [t for q in history for t in content_terms(q) if t not in wanted]
    weights = idf_weights(s.terms for _, s in pairs)
    unseen = max(weights.values(), default=1.0)
    cosines: list[float | None] = [None] * len(pairs)
    semantic = embedder is not None and embedder.name != HASHING
    if embedder is not None:
        try:
            vectors = embedder.encode([question, *(s.span.text for _, s in pairs)])
            cosines = [float(x) for x in np.asarray(vectors[1:]) @ np.asarray(vectors[0])]
        except (GarrisonError, ImportError, OSError, RuntimeError, ValueError) as exc:
            log.info("assistant ranks by term overlap only: embedding failed (%s)", exc)
    out: list[Scored] = []
    for (chunk, sentence), cosine in zip(pairs, cosines, strict=True):
        share = overlap(wanted, sentence.terms, weights, default_weight=unseen)
        if earlier:
            before = overlap(earlier, sentence.terms, weights, default_weight=unseen)
            share = (share + HISTORY_WEIGHT * before) / (1 + HISTORY_WEIGHT)
        if cosine is None:
            score = share
        else:
            score = TERM_WEIGHT * share + (1 - TERM_WEIGHT) * max(cosine, 0.0)
        candidate = share > 0 or (semantic and cosine is not None and cosine >= COSINE_ALONE)
        out.append(Scored(chunk, sentence, round(score, 6), share, cosine, candidate))
    return out


def is_answerable(scored: Sequence[Scored]) -> bool:
    """Whether some candidate sentence reaches the relevance floor."""
    return any(s.candidate and s.score >= RELEVANCE_FLOOR for s in scored)


def best_sentences(scored: Sequence[Scored], *, limit: int = MAX_SENTENCES) -> list[Scored]:
    """The sentences an extractive answer quotes, best first (ties in context order)."""
    ranked = sorted(
        (s for s in scored if s.candidate and s.score >= RELEVANCE_FLOOR),
        key=lambda s: (-s.score, s.chunk.rank, s.sentence.span.start),
    )
    if not ranked:
        return []
    least = ranked[0].score / 2
    chosen: list[Scored] = []
    seen: set[str] = set()
    for item in ranked:
        if len(chosen) == limit or item.score < least:
            break
        key = " ".join(item.sentence.span.text.lower().split())
        if key in seen:
            continue
        seen.add(key)
        chosen.append(item)
    return chosen
