"""Reading what the pipeline derived -- chunks, lineage, duplicate clusters -- through a session.

The same rule as everywhere: a record the subject may not read is not counted, listed or
mentioned; asking for it answers like asking for something that does not exist.
"""

from __future__ import annotations

import builtins
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, cast

from sqlalchemy import select, update
from sqlalchemy.orm import Session as OrmSession

from garrison.core.errors import NotFound
from garrison.security.audit import AuditAction
from garrison.security.markings import Marking, join
from garrison.store.models import (
    ChunkRow,
    DocumentRow,
    ElementRow,
    ElementState,
    FindingRow,
    PipelineDoc,
    PredictionRow,
)
from garrison.store.session import Session
from garrison.store.views import ReaderView

__all__ = ["Chunks", "Lineage", "Raised", "dedup_report", "follow_raised_document"]


def _banner(session: Session, orm: OrmSession, marking_id: int | None) -> str | None:
    marking = session.marking_of(orm, marking_id)
    return marking.banner() if marking is not None else None


class Chunks:
    """Chunks as one subject may see them."""

    def __init__(self, session: Session) -> None:
        self.session = session

    def list(
        self, *, doc_id: str | None = None, limit: int | None = None
    ) -> builtins.list[dict[str, Any]]:
        """Readable chunks (of one document, with ``doc_id``), in document and chunk order."""
        with self.session.workspace.catalog.transaction() as orm:
            query = self.session.readable(orm, select(ChunkRow), ChunkRow.marking_id)
            if doc_id is not None:
                query = query.where(ChunkRow.doc_id == doc_id)
            query = query.order_by(ChunkRow.doc_id, ChunkRow.seq)
            if limit is not None:
                query = query.limit(limit)
            view = ReaderView(self.session, orm)
            if doc_id is not None and not view.reads_document(doc_id):
                # Filtering on a document one may not read answers like one that is not there.
                chunks: builtins.list[dict[str, Any]] = []
            else:
                chunks = [view.chunk(c) for c in orm.scalars(query)]
        self.session.audit(
            AuditAction.CHUNKS_LIST, details={"count": len(chunks), "doc_id": doc_id}
        )
        return chunks


class Lineage:
    """Where a chunk, element or document came from, with the marking at each step.

    What each node shows of its document (its id, uri, position, headings) follows
    :class:`~garrison.store.views.ReaderView`: a reader who may read a chunk but not its
    document gets the chunk and its readable elements, with no reference to the document.
    """

    def __init__(self, session: Session) -> None:
        self.session = session

    def of(self, record_id: str) -> dict[str, Any]:
        """The tree from ``record_id`` back to the source bytes; NotFound when unreadable."""
        with self.session.workspace.catalog.transaction() as orm:
            view = ReaderView(self.session, orm)
            readable = view.readable
            chunk = orm.get(ChunkRow, record_id)
            if chunk is not None and chunk.marking_id in readable:
                tree = self._chunk(view, chunk)
            else:
                element = orm.get(ElementRow, record_id)
                if element is not None and element.marking_id in readable:
                    tree = self._element(view, element)
                else:
                    doc = orm.get(DocumentRow, record_id)
                    if doc is not None and view.reads_document(doc.id):
                        tree = self._document(view, doc)
                    else:
                        self.session.audit(
                            AuditAction.LINEAGE_READ,
                            object_id=record_id[:64],
                            decision="deny",
                            reason="no such record or not readable",
                        )
                        raise NotFound(f"No chunk, element or document with id {record_id}.")
        self.session.audit(
            AuditAction.LINEAGE_READ, object_id=record_id, object_marking=tree["marking"]
        )
        return tree

    def _document(self, view: ReaderView, doc: DocumentRow) -> dict[str, Any]:
        return {
            "kind": "document",
            "id": doc.id,
            "marking": view.banner(doc.marking_id),
            "uri": doc.uri,
            "media_type": doc.media_type,
            "source": doc.source_name,
            "sha256": doc.id,
            "extraction": doc.meta.get("extraction"),
            # The container is named only to readers who may read it.
            "parent_id": doc.parent_id
            if doc.parent_id is not None and view.reads_document(doc.parent_id)
            else None,
        }

    def _element(self, view: ReaderView, element: ElementRow) -> dict[str, Any]:
        orm = view.orm
        state = orm.get(ElementState, element.id)
        doc = orm.get(DocumentRow, element.doc_id)
        node: dict[str, Any] = {
            "kind": "element",
            "id": element.id,
            "marking": view.banner(element.marking_id),
            "marking_source": element.marking_source,
            "type": element.type,
            "seq": view.seq("element", element.doc_id, element.seq),
            "steps": state.lineage if state is not None else [],
            # The document is shown only when readable: its marking may be higher than the
            # element's (the join of all its portions).
            "parents": [self._document(view, doc)]
            if doc is not None and view.reads_document(doc.id)
            else [],
        }
        path = (element.data or {}).get("section_path")
        if path:
            node["section_path"] = view.headings(
                element.doc_id, path, (element.data or {}).get("section_marking_ids")
            )
        if state is not None and state.dup_of:
            dup = orm.get(ElementRow, state.dup_of)
            # Duplicates are clustered within one marking; still, name only a readable one.
            if dup is not None and dup.marking_id in view.readable:
                node["dup_of"] = state.dup_of
        return node

    def _chunk(self, view: ReaderView, chunk: ChunkRow) -> dict[str, Any]:
        parents = []
        for element_id in chunk.element_ids:
            element = view.orm.get(ElementRow, element_id)
            if element is not None and element.marking_id in view.readable:
                parents.append(self._element(view, element))
        model = view.embedding_model(chunk.embedding_model)
        return {
            "kind": "chunk",
            "id": chunk.id,
            "marking": view.banner(chunk.marking_id),
            "seq": view.seq("chunk", chunk.doc_id, chunk.seq),
            "section_path": view.headings(
                chunk.doc_id, chunk.section_path or (), chunk.section_marking_ids
            ),
            "token_count": chunk.token_count,
            "embedding_model": model,
            # The embed step names the model (through its parameters): not for readers of the
            # chunk who may not read the model.
            "steps": [
                step
                for step in chunk.lineage or []
                if model is not None or not chunk.embedding_model or step.get("stage") != "embed"
            ],
            "parents": parents,
        }


@dataclass
class Raised:
    """What :func:`follow_raised_document` re-marked."""

    element_states: int = 0
    chunks: int = 0
    headings: int = 0
    predictions: int = 0

    def add(self, other: Raised) -> None:
        self.element_states += other.element_states
        self.chunks += other.chunks
        self.headings += other.headings
        self.predictions += other.predictions


def follow_raised_document(
    session: Session,
    orm: OrmSession,
    doc_id: str,
    headings: Mapping[int, int] | None = None,
) -> Raised:
    """After the elements of ``doc_id`` were re-marked upwards (in ``orm``'s transaction), take
    everything derived from them along in the same transaction.

    Each element state becomes the join of what it was and its element's marking; each chunk
    the join of what it was and its elements' markings; each prediction the join of what it
    was and its item's marking. ``headings`` maps a heading marking id
    to the one it rose to: applied to the section markings of the document's elements and
    chunks. Nothing is ever lowered here. The chunk index may still hold the old marking ids:
    search re-checks every row against the catalog, and the next pipeline run (the elements'
    markings are part of its key) rebuilds the rows.
    """
    out = Raised()
    elements = {e.id: e for e in orm.scalars(select(ElementRow).where(ElementRow.doc_id == doc_id))}
    cache: dict[int, Marking] = {}

    def marking(marking_id: int) -> Marking:
        if marking_id not in cache:
            found = session.marking_of(orm, marking_id)
            assert found is not None  # an interned id always has a marking
            cache[marking_id] = found
        return cache[marking_id]

    def raised(current: int, parts: Sequence[int]) -> int:
        others = [p for p in parts if p != current]
        if not others:
            return current
        return session.intern_marking(orm, join(marking(current), *(marking(p) for p in others)))

    def remap(ids: Sequence[int | None] | None) -> list[int | None] | None:
        if ids is None or not headings:
            return None
        new = [headings.get(i, i) if i is not None else None for i in ids]
        return new if new != list(ids) else None

    for element in elements.values():
        data = element.data or {}
        new_ids = remap(data.get("section_marking_ids"))
        if new_ids is not None:
            element.data = {**data, "section_marking_ids": new_ids}
            out.headings += 1
    for state in orm.scalars(select(ElementState).where(ElementState.doc_id == doc_id)):
        source = elements.get(state.element_id)
        if source is None:
            continue
        new_id = raised(state.marking_id, [source.marking_id])
        if new_id != state.marking_id:
            state.marking_id = new_id
            out.element_states += 1
    chunk_markings: dict[str, int] = {}
    for chunk in orm.scalars(select(ChunkRow).where(ChunkRow.doc_id == doc_id)):
        parts = [elements[e].marking_id for e in chunk.element_ids if e in elements]
        new_id = raised(chunk.marking_id, parts)
        chunk_markings[chunk.id] = new_id
        if new_id != chunk.marking_id:
            chunk.marking_id = new_id
            out.chunks += 1
        new_ids = remap(chunk.section_marking_ids)
        first = elements.get(chunk.element_ids[0]) if chunk.element_ids else None
        heads = (first.data or {}).get("section_marking_ids") if first is not None else None
        if isinstance(heads, list) and len(heads) == len(chunk.section_path or ()):
            # The chunk's headings are its first element's: take a raise of theirs along.
            base = list(new_ids if new_ids is not None else chunk.section_marking_ids or [])
            if len(base) != len(heads):
                base = list(heads)
            joined = [
                a if b is None else b if a is None else raised(a, [b])
                for a, b in zip(base, heads, strict=True)
            ]
            if joined != list(chunk.section_marking_ids or []):
                new_ids = joined
        if new_ids is not None:
            # Null entries (the document's marking) stay null: they follow the document.
            chunk.section_marking_ids = cast(list[int], new_ids)
            out.headings += 1
    for prediction in orm.scalars(select(PredictionRow).where(PredictionRow.doc_id == doc_id)):
        if prediction.item_kind == "chunk":
            item_marking = chunk_markings.get(prediction.item_id)
        else:
            origin = elements.get(prediction.item_id)
            item_marking = origin.marking_id if origin is not None else None
        if item_marking is None:
            continue
        new_id = raised(prediction.marking_id, [item_marking])
        if new_id != prediction.marking_id:
            prediction.marking_id = new_id
            out.predictions += 1
    if out.element_states or out.chunks or out.headings:
        # The index rows still carry the old marking ids: the next run rewrites them.
        orm.execute(update(PipelineDoc).where(PipelineDoc.doc_id == doc_id).values(indexed=False))
    orm.flush()
    return out


def dedup_report(session: Session) -> dict[str, Any]:
    """Duplicate clusters among readable elements, and (for stewards who may read both)
    near-identical records marked differently."""
    with session.workspace.catalog.transaction() as orm:
        states = list(
            orm.scalars(
                session.readable(
                    orm,
                    select(ElementState).where(ElementState.dup_of.is_not(None)),
                    ElementState.marking_id,
                )
            )
        )
        clusters: dict[str, list[str]] = {}
        kinds: Counter[str] = Counter()
        for state in states:
            clusters.setdefault(str(state.dup_of), []).append(state.element_id)
            kinds[state.dup_kind or "exact"] += 1
        findings = [
            {
                "id": f.id,
                "doc_id": f.doc_id,
                "element_id": f.element_id,
                "detail": f.detail,
                "marking": _banner(session, orm, f.marking_id),
            }
            for f in orm.scalars(
                session.readable(
                    orm,
                    select(FindingRow).where(FindingRow.kind == "duplicate-marked-differently"),
                    FindingRow.marking_id,
                )
            )
        ]
    from garrison.security.subjects import Role

    if not (session.subject.has_role(Role.STEWARD) or session.subject.has_role(Role.ADMIN)):
        findings = []  # shown only to stewards who may read both records
    session.audit(AuditAction.DEDUP_REPORT, details={"clusters": len(clusters)})
    return {
        "clusters": [
            {"canonical": canonical, "duplicates": sorted(members)}
            for canonical, members in sorted(clusters.items())
        ],
        "duplicates": {"exact": kinds["exact"], "near": kinds["near"]},
        "marked_differently": findings,
    }
