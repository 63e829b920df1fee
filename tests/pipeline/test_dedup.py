"""Deduplication: library (exact, MinHash/LSH near duplicates), the ``dedup`` stage, the
marking-boundary invariant, rensa-vs-datasketch agreement and the quality floor."""

from __future__ import annotations

import os
import random
import statistics
import subprocess
import sys
import warnings

import numpy as np
import pytest
from bench.dedup import (
    PlantedCorpus,
    garrison_pairs,
    planted_corpus,
    precision_recall,
    true_jaccard,
)
from pydantic import ValidationError

from garrison.pipeline import STAGES, Item
from garrison.pipeline.dedup import (
    estimated_jaccard,
    exact_duplicate_clusters,
    lsh_bands,
    near_duplicate_clusters,
    normalize_for_hash,
    reference_shingle_hashes,
    reference_signature,
    shingle_hashes,
    shingles,
    signature_bytes,
    signature_matrix,
    signatures_from_bytes,
    text_hash,
)
from garrison.pipeline.stages.dedup import DedupParams, DedupStage
from garrison.security.markings import Marking, parse_marking

U = parse_marking("UNCLASSIFIED")
S = parse_marking("SECRET//NOFORN")

BASE = (
    "The quarterly logistics review found that fuel deliveries to the northern depots arrived "
    "two days late on average because the convoy schedule was not updated after the bridge "
    "closure, and the review recommends a weekly schedule check by the depot officers. It also "
    "notes that the spare generator stock at the southern site fell below the agreed minimum "
    "twice in the quarter, and asks the regional supply cell to report stock levels monthly."
)
# One word changed: true 5-shingle Jaccard 0.88 with BASE (72 words).
NEAR = BASE.replace("two days", "three days")
OTHER = (
    "Maintenance crews replaced the radar housing seals after water ingress was found during "
    "the spring inspection; the replacement parts came from the central stores in one week."
)


def item(
    id: str, text: str, marking: Marking = U, *, doc_id: str | None = None, seq: int = 0
) -> Item:
    return Item(
        id=id,
        doc_id=doc_id or f"d-{id}",
        kind="element",
        text=text,
        original_text=text,
        marking=marking,
        element_ids=(id,),
        seq=seq,
    )


def run_stage(items: list[Item], **params: object) -> list[Item]:
    stage = DedupStage(DedupParams.model_validate(params))
    return stage.process(items, stage.open_resources({}))


# -- library -------------------------------------------------------------------------------------


def test_normalize_for_hash() -> None:
    assert normalize_for_hash("  The END.\n\n(said)  'he'  ") == "the end said he"
    assert text_hash("Hello,  World!") == text_hash("hello world")
    assert text_hash("hello world") != text_hash("hello word")


def test_shingles() -> None:
    assert shingles("A b, c d e f", 5) == ["a b c d e", "b c d e f"]
    assert shingles("Too short.", 5) == ["too short"]
    assert shingles("", 5) == [""]
    with pytest.raises(ValueError):
        shingles("x", 0)


def test_signatures_are_deterministic_across_processes() -> None:
    here = signature_matrix([BASE, OTHER]).tolist()
    code = (
        "from garrison.pipeline.dedup import signature_matrix as m;"
        f"print(m([{BASE!r}, {OTHER!r}]).tolist())"
    )
    out = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=True,
        # This checkout's code, whatever the environment's install points at.
        env={"PYTHONHASHSEED": "12345", "PYTHONPATH": os.environ.get("PYTHONPATH", "")},
    )
    assert out.stdout.strip() == str(here)


SHINGLE_CASES = [
    "",
    "a",
    "Too short.",
    "...",
    ". . a",
    "a . .",
    ". a .",
    "A b, c d e f",
    '"Quoted" words, (brackets) and -- dashes -- everywhere!',
    "\u2018Curly\u2019 \u201cquotes\u201d \u2013 dash\u2026 \u00abguillemets\u00bb",
    "non\u00a0breaking\u3000ideographic\u2028line\x1cfile\x85next spaces here",
    "Stra\u00dfe CAF\u00c9 \u0130stanbul \u03a3\u03a3 \U0001f600 emoji words",
    "x" * 100 + " long word then " + "y" * 65 + " end of it",
    "u.s. e.g. don't a.b.c ..inner.. words",
    "lone \ud800 surrogate in a text",
    "a" * 64 + " " + "b" * 63 + ". odd even ab abc abcd " + "\u00e9" * 64 + " " + "z" * 65,
    ",lead trail, '.' !!x!! ...end...",
]


def test_whitespace_table_is_what_split_splits_on() -> None:
    from garrison.pipeline.dedup import _WHITESPACE

    assert sorted(_WHITESPACE) == [chr(c) for c in range(0x110000) if chr(c).isspace()]


@pytest.mark.parametrize("n", [1, 2, 5])
def test_shingle_hashes_equal_the_reference(n: int) -> None:
    texts = [*SHINGLE_CASES, *planted_corpus(20, seed=3).texts]
    bulk = shingle_hashes(texts, n)
    for text, hashes in zip(texts, bulk, strict=True):
        assert hashes.tolist() == reference_shingle_hashes(text, n), text
        # One hash per shingle, equal exactly where the shingles are equal.
        strings = shingles(text, n)
        assert len(strings) == len(hashes)
        assert len(set(strings)) == len(set(hashes.tolist()))


def test_shingle_hashes_across_batches(monkeypatch: pytest.MonkeyPatch) -> None:
    from garrison.pipeline import dedup

    texts = planted_corpus(12, seed=5).texts + SHINGLE_CASES
    whole = [h.tolist() for h in shingle_hashes(texts)]
    monkeypatch.setattr(dedup, "_BATCH_CHARS", 300)  # many small numpy passes
    assert [h.tolist() for h in shingle_hashes(texts)] == whole
    assert shingle_hashes([]) == []


def test_signatures_follow_the_normalized_words() -> None:
    a, b, c = signature_matrix(
        [
            "One two three four five six",
            "ONE two, three (four) five six.",
            "one two three four five sixes",
        ]
    ).tolist()
    assert a == b
    assert a != c


@pytest.mark.parametrize(("num_perm", "shingle_size"), [(128, 5), (64, 2)])
def test_signature_matrix_rows_equal_the_per_document_reference(
    num_perm: int, shingle_size: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    from garrison.pipeline import dedup

    texts = [*SHINGLE_CASES, *planted_corpus(15, seed=7).texts]
    expected = [reference_signature(t, num_perm=num_perm, shingle_size=shingle_size) for t in texts]
    bulk = signature_matrix(texts, num_perm=num_perm, shingle_size=shingle_size)
    assert bulk.shape == (len(texts), num_perm) and bulk.dtype == np.uint32
    assert bulk.tolist() == expected
    # Many small rensa matrices and numpy passes give the same rows.
    monkeypatch.setattr(dedup, "_SIGNATURE_DOCS", 4)
    monkeypatch.setattr(dedup, "_SIGNATURE_CHARS", 700)
    monkeypatch.setattr(dedup, "_BATCH_CHARS", 200)
    assert signature_matrix(texts, num_perm=num_perm, shingle_size=shingle_size).tolist() == (
        expected
    )
    assert signature_matrix([], num_perm=num_perm).shape == (0, num_perm)


def test_signature_bytes_round_trip_and_reject_other_sizes() -> None:
    sigs = signature_matrix([BASE, OTHER, ""])
    states = signature_bytes(sigs)
    assert [len(s) for s in states] == [512, 512, 512]
    assert states[0][:4] == int(sigs[0, 0]).to_bytes(4, "little")
    assert (signatures_from_bytes(states, 128) == sigs).all()
    with pytest.raises(ValueError):
        signatures_from_bytes([states[0][:-4]], 128)
    with pytest.raises(ValueError):
        signatures_from_bytes(states, 64)


def _naive_lsh(
    sigs: np.ndarray, threshold: float
) -> tuple[set[tuple[int, int]], set[tuple[int, int]]]:
    """Every pair sharing one band's values exactly, and those of them verified: all pairs,
    one by one."""
    bands = lsh_bands(threshold, sigs.shape[1])
    rows = sigs.shape[1] // bands
    candidates, verified = set(), set()
    for i in range(len(sigs)):
        for j in range(i + 1, len(sigs)):
            same = sigs[i] == sigs[j]
            if any(same[b * rows : (b + 1) * rows].all() for b in range(bands)):
                candidates.add((i, j))
                if same.mean() >= threshold:
                    verified.add((i, j))
    return candidates, verified


def test_matrix_lsh_equals_all_pairs_banding() -> None:
    from garrison.pipeline.dedup import _candidate_pairs

    corpus = planted_corpus(40, seed=13)
    texts = [*corpus.texts, corpus.texts[0], corpus.texts[0], corpus.texts[3]]  # runs of 3
    sigs = signature_matrix(texts)
    candidates, verified = _naive_lsh(sigs, 0.8)
    first, second = _candidate_pairs(sigs, lsh_bands(0.8, 128))
    assert list(zip(first.tolist(), second.tolist(), strict=True)) == sorted(candidates)
    assert len(candidates) > len(verified) > 20  # some candidates fail verification
    ids = [f"t{k}" for k in range(len(texts))]
    groups = ["a" if k % 3 else "b" for k in range(len(texts))]
    result = near_duplicate_clusters(ids, sigs, groups)
    same = sorted((i, j) for i, j in verified if groups[i] == groups[j])
    cross = sorted((i, j) for i, j in verified if groups[i] != groups[j])
    assert result.pairs == tuple((ids[i], ids[j]) for i, j in same)
    assert result.cross_group_pairs == tuple((ids[i], ids[j]) for i, j in cross)
    with pytest.raises(ValueError):
        near_duplicate_clusters(ids[:-1], sigs, groups[:-1])


def test_lsh_bands_divide_num_perm() -> None:
    for t in (0.3, 0.5, 0.8, 0.95, 1.0):
        for n in (64, 128, 256):
            assert n % lsh_bands(t, n) == 0
    assert lsh_bands(0.8, 128) == 16  # 8 rows: a pair at 0.85 is a candidate 99% of the time
    with pytest.raises(ValueError):
        lsh_bands(0.0, 128)


def test_exact_clusters_stay_within_groups() -> None:
    ids = ["a", "b", "c", "d"]
    texts = ["Same text.", "same  TEXT", "same text", "different"]
    result = exact_duplicate_clusters(ids, texts, ["u", "u", "s", "u"])
    assert result.dup_of == {"b": "a"}
    assert result.cross_group_pairs == (("a", "c"),)


def test_near_clusters_verify_and_stay_within_groups() -> None:
    ids = ["a", "b", "c", "d"]
    sigs = signature_matrix([BASE, NEAR, NEAR, OTHER])
    result = near_duplicate_clusters(ids, sigs, ["u", "u", "s", "u"])
    assert result.dup_of == {"b": "a"}
    assert result.pairs == (("a", "b"),)
    assert set(result.cross_group_pairs) == {("a", "c"), ("b", "c")}


def test_components_join_like_union_find() -> None:
    from garrison.pipeline.dedup import _components, _UnionFind

    rng = random.Random(5)
    for size, edges in [(1, 0), (30, 0), (30, 12), (200, 150), (200, 400)]:
        pairs = [sorted(rng.sample(range(size), 2)) for _ in range(edges)]
        uf = _UnionFind(size)
        for a, b in pairs:
            uf.union(a, b)
        first = np.array([a for a, _ in pairs], dtype=np.int64)
        second = np.array([b for _, b in pairs], dtype=np.int64)
        assert _components(size, first, second).tolist() == [uf.find(i) for i in range(size)]


def test_lengths_and_unique_ids_checked() -> None:
    with pytest.raises(ValueError):
        exact_duplicate_clusters(["a", "a"], ["x", "y"], ["g", "g"])
    with pytest.raises(ValueError):
        exact_duplicate_clusters(["a"], ["x", "y"], ["g", "g"])


# -- stage ---------------------------------------------------------------------------------------


def test_stage_is_registered_and_params_validated() -> None:
    assert STAGES["dedup"] is DedupStage
    assert DedupStage.scope == "corpus"
    for bad in ({"threshold": 0}, {"threshold": 1.5}, {"num_perm": 100}, {"level": "chunk"}):
        with pytest.raises(ValidationError):
            DedupParams.model_validate(bad)


def test_exact_and_near_duplicates_marked() -> None:
    items = [
        item("e1", BASE),
        item("e2", BASE.upper()),
        item("e3", NEAR),
        item("e4", OTHER),
    ]
    out = run_stage(items)
    assert out is items and len(out) == 4  # never deletes
    by = {i.id: i for i in out}
    assert (by["e1"].dup_of, by["e1"].dup_kind) == (None, None)
    assert (by["e2"].dup_of, by["e2"].dup_kind) == ("e1", "exact")
    assert (by["e3"].dup_of, by["e3"].dup_kind) == ("e1", "near")
    assert by["e4"].dup_of is None
    assert all(i.lineage[-1].stage == "dedup" and i.lineage[-1].parents == (i.id,) for i in out)


def test_no_dup_of_across_markings_and_cross_pairs_reported() -> None:
    items = [item("u1", BASE, U), item("s1", BASE, S), item("s2", NEAR, S), item("u2", OTHER, U)]
    by = {i.id: i for i in run_stage(items)}
    assert by["u1"].dup_of is None and by["s1"].dup_of is None
    assert by["s2"].dup_of == "s1"
    for i in by.values():
        if i.dup_of is not None:
            assert by[i.dup_of].marking == i.marking
    # u1 is identical to s1 and near s2: both links are reported, both ways.
    assert by["u1"].extra["dup_marked_differently"] == ["s1", "s2"]
    assert by["s1"].extra["dup_marked_differently"] == ["u1"]
    assert by["s2"].extra["dup_marked_differently"] == ["u1"]
    assert "dup_marked_differently" not in by["u2"].extra


def test_never_crosses_markings_on_random_corpus() -> None:
    rng = random.Random(3)
    markings = [U, S, parse_marking("TOP SECRET//SI//NOFORN")]
    texts = [BASE, NEAR, OTHER, BASE.lower()]
    items = [item(f"i{k}", rng.choice(texts), rng.choice(markings)) for k in range(60)]
    by = {i.id: i for i in run_stage(items)}
    marked = [i for i in by.values() if i.dup_of is not None]
    assert len(marked) > 30
    assert all(by[i.dup_of].marking == i.marking for i in marked if i.dup_of)


def test_canonical_is_deterministic_whatever_the_order() -> None:
    def canon(order: list[int]) -> dict[str, str | None]:
        items = [item(f"x{k}", NEAR if k % 2 else BASE, doc_id=f"d{k}") for k in range(6)]
        return {i.id: i.dup_of for i in run_stage([items[k] for k in order])}

    first = canon(list(range(6)))
    assert first["x0"] is None and all(first[f"x{k}"] == "x0" for k in range(1, 6))
    assert canon([5, 3, 1, 4, 2, 0]) == first


def test_short_texts_only_exact_and_dropped_untouched() -> None:
    items = [item("a", "Thank you."), item("b", "thank you"), item("c", "Thank you all.")]
    dropped = item("z", "Thank you.")
    dropped.dropped = "quality"
    by = {i.id: i for i in run_stage([*items, dropped], min_words=3)}
    assert by["b"].dup_of == "a" and by["c"].dup_of is None
    assert by["z"].dup_of is None and by["z"].lineage == []


def test_exact_and_near_switches() -> None:
    items = [item("a", BASE), item("b", BASE), item("c", NEAR)]
    by = {i.id: i for i in run_stage(items, near=False)}
    assert by["b"].dup_of == "a" and by["c"].dup_of is None
    items = [item("a", BASE), item("b", BASE), item("c", NEAR)]
    by = {i.id: i for i in run_stage(items, exact=False)}
    assert by["b"].dup_kind == "near" and by["c"].dup_of == "a"


def test_signatures_are_cached_on_items_and_reused_without_the_text() -> None:
    from garrison.pipeline.stages.dedup import LIGHT, MINHASH, MINHASH_KEY

    texts = [BASE, NEAR, OTHER]
    first = run_stage([item(f"c{k}", t) for k, t in enumerate(texts)])
    stage = DedupStage(DedupParams())
    for made, text in zip(first, texts, strict=True):
        assert made.extra[MINHASH] == signature_bytes(signature_matrix([text]))[0]
        assert made.extra[MINHASH_KEY] == stage.signature_key()
        assert not stage.needs_text(made)

    def light(made: Item) -> Item:
        bare = item(made.id, "")
        bare.extra = {k: v for k, v in made.extra.items() if k != "dup_marked_differently"}
        bare.extra[LIGHT] = True
        return bare

    again = {i.id: i for i in run_stage([light(m) for m in first])}
    assert (again["c1"].dup_of, again["c1"].dup_kind) == ("c0", "near")
    stale = light(first[1])
    stale.extra[MINHASH_KEY] = "0" * 32
    assert stage.needs_text(stale)
    assert not DedupStage(DedupParams(near=False)).needs_text(stale)
    with pytest.raises(ValueError, match="without its text"):
        run_stage([light(first[0]), stale])


def test_document_level() -> None:
    def doc(d: str, parts: list[str], marks: list[Marking]) -> list[Item]:
        return [
            item(f"{d}-{k}", t, m, doc_id=d, seq=k)
            for k, (t, m) in enumerate(zip(parts, marks, strict=True))
        ]

    items = [
        *doc("A", [BASE, OTHER], [U, S]),
        *doc("B", [NEAR, OTHER], [U, S]),  # near copy of A, same markings
        *doc("C", [BASE, OTHER], [U, U]),  # same text as A, other markings
    ]
    by = {i.id: i for i in run_stage(items, level="document")}
    assert by["A-0"].dup_of is None and by["A-1"].dup_of is None
    # Each item points at the canonical document's first item with its own marking.
    assert (by["B-0"].dup_of, by["B-1"].dup_of) == ("A-0", "A-1")
    assert by["B-0"].dup_kind == "near"
    assert by["C-0"].dup_of is None
    # C matches A exactly and B nearly; the cross-marking links name every item of the other.
    assert by["C-0"].extra["dup_marked_differently"] == ["A-0", "A-1", "B-0", "B-1"]
    assert by["A-1"].extra["dup_marked_differently"] == ["C-0", "C-1"]


# -- rensa vs datasketch, quality floor ------------------------------------------------------------


def test_rensa_estimates_agree_with_datasketch() -> None:
    with warnings.catch_warnings():  # datasketch's own warnings are not ours to fail on
        warnings.simplefilter("ignore")
        from datasketch import MinHash  # type: ignore[import-untyped]

    corpus = planted_corpus(60, seed=11)
    pairs = [(f, i) for i, f in enumerate(corpus.family) if f != i]
    sigs = signature_matrix(corpus.texts)
    ds = []
    for text in corpus.texts:
        m = MinHash(num_perm=128)
        m.update_batch([s.encode() for s in shingles(text)])
        ds.append(m)
    truth = [true_jaccard(corpus.texts[a], corpus.texts[b]) for a, b in pairs]
    r_est = [estimated_jaccard(sigs[a], sigs[b]) for a, b in pairs]
    d_est = [float(ds[a].jaccard(ds[b])) for a, b in pairs]
    assert len(pairs) > 40 and min(truth) < 0.75 < max(truth)
    assert statistics.mean(abs(r - d) for r, d in zip(r_est, d_est, strict=True)) < 0.05
    r_err = statistics.mean(abs(r - t) for r, t in zip(r_est, truth, strict=True))
    d_err = statistics.mean(abs(d - t) for d, t in zip(d_est, truth, strict=True))
    assert r_err < 0.04 and r_err < d_err + 0.01


@pytest.fixture(scope="module")
def corpus() -> PlantedCorpus:
    return planted_corpus(300)


def test_planted_corpus_is_what_it_claims(corpus: PlantedCorpus) -> None:
    assert len(corpus.positive_jaccards) > 150 and min(corpus.positive_jaccards) >= 0.8
    assert len(corpus.negative_jaccards) > 100
    assert all(0.5 <= j <= 0.75 for j in corpus.negative_jaccards)


def test_quality_floor(corpus: PlantedCorpus) -> None:
    precision, recall = precision_recall(garrison_pairs(corpus.texts), corpus.truth)
    assert precision >= 0.95
    assert recall >= 0.95


def test_loose_threshold_fails_precision(corpus: PlantedCorpus) -> None:
    # The planted negatives (Jaccard 0.5-0.75) are real: a 0.5 threshold takes them.
    precision, _ = precision_recall(garrison_pairs(corpus.texts, 0.5), corpus.truth)
    assert precision < 0.95
