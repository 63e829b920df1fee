"""The ingest's catalog writer: decided document trees -> documents, locations, elements,
findings and job items, in the caller's transaction.

Ingest reads files, parses them in isolated workers and decides their markings (pure); what it
decided reaches the store as :class:`DecidedDocument` trees, and everything the catalog keeps
about them is written here: new documents and their elements and findings, where the bytes were
seen, spills (hash, size, location and reason only), supersession of what a location held
before, and the ``default-marking-conflict`` of bytes seen again under another default (with
the re-marking of everything derived from them:
:func:`garrison.store.derived.follow_raised_document`).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import insert, select, update
from sqlalchemy.orm import Session as OrmSession

from garrison.core.clock import utc_now
from garrison.core.records import DocumentStatus, MarkingSource
from garrison.security.audit import AuditAction
from garrison.security.markings import Marking, join
from garrison.store.models import (
    DocumentLocation,
    DocumentRow,
    ElementRow,
    FindingRow,
    JobItemRow,
    SourceRow,
)
from garrison.store.session import Session

__all__ = [
    "SPILL_CLEARED_COLUMNS",
    "CatalogWriter",
    "DecidedDocument",
    "NewElement",
    "NewFinding",
    "Unreadable",
    "WrittenFile",
    "document_known",
    "ensure_source",
    "record_skipped",
    "spill_detail",
    "spill_kinds",
    "write_batch",
]


@dataclass(frozen=True)
class NewFinding:
    """A finding about a document; ``element_index`` points into its elements (or None)."""

    kind: str
    detail: str
    element_index: int | None = None


@dataclass(frozen=True)
class NewElement:
    """One element as the current rules cut and mark it.

    ``data`` is the element's stored data without ``section_marking_ids``: the writer interns
    ``section_markings`` and puts their ids right after ``section_path``.
    """

    id: str
    seq: int
    type: str
    text: str
    page: int | None
    marking: Marking
    marking_source: str
    data: dict[str, Any]
    section_markings: tuple[Marking, ...] = ()


@dataclass
class DecidedDocument:
    """A file (or attachment) and the marking decision about it, with its decided children.

    ``elements`` is None when the marking rules never ran (the file was not parsed); otherwise
    it holds what they cut, written only for a parsed document.
    """

    doc_id: str
    size: int
    filename: str | None
    uri: str
    data: bytes | None
    status: DocumentStatus
    reason: str | None
    marking: Marking | None
    banner: Marking | None = None
    title: str | None = None
    author: str | None = None
    media_type: str | None = None
    created: datetime | None = None
    modified: datetime | None = None
    meta: dict[str, Any] = field(default_factory=dict)
    elements: tuple[NewElement, ...] | None = None
    findings: list[NewFinding] = field(default_factory=list)
    children: list[DecidedDocument] = field(default_factory=list)

    @property
    def marked(self) -> bool:
        """Whether the marking rules ran on it (it was parsed)."""
        return self.elements is not None


@dataclass(frozen=True)
class Unreadable:
    """An input that could not be read: a failed job item, no document."""

    uri: str
    detail: str


@dataclass(frozen=True)
class WrittenFile:
    """What happened to one top-level input of a batch."""

    uri: str
    outcome: str
    doc_id: str | None
    reason: str | None
    elements: int = 0
    size: int = 0


class CatalogWriter:
    """Writes decided trees in the caller's transaction.

    Rows are collected and inserted with one Core ``executemany`` per table by :meth:`flush`
    (documents first: the other tables refer to them); audit events collect in ``events``.
    """

    def __init__(
        self, session: Session, orm: OrmSession, job_id: str, source: str, default: Marking
    ) -> None:
        self.session = session
        self.orm = orm
        self.job_id = job_id
        self.source = source
        self.default = default
        self.default_id = session.intern_marking(orm, default)
        self.events: list[dict[str, Any]] = []
        self.elements = 0
        self.documents: list[dict[str, Any]] = []
        self.element_rows: list[dict[str, Any]] = []
        self.findings: list[dict[str, Any]] = []
        self.locations: list[dict[str, Any]] = []
        self.items: list[dict[str, Any]] = []
        #: Originals of the documents collected, stored by :meth:`flush`.
        self.blobs: list[bytes] = []
        #: Documents and locations written by this writer but not yet inserted.
        self.pending: set[str] = set()
        self.pending_locations: set[tuple[str, str]] = set()
        #: Every document this writer saw (written or seen again), children included.
        self.seen: set[str] = set()

    def flush(self) -> None:
        """Store the originals collected, durably and together; then insert every collected
        row: one executemany per table, documents first."""
        if self.blobs:
            # Before any row that names them: a committed document always has its original.
            self.session.workspace.blobs.put_many(self.blobs)
            self.blobs.clear()
        conn = self.orm.connection()
        for model, rows in (
            (DocumentRow, self.documents),
            (ElementRow, self.element_rows),
            (FindingRow, self.findings),
            (DocumentLocation, self.locations),
            (JobItemRow, self.items),
        ):
            if rows:
                conn.execute(insert(model), rows)
                rows.clear()

    def item(
        self,
        uri: str,
        doc_id: str | None,
        outcome: str,
        reason: str | None,
        detail: str | None = None,
    ) -> None:
        """Record what happened to one input of the job."""
        self.items.append(
            {
                "job_id": self.job_id,
                "uri": uri,
                "doc_id": doc_id,
                "outcome": outcome,
                "reason": reason,
                "detail": detail,
            }
        )

    def location(self, doc_id: str, uri: str, parent_id: str | None, *, new: bool = False) -> None:
        """Record where the bytes were seen (a new document cannot have been seen there)."""
        if (doc_id, uri) in self.pending_locations:
            return
        if not new and doc_id not in self.pending:
            exists = self.orm.scalar(
                select(DocumentLocation.id).where(
                    DocumentLocation.doc_id == doc_id, DocumentLocation.uri == uri
                )
            )
            if exists is not None:
                return
        self.pending_locations.add((doc_id, uri))
        self.locations.append(
            {
                "doc_id": doc_id,
                "uri": uri,
                "source_name": self.source,
                "parent_id": parent_id,
                "job_id": self.job_id,
                "seen_at": utc_now(),
            }
        )

    def _repair(self, row: DocumentRow, data: bytes) -> str:
        """The same bytes as a damaged document's: store them again, parsed once more."""
        blobs = self.session.workspace.blobs
        blobs.delete(row.id)
        blobs.put(data)
        row.status, row.reason = DocumentStatus.PARSED.value, None
        self.events.append(
            {
                "action": AuditAction.DOC_DAMAGED,
                "object_id": row.id,
                "object_marking": None,
                "decision": "allow",
                "reason": "repaired",
                "details": {"uri": row.uri, "job": self.job_id},
            }
        )
        return "unchanged"

    def write(
        self, decided: DecidedDocument, parent_id: str | None, *, spill_tree: bool = False
    ) -> str:
        """Write ``decided`` and its children; returns the outcome for the root."""
        self.seen.add(decided.doc_id)
        if decided.doc_id in self.pending:
            # Written earlier in this transaction (same bytes twice): under the same default.
            self.location(decided.doc_id, decided.uri, parent_id)
            return "unchanged"
        existing = self.orm.get(DocumentRow, decided.doc_id)
        if existing is not None:
            self.location(decided.doc_id, decided.uri, parent_id)
            if existing.status == DocumentStatus.DAMAGED.value and decided.data is not None:
                return self._repair(existing, decided.data)
            if existing.status == DocumentStatus.PARSED and existing.default_marking_id not in (
                None,
                self.default_id,
            ):
                self._default_conflict(existing)
            return "unchanged"
        spilled = spill_tree or decided.status is DocumentStatus.SPILLED
        for child in decided.children:
            # Inside a spill only the spilled parts are recorded (hash and size): the rest of
            # the container is the spill's content too.
            if spilled and child.status is not DocumentStatus.SPILLED:
                continue
            self.write(child, decided.doc_id, spill_tree=spilled)
        if spilled:
            self._write_spill(decided, parent_id)
            return "spilled"
        banner = decided.banner if decided.marked else None
        row = _document_row(
            id=decided.doc_id,
            status=decided.status.value,
            reason=decided.reason,
            size=decided.size,
            media_type=decided.media_type,
            filename=decided.filename,
            uri=decided.uri,
            source_name=self.source,
            parent_id=parent_id,
            title=decided.title,
            author=decided.author if decided.marked else None,
            created=decided.created,
            modified=decided.modified,
            blob=decided.data is not None,
            job_id=self.job_id,
            ingested_at=utc_now(),
            meta=decided.meta,
            default_marking_id=self.default_id,
            banner_marking_id=(
                self.session.intern_marking(self.orm, banner) if banner is not None else None
            ),
            marking_id=(
                self.session.intern_marking(self.orm, decided.marking)
                if decided.marking is not None
                else None
            ),
        )
        if decided.data is not None:
            self.blobs.append(decided.data)
        self.documents.append(row)
        self.pending.add(decided.doc_id)
        ids: list[str] = []
        if decided.status is DocumentStatus.PARSED and decided.elements is not None:
            ids = self.write_elements(decided.doc_id, decided.elements)
        self._write_findings(decided.doc_id, decided.findings, ids)
        self.location(decided.doc_id, decided.uri, parent_id, new=True)
        self.events.append(
            {
                "action": AuditAction.INGEST_DOCUMENT,
                "object_id": decided.doc_id,
                "object_marking": decided.marking.banner() if decided.marking else None,
                "decision": "allow" if decided.status is DocumentStatus.PARSED else "deny",
                "reason": decided.reason,
                "details": {
                    "status": decided.status.value,
                    "uri": decided.uri,
                    "elements": len(ids),
                    "job": self.job_id,
                },
            }
        )
        return decided.status.value

    def supersede(self, uri: str, doc_id: str) -> None:
        """New bytes at a known location supersede the document that was there.

        ``doc_id`` was just read at ``uri`` (a top-level input). Every other document seen at
        ``uri`` and nowhere else gets ``superseded_by = doc_id``, and so do its attachments
        and members that this ingest did not see again; the next pipeline run drops their
        derived records. Bytes that come back (a reverted file) are current again.
        """
        before = set(
            self.orm.scalars(
                select(DocumentLocation.doc_id).where(
                    DocumentLocation.uri == uri, DocumentLocation.doc_id != doc_id
                )
            )
        )
        old: list[str] = []
        for candidate in sorted(before):
            elsewhere = self.orm.scalar(
                select(DocumentLocation.id)
                .where(DocumentLocation.doc_id == candidate, DocumentLocation.uri != uri)
                .where(~DocumentLocation.uri.startswith(uri + "#"))
                .limit(1)
            )
            if elsewhere is None:
                old.append(candidate)
        if doc_id not in self.pending:
            self.orm.execute(
                update(DocumentRow)
                .where(DocumentRow.id == doc_id, DocumentRow.superseded_by.is_not(None))
                .values(superseded_by=None)
            )
        frontier = old
        while frontier:
            current = list(
                self.orm.scalars(
                    select(DocumentRow.id).where(
                        DocumentRow.id.in_(frontier), DocumentRow.superseded_by.is_(None)
                    )
                )
            )
            current = [d for d in current if d not in self.seen]
            if not current:
                break
            self.orm.execute(
                update(DocumentRow).where(DocumentRow.id.in_(current)).values(superseded_by=doc_id)
            )
            for superseded in current:
                self.events.append(
                    {
                        "action": AuditAction.INGEST_SUPERSEDE,
                        "object_id": superseded,
                        "object_marking": None,
                        "decision": "allow",
                        "reason": None,
                        "details": {"by": doc_id, "uri": uri, "job": self.job_id},
                    }
                )
            frontier = list(
                self.orm.scalars(select(DocumentRow.id).where(DocumentRow.parent_id.in_(current)))
            )

    def finding(self, doc_id: str, kind: str, detail: str, element: str | None = None) -> None:
        """Collect one finding row."""
        self.findings.append(
            {
                "doc_id": doc_id,
                "element_id": element,
                "kind": kind,
                "detail": detail,
                "job_id": self.job_id,
                "created_at": utc_now(),
            }
        )

    def _write_spill(self, decided: DecidedDocument, parent_id: str | None) -> None:
        self.documents.append(
            _document_row(
                id=decided.doc_id,
                status=DocumentStatus.SPILLED.value,
                reason="spill",
                size=decided.size,
                uri=decided.uri,
                source_name=self.source,
                parent_id=parent_id,
                blob=False,
                job_id=self.job_id,
                ingested_at=utc_now(),
                meta={},
            )
        )
        self.pending.add(decided.doc_id)
        for kind in spill_kinds(decided):
            self.finding(decided.doc_id, kind, spill_detail(kind))
        self.location(decided.doc_id, decided.uri, parent_id, new=True)
        self.events.append(
            {
                "action": AuditAction.INGEST_SPILL,
                "object_id": decided.doc_id,
                "object_marking": None,
                "decision": "deny",
                "reason": "spill",
                "details": {"uri": decided.uri, "size": decided.size, "job": self.job_id},
            }
        )

    def element_rows_of(self, doc_id: str, elements: Sequence[NewElement]) -> list[dict[str, Any]]:
        """The element rows of ``elements`` (markings interned), not collected for insertion."""
        rows: list[dict[str, Any]] = []
        for element in elements:
            data: dict[str, Any] = {}
            for key, value in element.data.items():
                data[key] = value
                if key == "section_path":
                    # Headings with their marks stripped, each with its own marking.
                    data["section_marking_ids"] = [
                        self.session.intern_marking(self.orm, m) for m in element.section_markings
                    ]
            rows.append(
                {
                    "id": element.id,
                    "doc_id": doc_id,
                    "seq": element.seq,
                    "type": element.type,
                    "text": element.text,
                    "page": element.page,
                    "marking_id": self.session.intern_marking(self.orm, element.marking),
                    "marking_source": element.marking_source,
                    "original_marking_id": None,
                    "data": data,
                }
            )
        return rows

    def write_elements(self, doc_id: str, elements: Sequence[NewElement]) -> list[str]:
        """Collect the element rows of a new document; returns their ids."""
        # Inserted by flush with one executemany for the whole transaction.
        self.element_rows.extend(self.element_rows_of(doc_id, elements))
        self.elements += len(elements)
        return [e.id for e in elements]

    def _write_findings(self, doc_id: str, findings: Iterable[NewFinding], ids: list[str]) -> None:
        for finding in findings:
            element = (
                ids[finding.element_index]
                if finding.element_index is not None and finding.element_index < len(ids)
                else None
            )
            self.finding(doc_id, finding.kind, finding.detail, element)

    def _default_conflict(self, doc: DocumentRow) -> bool:
        """Same bytes under another default: inherited elements take the join of both.

        The document's attachments and members (seen again with it) follow, and so does
        everything derived from a document whose marking rose -- element states, chunks and
        their headings -- in this same transaction. Returns whether anything was re-marked.
        """
        from garrison.store.derived import follow_raised_document

        old = self.session.marking_of(self.orm, doc.default_marking_id)
        assert old is not None
        both = join(old, self.default)
        both_id = self.session.intern_marking(self.orm, both)
        children = [
            child
            for child in self.orm.scalars(
                select(DocumentRow).where(
                    DocumentRow.parent_id == doc.id,
                    DocumentRow.status == DocumentStatus.PARSED.value,
                )
            )
            if child.default_marking_id not in (None, self.default_id) and child.id != doc.id
        ]
        raised_child = False
        for child in children:
            raised_child = self._default_conflict(child) or raised_child
        elements = list(self.orm.scalars(select(ElementRow).where(ElementRow.doc_id == doc.id)))
        inherited = [e for e in elements if e.marking_source == MarkingSource.SOURCE_DEFAULT.value]
        if not inherited and not raised_child:
            return False  # nothing took the default, so a different default changes nothing
        for element in inherited:
            element.marking_id = both_id
        markings = [self.session.marking_of(self.orm, e.marking_id) for e in elements]
        banner = self.session.marking_of(self.orm, doc.banner_marking_id)
        members = [
            self.session.marking_of(self.orm, m)
            for m in self.orm.scalars(
                select(DocumentRow.marking_id).where(
                    DocumentRow.parent_id == doc.id,
                    DocumentRow.status == DocumentStatus.PARSED.value,
                )
            )
        ]
        parts = [m for m in [*markings, banner, *members] if m is not None]
        current = self.session.marking_of(self.orm, doc.marking_id)
        if current is not None:
            parts.append(current)  # a re-mark never lowers the document
        doc.marking_id = self.session.intern_marking(self.orm, join(*parts) if parts else both)
        if inherited:
            doc.default_marking_id = both_id
        old_id = self.session.intern_marking(self.orm, old)
        follow_raised_document(
            self.session, self.orm, doc.id, {old_id: both_id} if inherited else None
        )
        self.finding(
            doc.id,
            "default-marking-conflict",
            f"ingested again under the default {self.default.banner()}; "
            f"inherited elements now take {both.banner()}",
        )
        self.events.append(
            {
                "action": AuditAction.INGEST_REMARK,
                "object_id": doc.id,
                "object_marking": both.banner(),
                "decision": "allow",
                "reason": "default-marking-conflict",
                "details": {"job": self.job_id},
            }
        )
        return True


def spill_kinds(decided: DecidedDocument) -> list[str]:
    """The finding kinds a spill keeps: ``spill`` and what else its decision found."""
    return sorted({f.kind for f in decided.findings} | {"spill"})


def spill_detail(kind: str) -> str:
    """A spill's finding detail: never anything of its content."""
    if kind == "spill":
        return "marking is not dominated by system high"
    return "a portion or banner mark is invalid"


#: Every column a new document row sets; one executemany needs the same keys in every row.
_DOCUMENT_COLUMNS = (
    "media_type",
    "filename",
    "title",
    "author",
    "created",
    "modified",
    "banner_marking_id",
    "marking_id",
    "default_marking_id",
)

#: What a spill's row loses: everything but its hash, size, location, status and reason.
SPILL_CLEARED_COLUMNS = (*_DOCUMENT_COLUMNS, "original_marking_id")


def _document_row(**values: Any) -> dict[str, Any]:
    return {**dict.fromkeys(_DOCUMENT_COLUMNS), **values}


# -- what the ingest driver calls -----------------------------------------------------------------


def ensure_source(session: Session, name: str, kind: str, uri: str, default: Marking) -> None:
    """Register the source ``name`` (with its default marking) unless it exists."""
    with session.workspace.catalog.transaction() as orm:
        if orm.scalar(select(SourceRow.id).where(SourceRow.name == name)) is None:
            orm.add(
                SourceRow(
                    name=name,
                    kind=kind,
                    uri=uri,
                    default_marking_id=session.intern_marking(orm, default),
                    created_by=session.subject.name,
                    created_at=utc_now(),
                )
            )


def document_known(session: Session, doc_id: str) -> bool:
    """Whether the catalog holds a document with these bytes (its hash) and a sound original
    (a damaged one is parsed again, and its original stored again)."""
    with session.workspace.catalog.transaction() as orm:
        row = orm.get(DocumentRow, doc_id)
        return row is not None and row.status != DocumentStatus.DAMAGED.value


def record_skipped(
    session: Session, job_id: str, uris: Sequence[str], reason: str, detail: str
) -> None:
    """Job items for inputs skipped without being read (no document)."""
    with session.workspace.catalog.transaction() as orm:
        for uri in uris:
            orm.add(
                JobItemRow(
                    job_id=job_id,
                    uri=uri,
                    doc_id=None,
                    outcome="skipped",
                    reason=reason,
                    detail=detail,
                )
            )


def write_batch(
    session: Session,
    job_id: str,
    source: str,
    default: Marking,
    entries: Sequence[DecidedDocument | Unreadable],
) -> list[WrittenFile]:
    """Write decided inputs in one transaction, their audit events appended before it commits.

    All or nothing: an audit failure rolls the whole batch back (and the markings interned in
    it are forgotten). Returns what happened to each input, in order.
    """
    results: list[WrittenFile] = []
    try:
        with session.workspace.catalog.transaction() as orm:
            writer = CatalogWriter(session, orm, job_id, source, default)
            for entry in entries:
                if isinstance(entry, Unreadable):
                    writer.item(entry.uri, None, "failed", "unreadable", entry.detail)
                    results.append(WrittenFile(entry.uri, "failed", None, "unreadable"))
                    continue
                before = writer.elements
                outcome = writer.write(entry, None)
                writer.supersede(entry.uri, entry.doc_id)
                reason = None if outcome in ("parsed", "unchanged") else entry.reason
                writer.item(entry.uri, entry.doc_id, outcome, reason)
                results.append(
                    WrittenFile(
                        entry.uri,
                        outcome,
                        entry.doc_id,
                        reason,
                        writer.elements - before,
                        entry.size,
                    )
                )
            writer.flush()  # constraint violations surface here, before anything is audited
            session.workspace.audit.append_many(session.subject.name, writer.events)
    except BaseException:
        # Marking ids interned in the rolled-back transaction no longer exist.
        session.forget_cached_markings()
        raise
    return results
