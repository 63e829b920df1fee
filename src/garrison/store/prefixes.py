"""Ids by prefix, among the records a subject may read.

The command line accepts a prefix of a document, chunk, element or finding id (at least
:data:`MIN_PREFIX` characters). Only readable records are candidates -- the same visibility the
listings apply -- so a prefix that matches nothing readable answers exactly like an unknown id,
and an ambiguity is only ever among records the subject may see: nothing here reveals that an
unreadable record exists. Whole rows are loaded, so each row's binding is verified on read and a
tampered row is never a candidate.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import select

from garrison.store.documents import Documents
from garrison.store.models import ChunkRow, DocumentRow, ElementRow, FindingRow
from garrison.store.session import Session

__all__ = ["KINDS", "MIN_PREFIX", "readable_ids"]

#: The shortest prefix looked up as a prefix; shorter input is taken as a whole id.
MIN_PREFIX = 6
KINDS = ("document", "chunk", "element", "finding")


def readable_ids(session: Session, kind: str, prefix: str, *, limit: int = 3) -> list[str]:
    """Up to ``limit`` ids of ``kind`` records the subject may read that start with ``prefix``."""
    if kind not in KINDS:
        raise ValueError(f"unknown record kind {kind!r}")
    documents = Documents(session)
    with session.workspace.catalog.transaction() as orm:
        query: Any
        if kind == "document":
            query = select(DocumentRow).where(
                DocumentRow.id.startswith(prefix, autoescape=True), documents._visible(orm)
            )
            order = DocumentRow.id
        elif kind == "chunk":
            query = session.readable(
                orm,
                select(ChunkRow).where(ChunkRow.id.startswith(prefix, autoescape=True)),
                ChunkRow.marking_id,
            )
            order = ChunkRow.id
        elif kind == "element":
            query = session.readable(
                orm,
                select(ElementRow).where(ElementRow.id.startswith(prefix, autoescape=True)),
                ElementRow.marking_id,
            )
            order = ElementRow.id
        else:
            query = documents._findings_visible(
                orm,
                select(FindingRow)
                .join(DocumentRow, DocumentRow.id == FindingRow.doc_id)
                .where(FindingRow.id.startswith(prefix, autoescape=True), documents._visible(orm)),
            )
            order = FindingRow.id
        return [str(row.id) for row in orm.scalars(query.order_by(order).limit(limit))]
