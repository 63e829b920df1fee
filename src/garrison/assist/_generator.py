"""The generator hook: what the assistant needs of a generative model, and how it checks one.

A generator (a registered OpenAI-compatible endpoint, a local Hugging Face model, or a test
double) is any object with:

- ``name`` -- shown in the answer as the generator used;
- ``accredited`` -- the most it may receive: the assistant never sends it a chunk, a question or
  a conversation history whose marking this does not dominate (no write-down to a model);
- ``marking`` -- what its weights are marked; joined into every answer it writes;
- ``context_tokens`` and ``max_new_tokens`` -- its context size and the room kept for its
  answer; ``count_tokens(text)`` counts with its tokenizer (for an endpoint, a conservative
  estimate such as :func:`garrison.assist._text.estimate_tokens`);
- ``generate(messages, content_marking=M)`` -- chat messages in, :class:`Generation` out.
  ``content_marking`` is the join of everything in the messages, for the generator to mark its
  output with (it joins its weights' marking in).

Garrison never trusts the model for a marking: the answer's marking is computed from the context,
the question and the generator's declared marking; the marking a generation reports can only
raise it. Banner lines and portion marks in generated text are removed (the model does not mark
its own sentences), and each generated sentence is post-checked against the context sentences:
one that no context sentence supports is flagged ``unsupported`` (:func:`support`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

import numpy as np

from garrison.assist._context import SourceChunk, SourceSentence
from garrison.assist._text import content_terms, split_sentences
from garrison.core.errors import MarkingError
from garrison.models import HASHING, EmbeddingModel
from garrison.security.markings import (
    Marking,
    find_portion_mark,
    is_banner_candidate,
    parse_marking,
)

__all__ = [
    "SUPPORT_COSINE",
    "SUPPORT_OVERLAP",
    "Generation",
    "Generator",
    "Supported",
    "clean_generated",
    "support",
]

#: A generated sentence is supported when this share of its content terms occurs in one context
#: sentence ...
SUPPORT_OVERLAP = 0.5
#: ... or when its cosine with one context sentence reaches this (semantic embedders only).
SUPPORT_COSINE = 0.8


@dataclass(frozen=True)
class Generation:
    """What a generator returns: its text, and the marking it gives that text."""

    text: str
    marking: Marking


@runtime_checkable
class Generator(Protocol):
    """A generative model the assistant may call (see the module docstring)."""

    name: str
    accredited: Marking
    marking: Marking
    context_tokens: int
    max_new_tokens: int

    def count_tokens(self, text: str) -> int: ...

    def generate(
        self, messages: Sequence[dict[str, str]], *, content_marking: Marking
    ) -> Generation: ...


@dataclass(frozen=True)
class Supported:
    """A generated sentence and the context sentence that best supports it (if any does)."""

    text: str
    source: tuple[SourceChunk, SourceSentence] | None


def clean_generated(text: str) -> list[str]:
    """The sentences of generated text, without banner lines or leading portion marks."""
    out: list[str] = []
    for line in text.splitlines():
        if _is_banner(line.strip()):
            continue
        for span in split_sentences(line):
            sentence = span.text
            found = find_portion_mark(sentence)
            while found is not None:
                sentence = sentence[found[1] :].strip()
                found = find_portion_mark(sentence)
            if sentence:
                out.append(sentence)
    return out


def _is_banner(line: str) -> bool:
    """A whole line that reads as a banner (``SECRET//NOFORN``, or ``UNCLASSIFIED`` alone)."""
    if is_banner_candidate(line):
        return True
    if not line or len(line) > 200 or line != line.upper():
        return False
    try:
        parse_marking(line)
    except MarkingError:
        return False
    return True


def support(
    sentences: Sequence[str],
    chunks: Sequence[SourceChunk],
    embedder: EmbeddingModel | None,
) -> list[Supported]:
    """Each generated sentence with its best supporting context sentence, or ``None``."""
    pairs = [(c, s) for c in chunks for s in c.sentences]
    semantic = embedder is not None and embedder.name != HASHING
    cosines = None
    if semantic and pairs and sentences:
        assert embedder is not None
        try:
            generated = np.asarray(embedder.encode(list(sentences)))
            context = np.asarray(embedder.encode([s.span.text for _, s in pairs]))
            cosines = generated @ context.T
        except (ImportError, OSError, RuntimeError, ValueError):
            cosines = None
    out: list[Supported] = []
    for row, sentence in enumerate(sentences):
        terms = set(content_terms(sentence))
        best: tuple[float, int] | None = None
        for column, (_, source) in enumerate(pairs):
            share = len(terms & set(source.terms)) / len(terms) if terms else 0.0
            cosine = float(cosines[row, column]) if cosines is not None else 0.0
            if share >= SUPPORT_OVERLAP or cosine >= SUPPORT_COSINE:
                value = max(share, cosine)
                if best is None or value > best[0]:
                    best = (value, column)
        out.append(Supported(sentence, pairs[best[1]] if best is not None else None))
    return out
