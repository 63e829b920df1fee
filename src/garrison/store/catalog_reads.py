"""Catalog reads for search: one subject's view of the catalog in one transaction.

Search ranks rows of the chunk index (``garrison.store.index``) and then re-checks every hit
against the catalog, the record of truth. :class:`CatalogView` is how it does so: the markings
the subject may read (the prefilter put into index queries, built here too), the marking behind
an id, and single chunks and elements -- each returned only when the subject may read it, so a
chunk re-marked or removed since it was indexed is never shown.
"""

from __future__ import annotations

from collections.abc import Collection, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session as OrmSession

from garrison.security.markings import Marking
from garrison.store.bindings import binding_columns, verify_columns
from garrison.store.index import where_in
from garrison.store.models import ChunkRow, ElementRow
from garrison.store.predictions import LabelFilter, chunks_labelled
from garrison.store.session import Session
from garrison.store.views import ReaderView

__all__ = ["CatalogView", "catalog_view"]


class CatalogView(ReaderView):
    """What one subject may read of the catalog, inside one transaction (with the reader's
    view of the fields of what it returns, :class:`~garrison.store.views.ReaderView`)."""

    def __init__(self, session: Session, orm: OrmSession) -> None:
        super().__init__(session, orm)
        self._orm = orm
        self._chunks: dict[str, ChunkRow | None] = {}  # read ahead: chunk id -> readable row

    def load_hits(self, chunk_ids: Sequence[str]) -> None:
        """Read at once what :meth:`readable_chunk` and the hit's fields need of many chunks:
        the readable chunk rows, their documents' markings and their first elements."""
        wanted = [c for c in dict.fromkeys(chunk_ids) if c not in self._chunks]
        for start in range(0, len(wanted), 500):
            part = wanted[start : start + 500]
            query = self.session.readable(
                self._orm, select(ChunkRow).where(ChunkRow.id.in_(part)), ChunkRow.marking_id
            )
            found = {c.id: c for c in self._orm.scalars(query)}
            for chunk_id in part:
                self._chunks[chunk_id] = found.get(chunk_id)
        chunks = [c for c in (self._chunks.get(i) for i in chunk_ids) if c is not None]
        self.load_documents([c.doc_id for c in chunks])
        firsts = [c.element_ids[0] for c in chunks if c.element_ids]
        for element in self.readable_element_rows(firsts):
            self._element_rows[element.id] = element

    def marking(self, marking_id: int) -> Marking:
        """The marking behind an interned id (every interned id has one)."""
        found = self.session.marking_of(self._orm, marking_id)
        if found is None:
            raise LookupError(f"no marking with id {marking_id}")
        return found

    def index_filter(self, allowed: Collection[int], *, column: str = "marking_id") -> str:
        """The index prefilter for rows whose ``column`` is among ``allowed`` marking ids --
        never wider than what the subject may read."""
        return where_in(column, sorted(set(allowed) & self.readable))

    def readable_chunk(
        self, chunk_id: str, allowed: Collection[int] | None = None
    ) -> ChunkRow | None:
        """The chunk, when the subject may read it (and its marking is in ``allowed``)."""
        if chunk_id in self._chunks:
            chunk = self._chunks[chunk_id]
        else:
            query = self.session.readable(
                self._orm, select(ChunkRow).where(ChunkRow.id == chunk_id), ChunkRow.marking_id
            )
            chunk = self._orm.scalar(query)
        if chunk is None or (allowed is not None and chunk.marking_id not in allowed):
            return None
        return chunk

    def labelled_chunks(
        self, labels: LabelFilter, ceiling: Marking | None = None
    ) -> dict[str, list[Marking]]:
        """Readable chunks matching ``labels`` on predictions the subject may read (on the
        chunk or its elements; under ``ceiling`` when given), each with the matched
        predictions' markings. A label only unreadable predictions carry matches nothing,
        like a label nobody has."""
        return chunks_labelled(self.session, self._orm, labels, ceiling)

    def readable_element_rows(self, element_ids: Sequence[str]) -> list[ElementRow]:
        """The elements among ``element_ids`` the subject may read (bindings verified), in the
        order given."""
        query = select(ElementRow).where(ElementRow.id.in_(list(element_ids)))
        rows = {
            e.id: e
            for e in self._orm.scalars(
                self.session.readable(self._orm, query, ElementRow.marking_id)
            )
        }
        return [rows[i] for i in element_ids if i in rows]

    def current(self, rows: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
        """Index rows as the catalog has them now: rows of chunks gone since indexing, or whose
        catalog row fails its integrity check, are dropped, and each row's ``marking_id`` and
        ``doc_id`` are the catalog's (a document whose marking rose re-marks its chunks before
        the index follows)."""
        ids = [str(r["chunk_id"]) for r in rows]
        binder = self.session.workspace.catalog.binder
        now: dict[str, tuple[int, str]] = {}
        for start in range(0, len(ids), 500):
            part = ids[start : start + 500]
            # The chunk's binding is verified (a chunk edited in the catalog is gone here).
            query = select(*binding_columns(ChunkRow)).where(ChunkRow.id.in_(part))
            for row in verify_columns(binder, self._orm.execute(query), (ChunkRow, "")):
                now[row.id] = (row.marking_id, row.doc_id)
        out = []
        for r in rows:
            found = now.get(str(r["chunk_id"]))
            if found is not None:
                out.append({**r, "marking_id": found[0], "doc_id": found[1]})
        return out


@contextmanager
def catalog_view(session: Session) -> Iterator[CatalogView]:
    """A :class:`CatalogView` for ``session``'s subject, in one read transaction."""
    with session.workspace.catalog.read() as orm:
        yield CatalogView(session, orm)
