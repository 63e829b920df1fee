"""Applying a re-parsed document tree to the catalog (``garrison ingest --reparse``).

Ingest re-parses a stored original and decides its marking under the current rules; this
module compares the decision with what the catalog holds and applies it -- raise, restructure,
spill, quarantine, add -- in one transaction per tree, never lowering a marking (see
:mod:`garrison.ingest.reparse`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import delete, insert, or_, select
from sqlalchemy.orm import Session as OrmSession

from garrison.core.errors import InvalidInput
from garrison.core.records import DocumentStatus
from garrison.security.audit import AuditAction
from garrison.security.markings import Marking, join
from garrison.store.derived import follow_raised_document
from garrison.store.ingest_writer import (
    SPILL_CLEARED_COLUMNS,
    CatalogWriter,
    DecidedDocument,
    spill_detail,
    spill_kinds,
)
from garrison.store.models import (
    ChunkRow,
    DocumentLocation,
    DocumentRow,
    ElementRow,
    FindingRow,
    SourceRow,
)
from garrison.store.pipeline_state import delete_derived
from garrison.store.session import Session

__all__ = ["Moved", "apply_reparsed", "reparse_roots"]


@dataclass
class Moved:
    """What a reparse did to one document."""

    doc_id: str
    uri: str
    change: str
    reason: str | None = None
    #: Elements re-marked (raised) or now in the document (restructured, added).
    elements: int = 0
    #: Chunks re-marked (raised) or dropped for the next run to redo.
    chunks: int = 0
    findings: list[str] = field(default_factory=list)
    #: The document's marking now, when the acting subject may read it.
    marking: str | None = None

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "id": self.doc_id,
            "uri": self.uri,
            "change": self.change,
            "reason": self.reason,
            "elements": self.elements,
            "chunks": self.chunks,
            "findings": list(self.findings),
        }
        if self.marking is not None:
            out["marking"] = self.marking
        return out


def reparse_roots(
    session: Session, paths: Sequence[str]
) -> list[tuple[str, str, str | None, int | None]]:
    """Top-level documents with a stored original that the subject may know of:
    ``(id, uri, filename, default marking id)``, oldest first."""
    with session.workspace.catalog.transaction() as orm:
        # A database table's snapshot is no file to parse again: re-ingest the table instead.
        tables = select(SourceRow.name).where(SourceRow.kind == "sql")
        query = select(DocumentRow).where(
            DocumentRow.parent_id.is_(None),
            DocumentRow.blob,
            DocumentRow.source_name.not_in(tables),
            or_(
                DocumentRow.status == DocumentStatus.QUARANTINED.value,
                (DocumentRow.status == DocumentStatus.PARSED.value)
                & session.readable_clause(orm, DocumentRow.marking_id),
            ),
        )
        if paths:
            wanted = [str(Path(p).absolute()) for p in paths]
            condition = or_(
                *(
                    (DocumentLocation.uri == w)
                    | DocumentLocation.uri.startswith(w.rstrip("/") + "/")
                    for w in wanted
                )
            )
            ids = select(DocumentLocation.doc_id).where(
                DocumentLocation.parent_id.is_(None), condition
            )
            query = query.where(DocumentRow.id.in_(ids))
        rows = list(orm.scalars(query.order_by(DocumentRow.ingested_at, DocumentRow.id)))
        if paths and not rows:
            raise InvalidInput("No stored document was ingested from the paths given.")
        return [(r.id, r.uri, r.filename, r.default_marking_id) for r in rows]


# -- applying one tree -----------------------------------------------------------------------------


@dataclass
class _Tree:
    """What one document tree's transaction collects."""

    writer: CatalogWriter
    results: list[Moved] = field(default_factory=list)
    #: Documents whose index rows go after the commit, and originals to delete after that.
    unindex: list[str] = field(default_factory=list)
    blobs: list[str] = field(default_factory=list)


def apply_reparsed(
    session: Session,
    job_id: str,
    doc_id: str,
    default_id: int | None,
    decide: Callable[[Marking], DecidedDocument],
) -> list[Moved]:
    """Apply what the current rules decide about the stored tree of ``doc_id`` (re-parsed),
    in one transaction with its audit events on disk first; returns what moved.

    ``decide`` gets the document's source default (read in the same transaction) and returns
    the decided tree.
    """
    try:
        with session.workspace.catalog.transaction() as orm:
            default = session.marking_of(orm, default_id)
            if default is None:
                raise InvalidInput(f"Document {doc_id} has no source default to reparse under.")
            decided = decide(default)
            root = orm.get(DocumentRow, doc_id)
            assert root is not None
            tree = _Tree(CatalogWriter(session, orm, job_id, root.source_name, default))
            _apply(session, orm, tree, decided, root.parent_id, spilled=False)
            tree.writer.flush()
            session.workspace.audit.append_many(session.subject.name, tree.writer.events)
    except BaseException:
        session.forget_cached_markings()  # ids interned in the rolled-back transaction are gone
        raise
    if tree.unindex:
        session.workspace.index.replace_documents(tree.unindex, [])
    for blob in tree.blobs:
        session.workspace.blobs.delete(blob)
    return tree.results


def _apply(
    session: Session,
    orm: OrmSession,
    tree: _Tree,
    decided: DecidedDocument,
    parent_id: str | None,
    *,
    spilled: bool,
) -> None:
    row = orm.get(DocumentRow, decided.doc_id)
    if row is None:
        if not spilled and decided.status is not DocumentStatus.SPILLED:
            # A part the earlier parsers did not find: ingested now.
            tree.writer.write(decided, parent_id)
            tree.writer.flush()
            elements = _count_elements(orm, decided.doc_id)
            tree.results.append(
                Moved(decided.doc_id, decided.uri, "added", decided.reason, elements)
            )
        return
    if row.status == DocumentStatus.SPILLED.value or row.id in tree.writer.seen:
        return
    tree.writer.seen.add(row.id)
    now_spilled = spilled or decided.status is DocumentStatus.SPILLED
    for child in decided.children:
        _apply(session, orm, tree, child, row.id, spilled=now_spilled)
    if now_spilled:
        if decided.status is DocumentStatus.SPILLED:
            _spill(session, orm, tree, row, decided)
        elif _only_inside(orm, row.id, parent_id):
            _drop(orm, tree, row)  # the rest of a spilled container is the spill's content
        return
    if row.status == DocumentStatus.QUARANTINED.value:
        tree.results.append(Moved(row.id, row.uri, "unchanged", row.reason))
        return
    if decided.status is DocumentStatus.QUARANTINED:
        _quarantine(session, orm, tree, row, decided)
        return
    _update(session, orm, tree, row, decided)


def _count_elements(orm: OrmSession, doc_id: str) -> int:
    return len(list(orm.scalars(select(ElementRow.id).where(ElementRow.doc_id == doc_id))))


def _only_inside(orm: OrmSession, doc_id: str, container: str | None) -> bool:
    """Whether ``doc_id`` was seen only inside ``container`` (no location of its own)."""
    other = orm.scalar(
        select(DocumentLocation.id)
        .where(DocumentLocation.doc_id == doc_id)
        .where(
            DocumentLocation.parent_id.is_(None) | (DocumentLocation.parent_id != (container or ""))
        )
        .limit(1)
    )
    return other is None


def _clear_derived(orm: OrmSession, doc_id: str, *, elements: bool) -> int:
    """Delete the pipeline's records of ``doc_id`` (and its elements); returns the chunk count."""
    chunks = len(list(orm.scalars(select(ChunkRow.id).where(ChunkRow.doc_id == doc_id))))
    delete_derived(orm, [doc_id])  # element states, chunks, pipeline findings, run keys
    if elements:
        orm.execute(delete(ElementRow).where(ElementRow.doc_id == doc_id))
    return chunks


def _event(tree: _Tree, action: str, row: DocumentRow, change: str, marking: str | None) -> None:
    tree.writer.events.append(
        {
            "action": action,
            "object_id": row.id,
            "object_marking": marking,
            "decision": "allow" if change not in ("spilled", "quarantined") else "deny",
            "reason": change,
            "details": {"uri": row.uri, "job": tree.writer.job_id, "change": change},
        }
    )


def _spill(
    session: Session, orm: OrmSession, tree: _Tree, row: DocumentRow, decided: DecidedDocument
) -> None:
    """Now above system high: keep nothing but the hash, size, location and reason."""
    chunks = _clear_derived(orm, row.id, elements=True)
    orm.execute(delete(FindingRow).where(FindingRow.doc_id == row.id))
    if row.blob:
        tree.blobs.append(row.id)
    for column in SPILL_CLEARED_COLUMNS:
        setattr(row, column, None)
    row.status, row.reason, row.blob, row.meta = DocumentStatus.SPILLED.value, "spill", False, {}
    kinds = spill_kinds(decided)
    for kind in kinds:
        tree.writer.finding(row.id, kind, spill_detail(kind))
    tree.unindex.append(row.id)
    _event(tree, AuditAction.INGEST_SPILL, row, "spilled", None)
    tree.results.append(Moved(row.id, row.uri, "spilled", "spill", 0, chunks, kinds))


def _drop(orm: OrmSession, tree: _Tree, row: DocumentRow) -> None:
    """A part seen only inside a container that is now a spill goes with it."""
    chunks = _clear_derived(orm, row.id, elements=True)
    orm.execute(delete(FindingRow).where(FindingRow.doc_id == row.id))
    orm.execute(delete(DocumentLocation).where(DocumentLocation.doc_id == row.id))
    if row.blob:
        tree.blobs.append(row.id)
    tree.unindex.append(row.id)
    _event(tree, AuditAction.INGEST_SPILL, row, "removed", None)
    tree.results.append(Moved(row.id, row.uri, "removed", "spill", 0, chunks))
    orm.delete(row)


def _quarantine(
    session: Session, orm: OrmSession, tree: _Tree, row: DocumentRow, decided: DecidedDocument
) -> None:
    """The current rules reject it: no elements, no marking; the original stays."""
    chunks = _clear_derived(orm, row.id, elements=True)
    row.status, row.reason = DocumentStatus.QUARANTINED.value, decided.reason
    row.marking_id = row.banner_marking_id = None
    row.title = row.author = None
    new = _new_findings(orm, tree, row.id, decided)
    tree.unindex.append(row.id)
    _event(tree, AuditAction.INGEST_REPARSE, row, "quarantined", None)
    tree.results.append(Moved(row.id, row.uri, "quarantined", decided.reason, 0, chunks, new))


def _new_findings(
    orm: OrmSession, tree: _Tree, doc_id: str, decided: DecidedDocument, ids: Sequence[str] = ()
) -> list[str]:
    """Add the findings of ``decided`` that the document does not carry yet; their kinds."""
    have = {
        (kind, detail)
        for kind, detail in orm.execute(
            select(FindingRow.kind, FindingRow.detail).where(FindingRow.doc_id == doc_id)
        )
    }
    added: list[str] = []
    for finding in decided.findings:
        if (finding.kind, finding.detail) in have:
            continue
        have.add((finding.kind, finding.detail))
        index = finding.element_index
        element = ids[index] if index is not None and index < len(ids) else None
        tree.writer.finding(doc_id, finding.kind, finding.detail, element)
        added.append(finding.kind)
    return sorted(set(added))


def _update(
    session: Session, orm: OrmSession, tree: _Tree, row: DocumentRow, decided: DecidedDocument
) -> None:
    """Parsed before and now: raise what the current rules mark higher, or restructure."""
    assert decided.elements is not None and decided.marking is not None
    # The rows the current rules would write, built by the ingest's own writer: they are
    # compared with the stored ones, not inserted blindly.
    fresh = tree.writer.element_rows_of(row.id, decided.elements)
    ids = [e.id for e in decided.elements]
    stored = list(
        orm.scalars(select(ElementRow).where(ElementRow.doc_id == row.id).order_by(ElementRow.seq))
    )
    before_id = row.marking_id
    before = session.marking_of(orm, before_id)
    assert before is not None
    parts: list[Marking] = [before, decided.marking]
    banner = decided.banner
    old_banner = session.marking_of(orm, row.banner_marking_id)
    if banner is not None:
        new_banner = join(old_banner, banner) if old_banner is not None else banner
        row.banner_marking_id = session.intern_marking(orm, new_banner)
    raised = chunks = 0
    if [e.id for e in stored] == ids:
        change = "unchanged"
        for element, fresh_row in zip(stored, fresh, strict=True):
            old = session.marking_of(orm, element.marking_id)
            now = session.marking_of(orm, fresh_row["marking_id"])
            assert old is not None and now is not None
            both = join(old, now)
            if both != old:
                element.marking_id = session.intern_marking(orm, both)
                element.marking_source = fresh_row["marking_source"]
                raised += 1
            data = _joined_headings(session, orm, element.data or {}, fresh_row["data"])
            if data != (element.data or {}):
                element.data = data
                if both == old:
                    raised += 1  # only a heading's marking moved
            parts.append(both)
        row.marking_id = session.intern_marking(orm, join(*parts))
        if raised or row.marking_id != before_id:
            change = "raised"
            followed = follow_raised_document(session, orm, row.id)
            chunks = followed.chunks  # the next pipeline run rebuilds their index rows
    else:
        change = "restructured"
        chunks = _clear_derived(orm, row.id, elements=True)
        orm.flush()
        orm.execute(insert(ElementRow), fresh)
        raised = len(fresh)
        row.marking_id = session.intern_marking(orm, join(*parts))
        tree.unindex.append(row.id)
    new = _new_findings(orm, tree, row.id, decided, ids)
    if change == "unchanged" and not new:
        tree.results.append(Moved(row.id, row.uri, "unchanged"))
        return
    after = session.marking_of(orm, row.marking_id)
    shown = after.banner() if after is not None and session.can_read(after) else None
    _event(
        tree, AuditAction.INGEST_REPARSE, row, change, after.banner() if after is not None else None
    )
    tree.results.append(Moved(row.id, row.uri, change, None, raised, chunks, new, shown))


def _joined_headings(
    session: Session, orm: OrmSession, old: dict[str, Any], new: dict[str, Any]
) -> dict[str, Any]:
    """``old`` element data with the heading markings of ``new`` joined in (never lower)."""
    fresh = new.get("section_marking_ids")
    if not isinstance(fresh, list):
        return old
    current = old.get("section_marking_ids")
    if not isinstance(current, list) or len(current) != len(fresh):
        return {**old, "section_marking_ids": list(fresh)}
    out: list[int | None] = []
    for a, b in zip(current, fresh, strict=True):
        ma, mb = session.marking_of(orm, a), session.marking_of(orm, b)
        if ma is None or mb is None:
            out.append(b if ma is None else a)
        else:
            out.append(session.intern_marking(orm, join(ma, mb)))
    return {**old, "section_marking_ids": out} if out != current else old
