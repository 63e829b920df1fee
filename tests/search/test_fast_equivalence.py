"""The fast full-text path gives exactly what the plain one does: same hits, order, total, facets.

The reference here is the straightforward implementation: every matching index row fetched whole,
re-checked row by row against the catalog, each text tokenized in full for BM25 from the
readable rows, facets counted row by row. Random corpora (hypothesis) with random portion
markings, chunks re-marked or removed in the catalog behind the index, random subjects, queries
and filters.
"""

from __future__ import annotations

import math
import os
import re
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from sqlalchemy import delete, select

from garrison.ingest.engine import IngestOptions, ingest_paths
from garrison.pipeline.executor import run_pipeline
from garrison.pipeline.spec import parse_pipeline
from garrison.search import _search as engine
from garrison.search import search
from garrison.security.markings import dominates
from garrison.store.bindings import Binder, spec_for, update_bound
from garrison.store.catalog_reads import CatalogView, catalog_view
from garrison.store.index import ChunkIndex
from garrison.store.models import ChunkRow, InternedMarking
from garrison.store.session import Session, SubjectSpec
from garrison.store.verified_rows import verified_rows
from garrison.store.workspace import Workspace

FAST = """
name: fast
stages:
  - normalize: {}
  - chunk: {model: hashing, max_tokens: 24, overlap_tokens: 4}
  - embed: {model: hashing}
"""
#: A small vocabulary, so that many chunks match and scores tie; some words change under
#: lower-casing in ways a byte-wise tokenizer would get wrong.
WORDS = ["convoy", "depot", "harbor", "Convoy", "HARBOR", "straße", "café", "İzmir", "pallet"]
PORTIONS = ["U", "C", "S", "S//NF", "S//REL TO USA, GBR"]
SUBJECTS = {
    "uusa": ("U", "USA"),
    "cgbr": ("C", "GBR"),
    "susa": ("S", "USA"),
    "sgbr": ("S", "GBR"),
}
QUERIES = ["convoy", "harbor depot", "Convoy convoy pallet", "straße café", "izmir harbor", "zz"]
_TOKEN = re.compile(r"\w+")


def _terms(text: str) -> list[str]:
    return _TOKEN.findall(text.lower())


def _reference_bm25(query: str, rows: Sequence[dict[str, Any]], size: int) -> list[str]:
    wanted = list(dict.fromkeys(_terms(query)))
    if not rows or not wanted:
        return [str(r["chunk_id"]) for r in rows]
    tokens = [Counter(_terms(str(r["text"]))) for r in rows]
    lengths = [sum(t.values()) for t in tokens]
    average = max(sum(lengths) / len(lengths), 1.0)
    df = {w: sum(1 for t in tokens if w in t) for w in wanted}
    k1, b = 1.2, 0.75
    scored = []
    for row, counts, length in zip(rows, tokens, lengths, strict=True):
        score = 0.0
        for w in wanted:
            tf = counts.get(w, 0)
            if tf:
                idf = math.log(1 + (size - df[w] + 0.5) / (df[w] + 0.5))
                score += idf * tf * (k1 + 1) / (tf + k1 * (1 - b + b * length / average))
        scored.append((-score, str(row["chunk_id"])))
    scored.sort()
    return [c for _, c in scored]


def _reference_facets(view: CatalogView, rows: Sequence[dict[str, Any]]) -> dict[str, Any]:
    counts: dict[str, Counter[str]] = {
        "marking": Counter(),
        "language": Counter(),
        "source": Counter(),
        "media_type": Counter(),
    }
    for row in rows:
        counts["marking"][view.marking(int(row["marking_id"])).banner()] += 1
        if row.get("language"):
            counts["language"][str(row["language"])] += 1
        if view.reads_document(str(row["doc_id"])):
            for key in ("source", "media_type"):
                if row.get(key):
                    counts[key][str(row[key])] += 1
    return {name: dict(sorted(c.items())) for name, c in counts.items()}


def _reference(
    session: Session, query: str, filters: dict[str, str], where: str, size: int
) -> tuple[int, dict[str, Any], list[str]]:
    """(total, facets, full-text order) the plain way, for the index filter the search used."""
    index = ChunkIndex(session.workspace.root / "index")
    columns = [
        "chunk_id",
        "doc_id",
        "marking_id",
        "text",
        "doc_marking_id",
        "source",
        "media_type",
        "language",
    ]
    with catalog_view(session) as view:
        allowed = set(view.readable)
        if "max_marking" in filters:
            ceiling = session.parse_marking(filters["max_marking"])
            allowed = {m for m in allowed if dominates(ceiling, view.marking(m))}
        doc_level = any(k in ("source", "media_type") or k.startswith("ingested_") for k in filters)
        current = view.current(index.full_text(query, where, limit=size, columns=columns))
        matched = [
            r
            for r in current
            if r["marking_id"] in allowed
            and (not doc_level or view.reads_document(str(r["doc_id"])))
        ]
        return len(matched), _reference_facets(view, matched), _reference_bm25(query, matched, size)


corpora = st.lists(
    st.tuples(
        st.lists(
            st.tuples(st.sampled_from(PORTIONS), st.lists(st.sampled_from(WORDS), max_size=14)),
            min_size=1,
            max_size=3,
        ),
        st.sampled_from(["alpha", "beta"]),
    ),
    min_size=2,
    max_size=6,
)
searches = st.lists(
    st.tuples(
        st.sampled_from(sorted(SUBJECTS)),
        st.sampled_from(QUERIES),
        st.sampled_from(
            [
                {},
                {"max_marking": "CONFIDENTIAL"},
                {"source": "alpha"},
                {"media_type": "text/plain"},
                {"language": "en"},
                {"ingested_from": "2000-01-01"},
                {"doc": "first"},
            ]
        ),
        st.integers(min_value=1, max_value=12),
    ),
    min_size=4,
    max_size=8,
)


def _build(root: Path, corpus: list[tuple[list[tuple[str, list[str]]], str]]) -> Workspace:
    ws = Workspace.init(root / "ws", system_high="SECRET//NOFORN")
    system = ws.session()
    for n, (paragraphs, source) in enumerate(corpus):
        folder = root / f"in{n}"
        folder.mkdir()
        body = "\n\n".join(f"({portion}) {' '.join(words)} report" for portion, words in paragraphs)
        (folder / f"d{n}.txt").write_text(body + "\n")
        ingest_paths(
            system, [str(folder)], IngestOptions(default_marking="UNCLASSIFIED", source=source)
        )
    run_pipeline(system, parse_pipeline(FAST, source="fast.yaml"))
    for name, (clearance, nation) in SUBJECTS.items():
        system.add_user(
            name, SubjectSpec(clearance=clearance, citizenship=nation, roles=("viewer",))
        )
    return ws


def _disturb(ws: Workspace, remark: int, remove: int) -> None:
    """Re-mark some chunks in the catalog (as a rising document marking does) and remove
    others, behind the index."""
    with ws.catalog.transaction() as orm:
        ids = sorted(orm.scalars(select(ChunkRow.id)))
        markings = sorted(orm.scalars(select(InternedMarking.id)))
        if remark and ids:
            chosen = ids[: remark % (len(ids) + 1)]
            for i, chunk_id in enumerate(chosen):
                update_bound(orm, ChunkRow, [chunk_id], {"marking_id": markings[i % len(markings)]})
        if remove and len(ids) > remark:
            gone = ids[-(remove % 3) :] if remove % 3 else []
            if gone:
                orm.execute(delete(ChunkRow).where(ChunkRow.id.in_(gone)))


@settings(
    max_examples=8,
    deadline=None,
    # Each example builds a workspace: report the first failure found instead of shrinking it.
    phases=[Phase.explicit, Phase.reuse, Phase.generate],
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(corpus=corpora, plan=searches, remark=st.integers(0, 6), remove=st.integers(0, 5))
def test_the_fast_path_matches_the_reference(
    tmp_path_factory: Any,
    corpus: list[tuple[list[tuple[str, list[str]]], str]],
    plan: list[tuple[str, str, dict[str, str], int]],
    remark: int,
    remove: int,
) -> None:
    ws = _build(tmp_path_factory.mktemp("fast"), corpus)
    try:
        _disturb(ws, remark, remove)
        first_doc = sorted(str(d) for d in ChunkIndex(ws.root / "index").values("doc_id", "TRUE"))
        seen: list[tuple[str, int]] = []
        original = ChunkIndex.full_text_columns

        def spy(self: ChunkIndex, query: str, where: str, **kw: Any) -> Any:
            seen.append((where, kw["limit"]))
            return original(self, query, where, **kw)

        ChunkIndex.full_text_columns = spy  # type: ignore[method-assign]
        try:
            for name, query, filters, k in plan:
                chosen = dict(filters)
                if "doc" in chosen:
                    chosen["doc"] = first_doc[0]
                session = ws.session(name)
                seen.clear()
                result = search(session, query, k=k, filters=chosen)
                if not seen:  # nothing to rank at all (no readable rows pass the filters)
                    assert result.total == 0 and result.hits == []
                    continue
                where, size = seen[0]
                total, facets, order = _reference(session, query, chosen, where, size)
                assert result.total == total
                assert result.facets == facets
                with catalog_view(session) as view:
                    ranked = engine._search(
                        session, view, ChunkIndex(ws.root / "index"), query, k, chosen
                    )
                assert not isinstance(ranked, engine.SearchResult)
                assert ranked.text_ranked == order
                # Fused hits: the reference order with the same vector ranking, each re-checked.
                vector = engine._vector_order(
                    session,
                    ChunkIndex(ws.root / "index"),
                    query,
                    ranked.vector_where,
                    max(k, engine.VECTOR_DEPTH),
                    ("chunk_id",),
                )
                fused = engine.rrf([order, [str(r["chunk_id"]) for r in vector or []]])
                with catalog_view(session) as view:
                    expected = [
                        c for c, _ in fused if view.readable_chunk(c, ranked.allowed) is not None
                    ][:k]
                assert [h.chunk_id for h in result.hits] == expected
        finally:
            ChunkIndex.full_text_columns = original  # type: ignore[method-assign]
    finally:
        ws.close()


def test_remembered_bindings_never_pass_a_row_that_does_not_verify() -> None:
    """Rows seen to verify are remembered by exact value and type: a changed text, or a marking
    id that only compares equal (``True``, ``1.0`` for ``1``), is checked again and refused."""
    binder = Binder(os.urandom(32))
    failures: list[tuple[str, str]] = []
    binder.on_failure = lambda table, rid: failures.append((table, rid))
    spec = spec_for("chunks")
    assert spec is not None
    good: dict[str, Any] = {
        "id": "c1",
        "marking_id": 1,
        "section_marking_ids": [1, None],
        "doc_id": "d1",
        "text": "the convoy",
        "element_ids": ["e1"],
        "section_path": ["Intro"],
    }
    good["binding"] = binder.bind_values(spec, good.__getitem__)

    def row(**changes: Any) -> Any:
        return SimpleNamespace(_mapping={**good, **changes})

    for _ in range(2):  # checked, then remembered
        assert len(verified_rows(binder, [row()], ChunkRow)) == 1
    assert failures == []
    for changes in (
        {"text": "the convoy!"},
        {"marking_id": True},
        {"marking_id": 1.0},
        {"section_marking_ids": [True, None]},
        {"section_marking_ids": [1.0, None]},
    ):
        kept = verified_rows(binder, [row(), row(**changes), row()], ChunkRow)
        assert [r._mapping == good for r in kept] == [True, True], changes
    assert failures == [("chunks", "c1")]  # reported (once per row and binder)
    # Another workspace's key remembers nothing of this one's.
    assert verified_rows(Binder(os.urandom(32)), [row()], ChunkRow) == []
