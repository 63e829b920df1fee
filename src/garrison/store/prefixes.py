"""Ids by prefix, and documents by name, among the records a subject may read.

The command line accepts a prefix of a document, chunk, element or finding id (at least
:data:`MIN_PREFIX` characters). Only readable records are candidates -- the same visibility the
listings apply -- so a prefix that matches nothing readable answers exactly like an unknown id,
and an ambiguity is only ever among records the subject may see: nothing here reveals that an
unreadable record exists. Whole rows are loaded, so each row's binding is verified on read and a
tampered row is never a candidate.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from sqlalchemy import select

from garrison.core.records import DocumentStatus
from garrison.store.documents import Documents
from garrison.store.models import ChunkRow, DocumentRow, ElementRow, FindingRow
from garrison.store.session import Session

__all__ = ["KINDS", "MIN_PREFIX", "document_names", "readable_ids"]

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


def document_names(session: Session, doc_ids: Iterable[str]) -> dict[str, str]:
    """What to call each of ``doc_ids`` the subject may know of: its title, else its file name.

    A title is text of its document (a mark in it raised the document's marking), so it is
    given only for a parsed document -- one the subject may read; a quarantined document shown
    to a steward is named by its file name only, a spilled one not at all. Documents the subject
    may not know of are left out, exactly as if they did not exist.
    """
    wanted = sorted(set(doc_ids))
    if not wanted:
        return {}
    documents = Documents(session)
    out: dict[str, str] = {}
    with session.workspace.catalog.transaction() as orm:
        query = select(DocumentRow).where(DocumentRow.id.in_(wanted), documents._visible(orm))
        for row in orm.scalars(query):
            if row.status == DocumentStatus.SPILLED.value:
                continue
            parsed = row.status == DocumentStatus.PARSED.value
            name = (row.title if parsed else None) or row.filename
            if name:
                out[row.id] = name
    return out
