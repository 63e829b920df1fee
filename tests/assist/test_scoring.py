"""Sentence scoring: term overlap with or without an embedder, and the relevance floor."""

from __future__ import annotations

from pathlib import Path

import pytest

from garrison.assist._context import SourceChunk, SourceSentence
from garrison.assist._extractive import (
    RELEVANCE_FLOOR,
    best_sentences,
    embedder_for,
    is_answerable,
    score_sentences,
)
from garrison.assist._generator import support
from garrison.assist._text import content_terms, split_sentences
from garrison.models import get_model
from garrison.security.markings import parse_marking

TEXTS = [
    "The convoy reached the fuel depot at noon.",
    "A storm closed the river bridge for the night.",
    "Radar patrols watch the northern border.",
]


def _chunk(text: str, model: str | None, rank: int = 0) -> SourceChunk:
    marking = parse_marking("UNCLASSIFIED")
    sentences = [
        SourceSentence(span, marking, {}, tuple(content_terms(span.text)))
        for span in split_sentences(text)
    ]
    return SourceChunk(rank, f"c{rank}", None, text, marking, [], model, sentences)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> str:
    from tests.models.tiny import tiny_sentence_transformer

    folder = tiny_sentence_transformer(tmp_path_factory.mktemp("tiny") / "st", TEXTS)
    return f"local:{Path(folder)}"


def test_an_unusable_embedder_falls_back_to_term_overlap() -> None:
    chunks = [_chunk(" ".join(TEXTS), "no-such-model")]
    assert embedder_for(chunks) is None
    assert embedder_for([_chunk(TEXTS[0], None)]) is None
    scored = score_sentences("When did the convoy reach the depot?", chunks, None)
    assert all(s.cosine is None for s in scored)
    best = best_sentences(scored)
    assert best[0].sentence.span.text == TEXTS[0] and best[0].score == round(best[0].overlap, 6)
    assert len(best) == 1  # the others share no content word
    assert not is_answerable(score_sentences("xylophone quartz", chunks, None))


def test_the_index_embedder_adds_cosine_similarity(tiny: str) -> None:
    chunks = [_chunk(" ".join(TEXTS), tiny)]
    embedder = embedder_for(chunks)
    assert embedder is not None and embedder is get_model(tiny)
    scored = score_sentences("convoy fuel depot", chunks, embedder)
    assert all(s.cosine is not None for s in scored)
    top = best_sentences(scored)[0]
    assert top.sentence.span.text == TEXTS[0] and top.score >= RELEVANCE_FLOOR
    assert top.score != top.overlap  # both signals count


def test_history_weighs_in_at_half() -> None:
    chunks = [_chunk(" ".join(TEXTS), None)]
    alone = score_sentences("and later?", chunks, None)
    follow = score_sentences("and later?", chunks, None, history=["the river bridge storm"])
    assert not is_answerable(alone)
    assert best_sentences(follow)[0].sentence.span.text == TEXTS[1]


def test_support_needs_half_the_words_of_one_sentence() -> None:
    chunks = [_chunk(" ".join(TEXTS), None)]
    found = support(
        ["The convoy reached the depot.", "Pigs fly over the depot tonight."], chunks, None
    )
    assert found[0].source is not None and found[0].source[1].span.text == TEXTS[0]
    assert found[1].source is None
