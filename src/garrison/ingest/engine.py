"""The ingest engine: files and databases -> blobs, documents, elements and findings.

One run is a *job*. For each input file the engine

1. reads the bytes and hashes them (the document id); bytes already in the catalog only gain a
   new location (and, under a different default marking, a ``default-marking-conflict``);
2. parses the file -- and its attachments, recursively -- in an isolated worker process with a
   time limit and a memory cap (:mod:`garrison.core.isolation`), so one hostile file fails
   alone;
3. applies the marking rules (:func:`garrison.ingest.marking.apply_markings`), children first:
   a container takes the join of its children; a spilled child makes its container a spill; a
   child with an invalid marking quarantines its container;
4. writes everything about that file in **one** catalog transaction, after its audit events are
   on disk: an ingest killed at any point and run again ends with the same catalog.

Spills keep nothing but their hash, size, location and reason: no blob, no text, no marking.
"""

from __future__ import annotations

import fnmatch
import hashlib
import os
import re
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import insert, select, update
from sqlalchemy.orm import Session as OrmSession

from garrison.core.clock import utc_now
from garrison.core.errors import InvalidInput
from garrison.core.isolation import Limits, Outcome, run_isolated
from garrison.core.records import (
    DocumentStatus,
    ElementType,
    MarkingSource,
    ParsedDocument,
    element_id,
)
from garrison.ingest._guard import SKIPPED_LINK, InputGuard, walk_inputs
from garrison.ingest.marking import (
    Finding,
    MarkedDocument,
    apply_markings,
    parse_banner_line,
)
from garrison.parse import ParseFailure, parse_bytes, warm_up
from garrison.security.markings import (
    Marking,
    find_portion_mark,
    join,
    system_high_dominates,
)
from garrison.security.policy import Action
from garrison.store.jobs import JobSummary, RunningJob, job, mark_stale_jobs
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
    "FileResult",
    "IngestOptions",
    "IngestReport",
    "ParseNode",
    "ingest_paths",
    "ingest_sql",
    "mark_stale_jobs",
]

ProgressFn = Callable[[int, int | None, str], None]


@dataclass(frozen=True)
class IngestOptions:
    """How to ingest; ``default_marking`` is required (a source without one is refused)."""

    default_marking: str
    source: str | None = None
    include: tuple[str, ...] = ()
    exclude: tuple[str, ...] = ()
    workers: int = 1
    limits: Limits = field(default_factory=Limits)
    #: Files larger than this are quarantined as ``too-large`` without being parsed.
    max_bytes: int = 512 * 1024 * 1024
    #: Attachments inside attachments... deeper than this are quarantined (``archive-limit``).
    max_depth: int = 5
    #: Options handed to every parser (``{"ocr": False}``, ``{"max_pages": 500}``...).
    parse_options: dict[str, object] = field(default_factory=dict)
    #: A column holding each row's marking (``--marking-column``): CSV/TSV and XLSX parsers
    #: (as the ``marking_column`` parse option) and database tables read it.
    marking_column: str | None = None

    def parser_options(self) -> dict[str, object]:
        """What every parser gets: ``parse_options`` plus ``marking_column`` when set."""
        if self.marking_column is None:
            return dict(self.parse_options)
        return {**self.parse_options, "marking_column": self.marking_column}


@dataclass
class FileResult:
    """What happened to one input."""

    uri: str
    outcome: str  # parsed | quarantined | spilled | unchanged | failed
    doc_id: str | None = None
    reason: str | None = None
    elements: int = 0
    size: int = 0


@dataclass
class IngestReport:
    """Summary of a job (what ``garrison ingest`` prints)."""

    job_id: str
    results: list[FileResult] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def counts(self) -> dict[str, Any]:
        outcomes = Counter(r.outcome for r in self.results)
        reasons = Counter(r.reason for r in self.results if r.outcome in ("quarantined", "failed"))
        return {
            "files": len(self.results),
            "parsed": outcomes["parsed"],
            "quarantined": outcomes["quarantined"] + outcomes["failed"],
            "quarantine_reasons": dict(sorted((str(k), v) for k, v in reasons.items())),
            "spilled": outcomes["spilled"],
            "unchanged": outcomes["unchanged"],
            "elements": sum(r.elements for r in self.results),
            "bytes": sum(r.size for r in self.results),
        }

    def to_dict(self) -> dict[str, Any]:
        return {
            "job_id": self.job_id,
            **self.counts,
            "seconds": round(self.seconds, 3),
            "documents": [
                {"uri": r.uri, "id": r.doc_id, "status": r.outcome, "reason": r.reason}
                for r in self.results
            ],
        }


# -- parsing (runs in the worker process) -------------------------------------------------------


@dataclass
class ParseNode:
    """A parsed file and its parsed attachments; built in the worker, marked in the parent."""

    doc_id: str
    size: int
    filename: str | None
    uri: str
    data: bytes | None
    parsed: ParsedDocument | None = None
    failure: tuple[str, str] | None = None
    children: list[ParseNode] = field(default_factory=list)


@dataclass(frozen=True)
class _Task:
    uri: str
    filename: str | None
    data: bytes
    max_depth: int
    max_bytes: int
    options: tuple[tuple[str, object], ...] = ()


def _parse_tree(task: _Task) -> ParseNode:
    return _parse_node(
        task.data, task.filename, task.uri, 0, task.max_depth, task.max_bytes, dict(task.options)
    )


def _parse_node(
    data: bytes,
    filename: str | None,
    uri: str,
    depth: int,
    max_depth: int,
    max_bytes: int,
    options: dict[str, object] | None = None,
) -> ParseNode:
    options = options or {}
    node = ParseNode(hashlib.sha256(data).hexdigest(), len(data), filename, uri, data)
    if len(data) > max_bytes:
        node.failure = ("too-large", f"the file is larger than {max_bytes} bytes")
        return node
    try:
        node.parsed = parse_bytes(data, filename=filename, **options)
    except ParseFailure as exc:
        node.failure = (exc.reason, exc.detail)
        return node
    except MemoryError:
        raise  # the isolation layer reports it as memory-limit
    except RecursionError:
        node.failure = ("hostile-content", "the file is nested too deeply to parse")
        return node
    except Exception as exc:  # a parser bug must fail this file only, never the run
        # The type only: a library's message may quote the file's content.
        node.failure = ("corrupt", f"the parser failed ({type(exc).__name__})")
        return node
    for index, attachment in enumerate(node.parsed.attachments):
        name = attachment.filename or f"attachment-{index}"
        child_uri = f"{uri}#{name}"
        if depth + 1 > max_depth:
            child = ParseNode(
                hashlib.sha256(attachment.data).hexdigest(),
                len(attachment.data),
                attachment.filename,
                child_uri,
                attachment.data,
                failure=("archive-limit", f"nested deeper than {max_depth} levels"),
            )
        else:
            child = _parse_node(
                attachment.data,
                attachment.filename,
                child_uri,
                depth + 1,
                max_depth,
                max_bytes,
                options,
            )
        node.children.append(child)
    # Attachment bytes now live in the children; do not ship them twice.
    node.parsed = node.parsed.model_copy(update={"attachments": ()})
    return node


# -- deciding markings (parent) -----------------------------------------------------------------


@dataclass
class _Decided:
    node: ParseNode
    status: DocumentStatus
    reason: str | None
    marked: MarkedDocument | None
    findings: list[Finding]
    marking: Marking | None
    children: list[_Decided]


def _decide(node: ParseNode, default: Marking, system_high: Marking, session: Session) -> _Decided:
    children = [_decide(c, default, system_high, session) for c in node.children]
    if node.failure is not None or node.parsed is None:
        code, _ = node.failure or ("corrupt", "nothing was parsed")
        return _Decided(node, DocumentStatus.QUARANTINED, code, None, [], None, children)
    marked = apply_markings(
        node.parsed,
        default=default,
        system_high=system_high,
        registry=session.workspace.registry,
        # File, folder and member names are text of the document: a mark in one raises it.
        names=(node.filename, *_URI_PARTS.split(node.uri)),
    )
    findings = list(marked.findings) + _warning_findings(node.parsed)
    status, marking = marked.status, marked.marking
    reason: str | None = marked.reason
    if any(c.status is DocumentStatus.SPILLED for c in children):
        if status is not DocumentStatus.SPILLED:
            findings.append(Finding("spill", "an attachment is a spill"))
        status, reason, marking = DocumentStatus.SPILLED, "spill", None
    elif status is DocumentStatus.PARSED:
        if any(c.reason == "invalid-marking" for c in children):
            findings.append(Finding("invalid-marking", "an attachment has an invalid marking"))
            status, reason, marking = DocumentStatus.QUARANTINED, "invalid-marking", None
        else:
            for index, child in enumerate(children):
                if child.status is DocumentStatus.QUARANTINED:
                    findings.append(
                        Finding("attachment-quarantined", f"an attachment is {child.reason}")
                    )
                    # What could not be read may hold anything: the container says so.
                    findings.append(
                        Finding(
                            "unreadable-content",
                            f"{_part_name(index)} could not be read ({child.reason})",
                        )
                    )
            parts = [c.marking for c in children if c.marking is not None]
            if marking is not None and parts:
                marking = join(marking, *parts)
                if not system_high_dominates(system_high, marking):
                    findings.append(Finding("spill", "marking is not dominated by system high"))
                    status, reason, marking = DocumentStatus.SPILLED, "spill", None
    return _Decided(node, status, reason, marked, findings, marking, children)


_URI_PARTS = re.compile(r"[/\\#]")


def _part_name(index: int) -> str:
    """How a finding names an attachment or member: ``attachment 2`` -- never its name, which
    may carry a mark or the very text that could not be read."""
    return f"attachment {index + 1}"


#: Parser warnings that become findings (``"active-content: a JavaScript action"``);
#: ``unreadable-content: <part>`` names a part the parser could not read (an embedded object,
#: an image without OCR...).
WARNING_FINDINGS = frozenset(
    {"active-content", "no-text-layer", "ocr-low-confidence", "unreadable-content"}
)


def _warning_findings(parsed: ParsedDocument) -> list[Finding]:
    """Parser warnings of a known kind (``kind`` or ``kind: detail``) as findings."""
    out: list[Finding] = []
    for warning in parsed.warnings:
        kind, _, detail = warning.partition(":")
        if kind.strip() in WARNING_FINDINGS:
            out.append(Finding(kind.strip(), detail.strip() or kind.strip()))
    return out


# -- writing (parent) ---------------------------------------------------------------------------


class _Writer:
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
        #: Documents and locations written by this writer but not yet inserted.
        self.pending: set[str] = set()
        self.pending_locations: set[tuple[str, str]] = set()
        #: Every document this writer saw (written or seen again), children included.
        self.seen: set[str] = set()

    def flush(self) -> None:
        """Insert every collected row: one executemany per table, documents first."""
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

    def write(self, decided: _Decided, parent_id: str | None, *, spill_tree: bool = False) -> str:
        """Write ``decided`` and its children; returns the outcome for the root."""
        node = decided.node
        self.seen.add(node.doc_id)
        if node.doc_id in self.pending:
            # Written earlier in this transaction (same bytes twice): under the same default.
            self.location(node.doc_id, node.uri, parent_id)
            return "unchanged"
        existing = self.orm.get(DocumentRow, node.doc_id)
        if existing is not None:
            self.location(node.doc_id, node.uri, parent_id)
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
            self.write(child, node.doc_id, spill_tree=spilled)
        if spilled:
            self._write_spill(decided, parent_id)
            return "spilled"
        parsed = node.parsed
        banner = decided.marked.banner if decided.marked is not None else None
        row = _document_row(
            id=node.doc_id,
            status=decided.status.value,
            reason=decided.reason,
            size=node.size,
            media_type=parsed.media_type if parsed else None,
            filename=node.filename,
            uri=node.uri,
            source_name=self.source,
            parent_id=parent_id,
            title=_title(decided),
            author=decided.marked.author if decided.marked is not None else None,
            created=parsed.created if parsed else None,
            modified=parsed.modified if parsed else None,
            blob=node.data is not None,
            job_id=self.job_id,
            ingested_at=utc_now(),
            meta=_meta(decided),
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
        if node.data is not None:
            self.session.workspace.blobs.put(node.data)
        self.documents.append(row)
        self.pending.add(node.doc_id)
        ids: list[str] = []
        if decided.status is DocumentStatus.PARSED and decided.marked is not None:
            ids = self._write_elements(node.doc_id, decided.marked, node.parsed)
        self._write_findings(node.doc_id, decided.findings, ids)
        self.location(node.doc_id, node.uri, parent_id, new=True)
        self.events.append(
            {
                "action": "ingest.document",
                "object_id": node.doc_id,
                "object_marking": decided.marking.banner() if decided.marking else None,
                "decision": "allow" if decided.status is DocumentStatus.PARSED else "deny",
                "reason": decided.reason,
                "details": {
                    "status": decided.status.value,
                    "uri": node.uri,
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
                        "action": "ingest.supersede",
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

    def _write_spill(self, decided: _Decided, parent_id: str | None) -> None:
        node = decided.node
        self.documents.append(
            _document_row(
                id=node.doc_id,
                status=DocumentStatus.SPILLED.value,
                reason="spill",
                size=node.size,
                uri=node.uri,
                source_name=self.source,
                parent_id=parent_id,
                blob=False,
                job_id=self.job_id,
                ingested_at=utc_now(),
                meta={},
            )
        )
        self.pending.add(node.doc_id)
        kinds = {f.kind for f in decided.findings} | {"spill"}
        for kind in sorted(kinds):
            detail = (
                "marking is not dominated by system high"
                if kind == "spill"
                else "a portion or banner mark is invalid"
            )
            self.findings.append(
                {
                    "doc_id": node.doc_id,
                    "element_id": None,
                    "kind": kind,
                    "detail": detail,
                    "job_id": self.job_id,
                    "created_at": utc_now(),
                }
            )
        self.location(node.doc_id, node.uri, parent_id, new=True)
        self.events.append(
            {
                "action": "ingest.spill",
                "object_id": node.doc_id,
                "object_marking": None,
                "decision": "deny",
                "reason": "spill",
                "details": {"uri": node.uri, "size": node.size, "job": self.job_id},
            }
        )

    def _write_elements(
        self, doc_id: str, marked: MarkedDocument, source: ParsedDocument | None
    ) -> list[str]:
        ids = [element_id(doc_id, seq, e.text) for seq, e in enumerate(marked.elements)]
        # A parser's ``parent`` is an index into its own output; banner lines were removed and
        # paragraphs split at their marks since, so map through the parser's element objects
        # (a split paragraph's first part stands for it) to the stored ids.
        position: dict[int, int] = {}
        for seq, e in enumerate(marked.elements):
            position.setdefault(id(e.origin if e.origin is not None else e.parsed), seq)
        originals = source.elements if source is not None else ()
        rows: list[dict[str, Any]] = []
        for seq, element in enumerate(marked.elements):
            parsed = element.parsed
            eid = ids[seq]
            data = parsed.model_dump(
                mode="json",
                exclude={"type", "text", "page", "parent", "section_path", "declared_marking"},
                exclude_defaults=True,
            )
            if element.section_path:
                # Headings with their marks stripped, each with its own marking.
                data["section_path"] = list(element.section_path)
                data["section_marking_ids"] = [
                    self.session.intern_marking(self.orm, m) for m in element.section_markings
                ]
            if element.field_markings:
                data["field_markings"] = dict(element.field_markings)
            if parsed.parent is not None and 0 <= parsed.parent < len(originals):
                parent_seq = position.get(id(originals[parsed.parent]))
                if parent_seq is not None:
                    data["parent_id"] = ids[parent_seq]
            rows.append(
                {
                    "id": eid,
                    "doc_id": doc_id,
                    "seq": seq,
                    "type": parsed.type.value,
                    "text": element.text,
                    "page": parsed.page,
                    "marking_id": self.session.intern_marking(self.orm, element.marking),
                    "marking_source": element.marking_source.value,
                    "original_marking_id": None,
                    "data": data,
                }
            )
        # Inserted by flush with one executemany for the whole transaction.
        self.element_rows.extend(rows)
        self.elements += len(ids)
        return ids

    def _write_findings(self, doc_id: str, findings: Iterable[Finding], ids: list[str]) -> None:
        for finding in findings:
            element = (
                ids[finding.element_index]
                if finding.element_index is not None and finding.element_index < len(ids)
                else None
            )
            self.findings.append(
                {
                    "doc_id": doc_id,
                    "element_id": element,
                    "kind": finding.kind,
                    "detail": finding.detail,
                    "job_id": self.job_id,
                    "created_at": utc_now(),
                }
            )

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
        self.findings.append(
            {
                "doc_id": doc.id,
                "element_id": None,
                "kind": "default-marking-conflict",
                "detail": f"ingested again under the default {self.default.banner()}; "
                f"inherited elements now take {both.banner()}",
                "job_id": self.job_id,
                "created_at": utc_now(),
            }
        )
        self.events.append(
            {
                "action": "ingest.remark",
                "object_id": doc.id,
                "object_marking": both.banner(),
                "decision": "allow",
                "reason": "default-marking-conflict",
                "details": {"job": self.job_id},
            }
        )
        return True


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


def _document_row(**values: Any) -> dict[str, Any]:
    return {**dict.fromkeys(_DOCUMENT_COLUMNS), **values}


def _title(decided: _Decided) -> str | None:
    """The document's title -- never a banner line, never a portion mark (a mark at the start of
    the title property raised the document's marking and is stripped)."""
    parsed, marked = decided.node.parsed, decided.marked
    if parsed is None:
        return None
    title = marked.title if marked is not None and marked.status is DocumentStatus.PARSED else None
    if title is None and marked is None:
        title = parsed.title
    if title and parse_banner_line(title) is None and find_portion_mark(title) is None:
        return title
    if marked is not None:
        for element in marked.elements:
            if element.parsed.type is ElementType.TITLE and element.text.strip():
                return element.text.strip()
    return None


def _meta(decided: _Decided) -> dict[str, Any]:
    meta: dict[str, Any] = {}
    if decided.node.failure is not None:
        meta["reason_detail"] = decided.node.failure[1]
    parsed, marked = decided.node.parsed, decided.marked
    if parsed is not None:
        meta["extraction"] = parsed.extraction.model_dump(mode="json")
        metadata: Any = parsed.metadata
        if marked is not None and marked.status is DocumentStatus.PARSED:
            metadata = marked.metadata  # leading marks stripped; they raised the marking
        elif marked is not None:
            metadata = None  # quarantined for its markings: values may hold what was unreadable
        if metadata:
            meta["metadata"] = dict(metadata)
        if parsed.warnings:
            meta["warnings"] = list(parsed.warnings)
    return meta


# -- jobs -----------------------------------------------------------------------------------------


# -- driving --------------------------------------------------------------------------------------


def _source_name(options: IngestOptions, first: str) -> str:
    return options.source or first


def _prepare(session: Session, options: IngestOptions) -> Marking:
    session.require(Action.INGEST, "ingest.start")
    default = session.parse_marking(options.default_marking)
    if not system_high_dominates(session.workspace.system_high, default):
        raise InvalidInput(
            f"The default marking {default.banner()} is not dominated by the workspace's system "
            f"high ({session.workspace.system_high.banner()}); choose a lower default."
        )
    return default


def _ensure_source(session: Session, name: str, kind: str, uri: str, default: Marking) -> None:
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


def iter_files(
    paths: Sequence[str],
    include: Sequence[str],
    exclude: Sequence[str],
    *,
    guard: InputGuard | None = None,
    skipped: list[str] | None = None,
) -> Iterator[tuple[Path, str]]:
    """Every file under ``paths`` (recursively, sorted) that passes the include/exclude globs.

    Globs match the path relative to the directory given, or the file name. Symbolic links to
    directories are not followed (no loops); a link that leads out of the directory given is
    not followed either, and its own path goes to ``skipped``. ``guard`` refuses workspace
    material (InvalidInput); a folder holding a ``garrison.toml`` is refused in any case.
    """
    for raw in paths:
        root = Path(raw)
        if guard is not None:
            guard.check_path(root, raw)
        if root.is_file():
            candidates = [(root, root.name)]
        elif root.is_dir():
            candidates = sorted(
                ((p, p.relative_to(root).as_posix()) for p in _walk(root, skipped, guard)),
                key=lambda t: t[1],
            )
        else:
            raise InvalidInput(f"Nothing to ingest at {raw}: no such file or directory.")
        for path, rel in candidates:

            def hit(globs: Sequence[str], rel: str = rel, name: str = path.name) -> bool:
                return any(fnmatch.fnmatch(rel, g) or fnmatch.fnmatch(name, g) for g in globs)

            if include and not hit(include):
                continue
            if exclude and hit(exclude):
                continue
            yield path, rel


def _walk(
    root: Path, skipped: list[str] | None = None, guard: InputGuard | None = None
) -> Iterator[Path]:
    yield from walk_inputs(root, skipped if skipped is not None else [], guard)


def ingest_paths(
    session: Session,
    paths: Sequence[str],
    options: IngestOptions,
    *,
    progress: ProgressFn | None = None,
) -> IngestReport:
    """Ingest files and directories as ``session``'s subject (a steward); returns the report."""
    default = _prepare(session, options)
    skipped: list[str] = []
    guard = InputGuard(session.workspace)  # never the workspace itself, nor links out
    files = list(iter_files(paths, options.include, options.exclude, guard=guard, skipped=skipped))
    warm_up()  # import parser libraries once here, not once per forked worker
    # Tesseract's OpenMP threads would oversubscribe the cores that the workers already use.
    os.environ.setdefault("OMP_THREAD_LIMIT", "1")
    source = _source_name(options, str(Path(paths[0]).absolute()) if paths else "files")
    _ensure_source(session, source, "files", source, default)
    params = {
        "paths": [str(Path(p).absolute()) for p in paths],
        "default_marking": default.banner(),
        "source": source,
        "include": list(options.include),
        "exclude": list(options.exclude),
        "workers": options.workers,
    }
    with job(session, "ingest", params) as running:
        running.set_total(len(files))
        report = IngestReport(running.id)
        if skipped:
            # Reported as the link's own path: where it pointed is not repeated anywhere.
            with session.workspace.catalog.transaction() as orm:
                for link in skipped:
                    orm.add(
                        JobItemRow(
                            job_id=running.id,
                            uri=link,
                            doc_id=None,
                            outcome="skipped",
                            reason=SKIPPED_LINK,
                            detail="a symbolic link out of the folder given; not followed",
                        )
                    )
            report.results += [FileResult(link, "skipped", None, SKIPPED_LINK) for link in skipped]
        running.summarize(lambda: _job_summary(report))
        started = time.monotonic()
        batch = _Batch(session, default, source, running.id, report, len(files), progress)
        try:
            tasks = _tasks(session, files, options, default, batch)
            for task, outcome in run_isolated(
                tasks, _parse_tree, workers=max(1, options.workers), limits=options.limits
            ):
                batch.add(_node_from_outcome(task, outcome))
            batch.commit()
        finally:
            report.seconds = time.monotonic() - started
    return report


def _job_summary(report: IngestReport) -> JobSummary:
    return JobSummary(report.counts, len(report.results), details=report.counts)


def _tasks(
    session: Session,
    files: Sequence[tuple[Path, str]],
    options: IngestOptions,
    default: Marking,
    batch: _Batch,
) -> Iterator[_Task]:
    """Read each file; known bytes and unreadable files are settled here, without a worker."""
    for path, _rel in files:
        uri = str(path.absolute())
        try:
            size = path.stat().st_size
            data = b"" if size > options.max_bytes else path.read_bytes()
        except OSError as exc:
            batch.add_unreadable(uri, exc)
            continue
        if size > options.max_bytes:
            # Too big to hold: quarantine by the hash of a streamed read, without parsing.
            node = ParseNode(
                _hash_file(path),
                size,
                path.name,
                uri,
                None,
                failure=("too-large", f"the file is larger than {options.max_bytes} bytes"),
            )
            batch.add(node)
            continue
        doc_id = hashlib.sha256(data).hexdigest()
        with session.workspace.catalog.transaction() as orm:
            known = orm.get(DocumentRow, doc_id) is not None
        if known:
            batch.add(ParseNode(doc_id, len(data), path.name, uri, None))
            continue
        yield _Task(
            uri,
            path.name,
            data,
            options.max_depth,
            options.max_bytes,
            tuple(sorted(options.parser_options().items())),
        )


def _hash_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _node_from_outcome(task: _Task, outcome: Outcome[ParseNode]) -> ParseNode:
    if outcome.ok and outcome.value is not None:
        node = outcome.value
        node.data = task.data  # the worker does not send the original back
        return node
    reason = {"timeout": "timeout", "memory-limit": "memory-limit"}.get(
        outcome.reason or "", "corrupt"
    )
    detail = outcome.detail or "the parser failed"
    if outcome.reason == "crashed":
        detail = f"the parser crashed ({detail})"
    return ParseNode(
        hashlib.sha256(task.data).hexdigest(),
        len(task.data),
        task.filename,
        task.uri,
        task.data,
        failure=(reason, detail),
    )


class _Batch:
    """Consecutive files written in one catalog transaction with one audit append.

    Bounded (:attr:`MAX_FILES` files, or :attr:`MAX_SECONDS` since the first file waiting) so
    progress stays fresh. All or nothing, fail closed: every audit event of the batch is on
    disk (one write, one fsync) before the transaction commits, and an audit failure rolls the
    whole batch back. A process killed mid-batch leaves none of it in the catalog (a run
    resumed later does it again); results and progress are reported only after the commit.
    """

    MAX_FILES = 32
    MAX_SECONDS = 0.5

    def __init__(
        self,
        session: Session,
        default: Marking,
        source: str,
        job_id: str,
        report: IngestReport,
        total: int | None,
        progress: ProgressFn | None,
    ) -> None:
        self.session = session
        self.default = default
        self.source = source
        self.job_id = job_id
        self.report = report
        self.total = total
        self.progress = progress
        #: Decided trees, and ``(uri, detail)`` for files that could not be read.
        self.waiting: list[_Decided | tuple[str, str]] = []
        self.since = 0.0

    def add(self, node: ParseNode) -> None:
        """Queue one file (decided now, written by :meth:`commit`)."""
        self._queue(_decide(node, self.default, self.session.workspace.system_high, self.session))

    def add_unreadable(self, uri: str, exc: OSError) -> None:
        """Queue a file that could not be read (a failed job item, no document)."""
        self._queue((uri, f"cannot be read ({exc.strerror})"))

    def _queue(self, entry: _Decided | tuple[str, str]) -> None:
        if not self.waiting:
            self.since = time.monotonic()
        self.waiting.append(entry)
        if len(self.waiting) >= self.MAX_FILES or time.monotonic() - self.since >= self.MAX_SECONDS:
            self.commit()

    def _write(self, results: list[FileResult]) -> None:
        """The queued files in one transaction, their audit events appended before it commits."""
        session = self.session
        with session.workspace.catalog.transaction() as orm:
            writer = _Writer(session, orm, self.job_id, self.source, self.default)
            for entry in self.waiting:
                if isinstance(entry, tuple):
                    uri, detail = entry
                    writer.items.append(
                        {
                            "job_id": self.job_id,
                            "uri": uri,
                            "doc_id": None,
                            "outcome": "failed",
                            "reason": "unreadable",
                            "detail": detail,
                        }
                    )
                    results.append(FileResult(uri, "failed", None, "unreadable"))
                    continue
                node = entry.node
                before = writer.elements
                outcome = writer.write(entry, None)
                writer.supersede(node.uri, node.doc_id)
                reason = None if outcome in ("parsed", "unchanged") else entry.reason
                writer.items.append(
                    {
                        "job_id": self.job_id,
                        "uri": node.uri,
                        "doc_id": node.doc_id,
                        "outcome": outcome,
                        "reason": reason,
                        "detail": None,
                    }
                )
                results.append(
                    FileResult(
                        node.uri, outcome, node.doc_id, reason, writer.elements - before, node.size
                    )
                )
            writer.flush()  # constraint violations surface here, before anything is audited
            session.workspace.audit.append_many(session.subject.name, writer.events)

    def commit(self) -> None:
        """Write every queued file in one transaction, audit first; then report them."""
        if not self.waiting:
            return
        session = self.session
        results: list[FileResult] = []
        try:
            self._write(results)
        except BaseException:
            # Marking ids interned in the rolled-back transaction no longer exist.
            session.forget_cached_markings()
            raise
        self.waiting = []
        for result in results:
            self.report.results.append(result)
            _progress(session, self.job_id, self.report, self.total, result.uri, self.progress)


def _progress(
    session: Session,
    job_id: str,
    report: IngestReport,
    total: int | None,
    uri: str,
    progress: ProgressFn | None,
) -> None:
    done = len(report.results)
    if done % 25 == 0 or done == total:
        RunningJob(session, job_id).progress(done)
    if progress is not None:
        progress(done, total, uri)


def ingest_sql(
    session: Session,
    url: str,
    options: IngestOptions,
    *,
    tables: Sequence[str] = (),
    query: str | None = None,
    progress: ProgressFn | None = None,
) -> IngestReport:
    """Ingest database tables (or a query's result) as table-snapshot documents."""
    from garrison.ingest.sql import read_sql

    default = _prepare(session, options)
    InputGuard(session.workspace).check_sql(url)  # never a Garrison catalog
    snapshots = read_sql(  # connection problems: exit 5
        url, tables=tables, query=query, marking_column=options.marking_column
    )
    source = options.source or (snapshots[0].uri.split("#")[0] if snapshots else url)
    _ensure_source(session, source, "sql", source, default)
    params = {
        "url": source,
        "tables": list(tables),
        "query": query,
        "default_marking": default.banner(),
        "source": source,
    }
    with job(session, "ingest", params) as running:
        running.set_total(len(snapshots))
        report = IngestReport(running.id)
        running.summarize(lambda: _job_summary(report))
        started = time.monotonic()
        batch = _Batch(session, default, source, running.id, report, len(snapshots), progress)
        try:
            for snapshot in snapshots:
                node = ParseNode(
                    hashlib.sha256(snapshot.canonical).hexdigest(),
                    len(snapshot.canonical),
                    snapshot.name,
                    snapshot.uri,
                    snapshot.canonical,
                    parsed=snapshot.document,
                )
                batch.add(node)
            batch.commit()
        finally:
            report.seconds = time.monotonic() - started
    return report
