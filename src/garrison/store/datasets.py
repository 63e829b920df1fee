"""Catalog access for datasets: the rows records are selected from, and dataset versions.

Every query that returns marked rows is restricted by :meth:`Session.readable`; the one read
that is not -- :func:`current_markings` -- returns no rows, only the markings a version's
records have now, so a version can be flagged ``stale-marking`` whatever raised them.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import select

from garrison.core.clock import utc_now
from garrison.core.errors import NotFound
from garrison.security.audit import AuditAction
from garrison.security.markings import Marking
from garrison.store.bindings import binding_columns, verify_columns
from garrison.store.models import ChunkRow, DatasetVersionRow, DocumentRow, ElementRow, ElementState
from garrison.store.session import Session

__all__ = [
    "CurrentMarkings",
    "RecordSources",
    "add_version",
    "current_markings",
    "delete_version",
    "record_sources",
    "version_marking",
    "version_rows",
]


@dataclass
class RecordSources:
    """What a subject may read to build dataset records from (rows detached from the catalog)."""

    documents: dict[str, DocumentRow]
    states: dict[str, ElementState]
    chunks: list[ChunkRow] = field(default_factory=list)
    elements: list[ElementRow] = field(default_factory=list)
    #: Every marking the rows above refer to, by interned id.
    markings: dict[int, Marking] = field(default_factory=dict)

    def marking(self, marking_id: int | None) -> Marking:
        """The marking behind ``marking_id``; a missing one fails closed (KeyError)."""
        if marking_id is None:
            raise KeyError("a marked row without a marking")
        return self.markings[marking_id]


def _section_ids(data: dict[str, Any]) -> list[int]:
    ids = data.get("section_marking_ids")
    return [int(i) for i in ids] if isinstance(ids, list) else []


def record_sources(
    session: Session,
    kind: str,
    keep_document: Callable[[DocumentRow], bool],
) -> RecordSources:
    """Readable parsed documents ``keep_document`` accepts, their element states, and their
    readable chunks (``kind == "chunks"``) or elements (``"elements"``, ``"records"``,
    ``"documents"``), in document and reading order."""
    with session.workspace.catalog.transaction() as orm:
        query = select(DocumentRow).where(
            DocumentRow.status == "parsed", DocumentRow.superseded_by.is_(None)
        )
        docs = {
            d.id: d
            for d in orm.scalars(session.readable(orm, query, DocumentRow.marking_id))
            if keep_document(d)
        }
        doc_ids = list(docs)
        states = {
            s.element_id: s
            for s in orm.scalars(select(ElementState).where(ElementState.doc_id.in_(doc_ids)))
        }
        sources = RecordSources(docs, states)
        ids: set[int] = {d.marking_id for d in docs.values() if d.marking_id is not None}
        if kind == "chunks":
            chunks = select(ChunkRow).where(ChunkRow.doc_id.in_(doc_ids))
            sources.chunks = list(
                orm.scalars(
                    session.readable(orm, chunks, ChunkRow.marking_id).order_by(
                        ChunkRow.doc_id, ChunkRow.seq
                    )
                )
            )
            for chunk in sources.chunks:
                ids.add(chunk.marking_id)
                ids.update(int(i) for i in chunk.section_marking_ids or [])
        else:
            elements = select(ElementRow).where(ElementRow.doc_id.in_(doc_ids))
            if kind == "records":
                elements = elements.where(ElementRow.type == "Record")
            sources.elements = list(
                orm.scalars(
                    session.readable(orm, elements, ElementRow.marking_id).order_by(
                        ElementRow.doc_id, ElementRow.seq
                    )
                )
            )
            for element in sources.elements:
                ids.add(element.marking_id)
                ids.update(_section_ids(element.data))
        for marking_id in ids:
            found = session.marking_of(orm, marking_id)
            if found is not None:
                sources.markings[marking_id] = found
    return sources


@dataclass
class CurrentMarkings:
    """The markings a version's records' sources have now (absent: the source is gone)."""

    documents: dict[str, Marking] = field(default_factory=dict)
    #: Chunk or element id -> (its marking, its headings' markings or None when not recorded).
    items: dict[str, tuple[Marking, list[Marking] | None]] = field(default_factory=dict)
    #: Ids of documents, chunks and elements whose catalog row fails its integrity check: their
    #: marking is unknown, so a record made from one is stale (never judged by another marking).
    failed: set[str] = field(default_factory=set)


def current_markings(
    session: Session,
    *,
    doc_ids: Iterable[str],
    chunk_ids: Iterable[str],
    element_ids: Iterable[str],
) -> CurrentMarkings:
    """Today's markings of the given documents, chunks and elements, whoever may read them.

    Only markings come back, never a row's content: they decide whether a dataset version the
    subject already holds is still marked high enough. Each marking id comes from a row whose
    binding verifies; the ids of rows that fail are in :attr:`CurrentMarkings.failed`.
    """
    out = CurrentMarkings()
    binder = session.workspace.catalog.binder
    with session.workspace.catalog.transaction() as orm:

        def marking(marking_id: int | None) -> Marking | None:
            return session.marking_of(orm, marking_id)

        def verified(model: type[Any], ids: Iterable[str]) -> Iterator[Any]:
            """The rows of ``model`` with these ids whose binding verifies (500 at a time)."""
            wanted = list(set(ids))
            id_column = model.id
            for start in range(0, len(wanted), 500):
                part = wanted[start : start + 500]
                rows = list(orm.execute(select(*binding_columns(model)).where(id_column.in_(part))))
                good = verify_columns(binder, rows, (model, ""))
                out.failed.update({r.id for r in rows} - {r.id for r in good})
                yield from good

        for row in verified(DocumentRow, doc_ids):
            found = marking(row.marking_id)
            if found is not None:
                out.documents[row.id] = found
        for row in verified(ChunkRow, chunk_ids):
            found = marking(row.marking_id)
            if found is not None:
                sections = row.section_marking_ids
                heads = None if sections is None else [marking(i) for i in sections]
                out.items[row.id] = (
                    found,
                    None if heads is None or None in heads else [m for m in heads if m],
                )
        for row in verified(ElementRow, element_ids):
            found = marking(row.marking_id)
            if found is not None:
                raw = (row.data or {}).get("section_marking_ids")
                heads = [marking(int(i)) for i in raw] if isinstance(raw, list) else None
                out.items[row.id] = (
                    found,
                    None if heads is None or None in heads else [m for m in heads if m],
                )
    return out


def version_rows(
    session: Session,
    *,
    name: str | None = None,
    id_prefix: str | None = None,
    include_deleted: bool = False,
) -> list[DatasetVersionRow]:
    """Readable, undeleted (or, with ``include_deleted``, all) versions (of ``name``, whose id
    starts with ``id_prefix``), newest first."""
    with session.workspace.catalog.transaction() as orm:
        query = select(DatasetVersionRow)
        if not include_deleted:
            query = query.where(DatasetVersionRow.deleted_at.is_(None))
        if name is not None:
            query = query.where(DatasetVersionRow.name == name)
        if id_prefix is not None:
            query = query.where(DatasetVersionRow.id.startswith(id_prefix, autoescape=True))
        query = session.readable(orm, query, DatasetVersionRow.marking_id)
        return list(orm.scalars(query.order_by(DatasetVersionRow.created_at.desc())))


def version_marking(session: Session, row: DatasetVersionRow) -> Marking:
    """The marking of a version row the subject already holds."""
    with session.workspace.catalog.transaction() as orm:
        marking = session.marking_of(orm, row.marking_id)
    if marking is None:
        raise NotFound(f"No dataset version {row.id}.")
    return marking


def add_version(
    session: Session,
    *,
    version_id: str,
    name: str,
    marking: Marking,
    manifest: dict[str, Any],
    record_count: int,
    snapshot: str,
) -> None:
    """Store a new version (or bring back a deleted one with the same content); audited."""
    with session._write(
        AuditAction.DATASET_CREATE,
        object_id=version_id,
        object_marking=marking.banner(),
        details={"name": name, "records": record_count},
    ) as orm:
        row = orm.get(DatasetVersionRow, version_id)
        if row is None:
            created: datetime = utc_now()
            orm.add(
                DatasetVersionRow(
                    id=version_id,
                    name=name,
                    marking_id=session.intern_marking(orm, marking),
                    manifest=manifest,
                    record_count=record_count,
                    snapshot=snapshot,
                    created_by=session.subject.name,
                    created_at=created,
                )
            )
        elif row.deleted_at is not None:
            row.deleted_at = None
            row.deleted_by = None


def delete_version(session: Session, version_id: str) -> None:
    """Mark a version deleted (its id is never reused for other content); audited."""
    with session._write(AuditAction.DATASET_DELETE, object_id=version_id) as orm:
        stored = orm.get(DatasetVersionRow, version_id)
        if stored is None:
            raise NotFound(f"No dataset version {version_id}.")
        stored.deleted_at = utc_now()
        stored.deleted_by = session.subject.name
