"""The full-text side of a search: every readable match, re-checked, ranked and counted.

The semantics are those of :mod:`garrison.search._search`; this module makes them cheap when
many chunks match. The index is asked only for the narrow columns ranking and facets need (no
text); the catalog re-check is one set-based query per 500 chunks, and its verified rows carry
the chunk text BM25 counts terms in (the text the index holds is written from the same chunk);
document markings are read in bulk; term frequencies are counted for the query's terms only,
and scores are computed column-wise in the same floating-point steps as the plain formula.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from garrison.store.catalog_reads import CatalogView
from garrison.store.verified_rows import current_chunks, verified_rows

__all__ = ["NARROW", "Matches", "bm25_order", "facets", "matches", "terms"]

#: Index columns a full-text match is ranked and faceted by (the text comes from the catalog).
NARROW = ("chunk_id", "doc_id", "marking_id", "source", "media_type", "language")
_TOKEN = re.compile(r"\w+")
_K1, _B = 1.2, 0.75


def terms(text: str) -> list[str]:
    """Lower-cased word tokens (the unit of BM25 statistics and highlighting)."""
    return _TOKEN.findall(text.lower())


@dataclass(frozen=True)
class Matches:
    """The readable current matches, in the index's order, as parallel columns."""

    chunk_ids: list[str]
    doc_ids: list[str]
    marking_ids: list[int]
    texts: list[str]
    fields: dict[str, list[Any]]

    def __len__(self) -> int:
        return len(self.chunk_ids)


def matches(
    view: CatalogView,
    rows: Mapping[str, Sequence[Any]],
    allowed: Collection[int],
    *,
    doc_level: bool,
    labelled: Collection[str] | None,
) -> Matches:
    """The index's full-text rows (columns of :data:`NARROW`) as the catalog has them now,
    kept when their current marking is ``allowed``, their document readable (``doc_level``:
    a document-metadata filter was given) and they carry a wanted label (``labelled``)."""
    ids = [str(c) for c in rows["chunk_id"]]
    now = current_chunks(view, ids)
    if doc_level:
        view.load_documents([found[1] for found in now.values()], verified_rows)
    keep: list[int] = []
    out_ids: list[str] = []
    out_docs: list[str] = []
    out_markings: list[int] = []
    out_texts: list[str] = []
    for position, chunk_id in enumerate(ids):
        found = now.get(chunk_id)
        if found is None:
            continue
        marking_id, doc_id, text = found
        if marking_id not in allowed:
            continue
        if doc_level and not view.reads_document(str(doc_id)):
            continue
        if labelled is not None and chunk_id not in labelled:
            continue
        keep.append(position)
        out_ids.append(chunk_id)
        out_docs.append(str(doc_id))
        out_markings.append(int(marking_id))
        out_texts.append(str(text))
    fields = {
        name: [rows[name][i] for i in keep]
        for name in ("source", "media_type", "language")
        if name in rows
    }
    return Matches(out_ids, out_docs, out_markings, out_texts, fields)


def bm25_order(query: str, found: Matches, size: int) -> list[str]:
    """The matched chunk ids ordered by BM25 from readable rows only (``size`` of them), best
    first, ties by chunk id. The same numbers as the plain per-row formula: lengths are word
    counts, term frequencies are counted for the query's words, and every score is summed over
    the query's words in order."""
    wanted = list(dict.fromkeys(terms(query)))
    if not len(found) or not wanted:
        return list(found.chunk_ids)
    import numpy as np

    lowered = [t.lower() for t in found.texts]
    lengths = np.fromiter((len(_TOKEN.findall(t)) for t in lowered), dtype=np.int64)
    average = max(int(lengths.sum()) / len(lengths), 1.0)
    # A word of the query is a token of the text exactly where it is bounded by non-word
    # characters: the same counts as tokenizing the whole text.
    pattern = re.compile(r"(?<!\w)(?:" + "|".join(re.escape(w) for w in wanted) + r")(?!\w)")
    counts = [Counter(pattern.findall(t)) for t in lowered]
    norm = _K1 * (1 - _B + _B * lengths.astype(np.float64) / average)
    scores = np.zeros(len(lowered), dtype=np.float64)
    for w in wanted:
        tf = np.fromiter((c.get(w, 0) for c in counts), dtype=np.int64, count=len(counts))
        df = int(np.count_nonzero(tf))
        if not df:
            continue
        idf = math.log(1 + (size - df + 0.5) / (df + 0.5))
        tf_f = tf.astype(np.float64)
        part = idf * tf_f * (_K1 + 1) / (tf_f + norm)
        scores = np.where(tf > 0, scores + part, scores)
    # Best score first, ties by chunk id (code point order, as Python compares strings).
    order = np.lexsort((np.array(found.chunk_ids, dtype=str), -scores))
    return [found.chunk_ids[i] for i in order.tolist()]


def facets(view: CatalogView, found: Matches) -> dict[str, dict[str, int]]:
    """Counts over the matches (already re-checked against the catalog). Source and media type
    are document metadata: counted only for chunks whose document the reader may read now."""
    by_marking = Counter(found.marking_ids)
    counts: dict[str, Counter[str]] = {
        "marking": Counter(),
        "language": Counter(),
        "source": Counter(),
        "media_type": Counter(),
    }
    for marking_id, n in by_marking.items():
        counts["marking"][view.marking(marking_id).banner()] += n
    for value in found.fields.get("language", ()):
        if value:
            counts["language"][str(value)] += 1
    view.load_documents(found.doc_ids, verified_rows)
    reads = {d: view.reads_document(d) for d in set(found.doc_ids)}
    for key in ("source", "media_type"):
        values = found.fields.get(key)
        if values is None:
            continue
        for doc_id, value in zip(found.doc_ids, values, strict=True):
            if value and reads[doc_id]:
                counts[key][str(value)] += 1
    return {name: dict(sorted(c.items())) for name, c in counts.items()}
