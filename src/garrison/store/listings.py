"""Paged listings of catalog records: documents, findings, chunks and jobs.

Each function is the paged form of the listing its class already offers (``Documents.list``,
``Documents.findings``, ``Chunks.list``, ``Jobs.list``), with the same visibility rules -- the
same readable query, so what a page shows and what ``total`` counts are exactly what the
unpaged listing would return -- plus a whitelist of sort keys and, for documents, a filter on
file name and title. Paging itself (cursors, limits, keyset) is :mod:`garrison.store.paging`.

A document's page is read in a fixed number of queries, whatever its size: the rows, their
findings in one query, the markings from the session's cache, the count.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from sqlalchemy import ColumnElement, and_, case, func, or_, select

from garrison.core.records import DocumentStatus
from garrison.security.audit import AuditAction
from garrison.store.documents import Documents, Jobs
from garrison.store.jobs import mark_stale_jobs
from garrison.store.models import ChunkRow, DocumentRow, FindingRow, JobRow
from garrison.store.paging import Page, PageSpec, page_query
from garrison.store.session import Session
from garrison.store.views import ReaderView

__all__ = [
    "CHUNK_SORTS",
    "DOCUMENT_SORTS",
    "FINDING_SORTS",
    "JOB_SORTS",
    "chunks_page",
    "document_markings",
    "documents_page",
    "findings_page",
    "jobs_page",
]

_PARSED = DocumentStatus.PARSED.value


def _parsed_only(column: Any) -> ColumnElement[Any]:
    # A title is metadata of a parsed document; an unparsed one sorts as if it had none, so
    # the order says nothing about what was never shown.
    return case((DocumentRow.status == _PARSED, column), else_=None)


_DOCUMENT_SORTS: dict[str, Sequence[Any]] = {
    "ingested_at": (DocumentRow.ingested_at,),
    "title": (_parsed_only(DocumentRow.title),),
    # What listings show as a document's name: its title, else its file name.
    "name": (func.coalesce(_parsed_only(DocumentRow.title), DocumentRow.filename),),
    "filename": (DocumentRow.filename,),
    "media_type": (DocumentRow.media_type,),
    "source": (DocumentRow.source_name,),
    "size": (DocumentRow.size,),
    "status": (DocumentRow.status,),
}
#: The keys a documents listing sorts by (the first is its default).
DOCUMENT_SORTS = tuple(_DOCUMENT_SORTS)
_FINDING_SORTS: dict[str, Sequence[Any]] = {
    "created_at": (FindingRow.created_at,),
    "kind": (FindingRow.kind,),
}
FINDING_SORTS = tuple(_FINDING_SORTS)
_CHUNK_SORTS: dict[str, Sequence[Any]] = {
    "position": (ChunkRow.doc_id, ChunkRow.seq),
}
CHUNK_SORTS = tuple(_CHUNK_SORTS)
_JOB_SORTS: dict[str, Sequence[Any]] = {
    "started_at": (JobRow.started_at,),
    "kind": (JobRow.kind,),
    "status": (JobRow.status,),
    "actor": (JobRow.actor,),
}
JOB_SORTS = tuple(_JOB_SORTS)


def _name_filter(q: str) -> ColumnElement[bool]:
    """File name or (parsed documents only) title contains ``q``, ignoring case."""
    title = and_(DocumentRow.status == _PARSED, DocumentRow.title.icontains(q, autoescape=True))
    return or_(DocumentRow.filename.icontains(q, autoescape=True), title)


def documents_page(
    session: Session,
    spec: PageSpec,
    *,
    status: str | None = None,
    q: str | None = None,
) -> Page[dict[str, Any]]:
    """One page of the documents ``session`` may know of (as :meth:`Documents.list`), sorted
    by one of :data:`DOCUMENT_SORTS`; ``q`` keeps those whose file name or title contains it."""
    docs = Documents(session)
    docs.check_status(status)
    with session.workspace.catalog.read() as orm:
        query = select(DocumentRow).where(docs.visible(orm))
        if status is not None:
            query = query.where(DocumentRow.status == status)
        if q:
            query = query.where(_name_filter(q))
        page = page_query(
            orm,
            query,
            listing="documents",
            model=DocumentRow,
            id_column=DocumentRow.id,
            sorts=_DOCUMENT_SORTS,
            default="ingested_at",
            spec=spec,
            binder=session.workspace.catalog.binder,
        )
        findings = docs.findings_of(orm, [r.id for r in page.items])
        out = page.map(lambda row: docs.doc_dict(orm, row, findings.get(row.id, [])))
    session.audit(
        AuditAction.DOCS_LIST,
        details={"count": len(out.items), "status": status, "total": out.total, "paged": True},
    )
    return out


def findings_page(
    session: Session,
    spec: PageSpec,
    *,
    kind: str | None = None,
    unresolved: bool = False,
) -> Page[dict[str, Any]]:
    """One page of the findings ``session`` may see (as :meth:`Documents.findings`)."""
    docs = Documents(session)
    with session.workspace.catalog.read() as orm:
        query = docs.findings_visible(
            orm,
            select(FindingRow)
            .join(DocumentRow, DocumentRow.id == FindingRow.doc_id)
            .where(docs.visible(orm)),
        )
        if kind is not None:
            query = query.where(FindingRow.kind == kind)
        if unresolved:
            query = query.where(FindingRow.resolved_by.is_(None))
        page = page_query(
            orm,
            query,
            listing="findings",
            model=FindingRow,
            id_column=FindingRow.id,
            sorts=_FINDING_SORTS,
            default="created_at",
            spec=spec,
            binder=session.workspace.catalog.binder,
        ).map(docs.finding_dict)
    session.audit(
        AuditAction.FINDINGS_LIST,
        details={"count": len(page.items), "kind": kind, "total": page.total, "paged": True},
    )
    return page


def chunks_page(
    session: Session, spec: PageSpec, *, doc_id: str | None = None
) -> Page[dict[str, Any]]:
    """One page of the chunks ``session`` may read (as :meth:`Chunks.list`), in document and
    chunk order. The cursor names a chunk, never its document."""
    with session.workspace.catalog.read() as orm:
        view = ReaderView(session, orm)
        query = session.readable(orm, select(ChunkRow), ChunkRow.marking_id)
        if doc_id is not None:
            # Filtering on a document one may not read answers like one that is not there.
            allowed = view.reads_document(doc_id)
            query = query.where(ChunkRow.doc_id == (doc_id if allowed else None))
        page = page_query(
            orm,
            query,
            listing="chunks",
            model=ChunkRow,
            id_column=ChunkRow.id,
            sorts=_CHUNK_SORTS,
            default="position",
            spec=spec,
            binder=session.workspace.catalog.binder,
        )
        view.load_chunks(page.items)
        page = page.map(view.chunk)
    session.audit(
        AuditAction.CHUNKS_LIST,
        details={"count": len(page.items), "doc_id": doc_id, "total": page.total, "paged": True},
    )
    return page


def jobs_page(session: Session, spec: PageSpec) -> Page[dict[str, Any]]:
    """One page of jobs (stewards and admins), each as :meth:`Jobs.list` shows it."""
    jobs = Jobs(session)
    jobs.require_reader(AuditAction.JOBS_LIST)
    mark_stale_jobs(session)
    with session.workspace.catalog.transaction() as orm:
        page = page_query(
            orm,
            select(JobRow),
            listing="jobs",
            model=JobRow,
            id_column=JobRow.id,
            sorts=_JOB_SORTS,
            default="started_at",
            spec=spec,
        )
        out = page.map(jobs.job_dict)
        out = Page(
            jobs.as_seen(orm, out.items),
            out.total,
            out.next_cursor,
            out.prev_cursor,
            out.limit,
            out.sort,
            out.desc,
        )
    session.audit(
        AuditAction.JOBS_LIST, details={"count": len(out.items), "total": out.total, "paged": True}
    )
    return out


def document_markings(session: Session, doc_ids: Iterable[str]) -> dict[str, str]:
    """The markings of those of ``doc_ids`` that are parsed documents ``session`` may read."""
    wanted = sorted(set(doc_ids))
    with session.workspace.catalog.read() as orm:
        view = ReaderView(session, orm)
        view.load_documents(wanted)
        return {
            d: str(view.banner(view.doc_marking_id(d))) for d in wanted if view.reads_document(d)
        }
