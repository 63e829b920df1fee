"""The pipeline's sink: what a run produced, written to the catalog and the chunk index.

One transaction per batch of documents (``garrison.store.pipeline_state.write_derived``): the
documents' previous element states, chunks and pipeline findings are replaced by the new ones,
after the batch's audit event is on disk. The
chunk index (LanceDB) is updated for the same documents right after the commit.

An index row carries two markings: its chunk's (``marking_id``: the text) and its vector's
(``vector_marking_id``: the join of the chunk's and the embedder's marking).

Markings are written as their one object per distinct marking for the session
(:func:`canonical_markings`): a stage makes a new object for each chunk's join, and the session
keeps every object it interns (its marking ids are cached by object), so writing fresh objects
would grow the session with every chunk of a run.
"""

from __future__ import annotations

import threading
import weakref
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC
from typing import Any

from garrison.core.clock import utc_now
from garrison.pipeline._stage import Item
from garrison.pipeline.stages.chunk import COMPILATION
from garrison.pipeline.stages.classify import PREDICTIONS
from garrison.pipeline.stages.dedup import (
    MINHASH,
    MINHASH_KEY,
    TEXT_HASH,
    WORD_COUNT,
    marking_key,
)
from garrison.security.markings import Marking, join
from garrison.store.models import DocumentRow
from garrison.store.pipeline_state import (
    PIPELINE_FINDINGS,
    delete_derived,
    mark_indexed,
    mark_unindexed,
    write_derived,
)
from garrison.store.predictions import prediction_rows
from garrison.store.session import Session

__all__ = [
    "PIPELINE_FINDINGS",
    "DocKeys",
    "Written",
    "delete_derived",
    "markings_of_batch",
    "write_batch",
]

#: Index writes of concurrent writers go one at a time (per process): the catalog writes of
#: several batches overlap, the LanceDB deletes and appends do not.
_INDEX_LOCK = threading.Lock()


@dataclass(frozen=True)
class DocKeys:
    """The run keys a document's derived records were made under (see the executor)."""

    head_key: str | None
    tail_key: str | None
    pipeline: str = ""
    #: The predict stages' key (see the executor): None when the pipeline has none.
    predict_key: str | None = None


@dataclass
class Written:
    documents: int = 0
    chunks: int = 0
    embeddings: int = 0
    predictions: int = 0
    marked_differently: int = 0
    failed: int = 0


class _Canonical:
    """One marking object per distinct marking (same canonical ``to_dict()``) for a session."""

    def __init__(self) -> None:
        self._by_key: dict[str, Marking] = {}
        self._lock = threading.Lock()

    def of(self, marking: Marking) -> Marking:
        key = marking_key(marking)
        with self._lock:
            return self._by_key.setdefault(key, marking)

    def items(self, elements: Sequence[Item], chunks: Sequence[Item]) -> None:
        """Give the batch's items (and their predictions) the canonical marking objects."""
        seen: dict[int, Marking] = {}

        def of(marking: Marking) -> Marking:
            found = seen.get(id(marking))
            if found is None:
                found = seen[id(marking)] = self.of(marking)
            return found

        for item in (*elements, *chunks):
            item.marking = of(item.marking)
            if item.embedding_marking is not None:
                item.embedding_marking = of(item.embedding_marking)
            for p in item.extra.get(PREDICTIONS, ()):
                p["marking"] = of(p["marking"])


_CANONICAL: weakref.WeakKeyDictionary[Session, _Canonical] = weakref.WeakKeyDictionary()
_CANONICAL_LOCK = threading.Lock()


def canonical_markings(session: Session) -> _Canonical:
    """The session's table of canonical marking objects (made on first use)."""
    with _CANONICAL_LOCK:
        found = _CANONICAL.get(session)
        if found is None:
            found = _CANONICAL[session] = _Canonical()
        return found


def markings_of_batch(
    elements: Sequence[Item],
    chunks: Sequence[Item],
    all_items: Mapping[str, Item],
    canonical: _Canonical | None = None,
) -> list[Marking]:
    """Every marking :func:`write_batch` will intern for this batch (so concurrent writers can
    have them interned first, by one thread, and never race to insert the same one); with
    ``canonical``, the items get its marking objects first."""
    if canonical is not None:
        canonical.items(elements, chunks)
    out = [i.marking for i in elements] + [c.marking for c in chunks]
    out += [p["marking"] for i in (*elements, *chunks) for p in i.extra.get(PREDICTIONS, ())]
    out += [c.embedding_marking for c in chunks if c.embedding_marking is not None]
    for item in elements:
        for other_id in item.extra.get("dup_marked_differently", ()):
            other = all_items.get(other_id)
            if other is not None:
                both = join(item.marking, other.marking)
                out.append(both if canonical is None else canonical.of(both))
    return out


def write_batch(
    session: Session,
    job_id: str,
    elements: Sequence[Item],
    chunks: Sequence[Item],
    all_items: Mapping[str, Item],
    *,
    keys: Mapping[str, DocKeys] | None = None,
) -> Written:
    """Replace the derived records of the batch's documents with ``elements`` and ``chunks``.

    The batch's documents are those of its items plus those in ``keys`` (a document with no
    readable element still records that it was done). With ``keys``, each document's run keys
    are stored in the same transaction, ``indexed`` false until the index holds its rows.
    """
    doc_ids = sorted({i.doc_id for i in elements} | {c.doc_id for c in chunks} | set(keys or {}))
    written = Written()
    if not doc_ids:
        return written
    now = utc_now()
    canonical = canonical_markings(session)
    canonical.items(elements, chunks)
    joins = _Joins(canonical)
    index_rows: list[dict[str, Any]] = []
    with write_derived(session, job_id, doc_ids) as batch:
        states: list[dict[str, Any]] = []
        findings: list[dict[str, Any]] = []
        for item in elements:
            marking_id = batch.intern(item.marking)
            states.append(
                {
                    "element_id": item.id,
                    "doc_id": item.doc_id,
                    "run_id": job_id,
                    "marking_id": marking_id,
                    "text": item.text,
                    "language": item.language,
                    "language_confidence": item.language_confidence,
                    "quality": dict(item.quality),
                    "flags": list(item.flags),
                    "pii": [f.to_dict() for f in item.pii],
                    "dropped": item.dropped,
                    "dup_of": item.dup_of,
                    "dup_kind": item.dup_kind,
                    "failed": item.failed,
                    "lineage": [step.to_dict() for step in item.lineage],
                    "minhash_key": item.extra.get(MINHASH_KEY),
                    "minhash": item.extra.get(MINHASH),
                    "text_hash": item.extra.get(TEXT_HASH),
                    "word_count": item.extra.get(WORD_COUNT),
                }
            )
            if item.failed:
                written.failed += 1
                findings.append(
                    {
                        "doc_id": item.doc_id,
                        "element_id": item.id,
                        "kind": "stage-failed",
                        "detail": item.failed[:500],
                        "job_id": job_id,
                        "marking_id": None,
                        "created_at": now,
                    }
                )
            for other_id in item.extra.get("dup_marked_differently", ()):
                other = all_items.get(other_id)
                if other is None:
                    continue
                # The finding reveals both records, so it is marked with their join.
                both = joins.of(item.marking, other.marking)
                written.marked_differently += 1
                findings.append(
                    {
                        "doc_id": item.doc_id,
                        "element_id": item.id,
                        "kind": "duplicate-marked-differently",
                        "detail": f"near-identical to element {other.id} of document "
                        f"{other.doc_id}, marked differently",
                        "job_id": job_id,
                        "marking_id": batch.intern(both),
                        "created_at": now,
                    }
                )
        chunk_rows: list[dict[str, Any]] = []
        # Document-level search fields, carried by the index under the document's own marking.
        docs = batch.documents
        for chunk in chunks:
            marking_id = batch.intern(chunk.marking)
            for found in chunk.extra.get(COMPILATION, ()):
                # Marked like the chunk: only its readers learn that it combines the parts.
                findings.append(
                    {
                        "doc_id": chunk.doc_id,
                        "element_id": None,
                        "kind": found["kind"],
                        "detail": f"chunk {chunk.id} {found['detail']}",
                        "job_id": job_id,
                        "marking_id": marking_id,
                        "created_at": now,
                    }
                )
            chunk_rows.append(
                {
                    "id": chunk.id,
                    "doc_id": chunk.doc_id,
                    "seq": chunk.seq,
                    "run_id": job_id,
                    "marking_id": marking_id,
                    "text": chunk.text,
                    "token_count": chunk.token_count,
                    "element_ids": list(chunk.element_ids),
                    "section_path": list(chunk.section_path),
                    "section_marking_ids": _section_ids(chunk, docs.get(chunk.doc_id)),
                    "embedding_model": chunk.embedding_model,
                    "lineage": [step.to_dict() for step in chunk.lineage],
                    "created_at": now,
                }
            )
            if chunk.embedding is not None and not chunk.dropped:
                # The vector is marked on its own: the join of its chunk's and its model's.
                vector_marking = joins.of(chunk.marking, chunk.embedding_marking or chunk.marking)
                index_rows.append(
                    {
                        "chunk_id": chunk.id,
                        "doc_id": chunk.doc_id,
                        "marking_id": marking_id,
                        "vector_marking_id": batch.intern(vector_marking),
                        "text": chunk.text,
                        "model": chunk.embedding_model or "",
                        "vector": [float(x) for x in chunk.embedding],
                        **_search_fields(chunk, docs.get(chunk.doc_id), all_items),
                    }
                )
        # Each prediction is marked with the join of its item's and its classifier's marking.
        predictions = prediction_rows(
            session,
            batch.orm,
            job_id,
            (
                (item.kind, item.id, item.doc_id, p)
                for item in (*elements, *chunks)
                if not (item.kind == "chunk" and item.dropped)
                for p in item.extra.get(PREDICTIONS, ())
            ),
        )
        batch.add(
            states=states,
            chunks=chunk_rows,
            findings=findings,
            predictions=predictions,
            keys=[
                {
                    "doc_id": doc_id,
                    "pipeline": k.pipeline,
                    "head_key": k.head_key,
                    "tail_key": k.tail_key,
                    "predict_key": k.predict_key,
                    "updated_at": now,
                }
                for doc_id, k in (keys or {}).items()
            ],
        )
    with _INDEX_LOCK:
        lost = session.workspace.index.replace_documents(doc_ids, index_rows)
    # Rows of other documents dropped with an index of another vector size: redo them later.
    mark_unindexed(session, lost)
    if keys:
        mark_indexed(session, keys, job_id)
    written.documents = len(doc_ids)
    written.chunks = len(chunk_rows)
    written.embeddings = len(index_rows)
    written.predictions = len(predictions)
    return written


class _Joins:
    """Joins of marking pairs, each pair computed once per batch (a batch's items share a few
    marking objects, and a join is far dearer than a lookup). Keyed by the objects, which the
    cache holds, so an id is never reused for another marking while it lives."""

    def __init__(self, canonical: _Canonical) -> None:
        self._done: dict[tuple[int, int], tuple[Marking, Marking, Marking]] = {}
        self._canonical = canonical

    def of(self, a: Marking, b: Marking) -> Marking:
        key = (id(a), id(b))
        hit = self._done.get(key)
        if hit is None:
            hit = self._done[key] = (a, b, self._canonical.of(join(a, b)))
        return hit[2]


def _section_ids(chunk: Item, doc: DocumentRow | None) -> list[int | None]:
    """Each heading's marking id; one not known is the document's marking (fail closed: a
    reader who may not read the document gets no headings)."""
    ids = list(chunk.section_marking_ids)
    fallback = doc.marking_id if doc is not None else None
    return [
        (ids[i] if i < len(ids) and ids[i] is not None else fallback)
        for i in range(len(chunk.section_path))
    ]


def _search_fields(
    chunk: Item, doc: DocumentRow | None, all_items: Mapping[str, Item]
) -> dict[str, Any]:
    """The filter and facet fields of a chunk's index row (see ``garrison.store.index``)."""
    language = chunk.language
    if language is None and chunk.element_ids:
        first = all_items.get(chunk.element_ids[0])
        language = first.language if first is not None else None
    ingested = doc.ingested_at if doc is not None else None
    if ingested is not None and ingested.tzinfo is None:
        ingested = ingested.replace(tzinfo=UTC)
    return {
        "doc_marking_id": doc.marking_id if doc is not None and doc.marking_id else -1,
        "source": doc.source_name if doc is not None else None,
        "media_type": doc.media_type if doc is not None else None,
        "language": language,
        "ingested_at": ingested.astimezone(UTC).isoformat() if ingested is not None else None,
    }
