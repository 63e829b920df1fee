"""Reading and acting on documents, elements, findings and jobs -- always through a session.

Every query is filtered by the subject's readable markings before anything is counted or
returned, so a listing, a count or an error never reveals what the subject may not read:
asking for a document one may not read answers exactly like asking for one that does not exist
(and the denial is audited). Quarantined and spilled documents are shown only to stewards and
admins, with no marking and no content.

A document view combines the document's texts -- its title, author and file name and every
element's text -- so the workspace's compilation rules (MARKINGS.md section 6) apply to it as
a whole: ``show`` gives the raised marking as the view's ``marking`` (the document's own stays
in ``own_marking``) and the rules that raised it in ``compilation``. A reader who may not read
the raised marking is answered as for a document they may not read (NotFound, audited with the
rules); the same view is judged the same way with or without ``elements``, so asking for the
elements tells nothing more.
"""

from __future__ import annotations

import builtins
from typing import Any, TypeVar

from sqlalchemy import Select, delete, or_, select, update
from sqlalchemy.orm import Session as OrmSession

from garrison.core.clock import utc_now
from garrison.core.errors import InvalidInput, NotFound, NotPermitted
from garrison.core.records import DocumentStatus
from garrison.security.audit import AuditAction
from garrison.security.compilation import apply_rules, fired_details
from garrison.security.markings import Marking, dominates
from garrison.security.policy import Action, Decision
from garrison.security.subjects import Role
from garrison.store.bindings import binding_columns, verify_columns
from garrison.store.compilation import workspace_rules
from garrison.store.models import DocumentRow, ElementRow, FindingRow, JobItemRow, JobRow
from garrison.store.session import Session
from garrison.store.views import ReaderView

__all__ = ["UNREAD_FINDINGS", "Documents", "Jobs", "original_bytes", "original_decision"]

_Query = TypeVar("_Query", bound=Select[Any])

_UNCLASSIFIED = "UNCLASSIFIED"


def _is_steward(session: Session) -> bool:
    subject = session.subject
    return subject.has_role(Role.STEWARD) or subject.has_role(Role.ADMIN)


def sees_spills(session: Session) -> bool:
    """May the subject know of spilled documents and where they came from? Admins, the system
    session, and stewards who dominate system high (CLI.md)."""
    subject = session.subject
    if subject.is_system or subject.has_role(Role.ADMIN):
        return True
    return subject.has_role(Role.STEWARD) and bool(session.can_read(session.workspace.system_high))


class Documents:
    """Documents as one subject may see them."""

    def __init__(self, session: Session) -> None:
        self.session = session

    # -- visibility ---------------------------------------------------------------------------

    def _visible(self, orm: OrmSession) -> Any:
        """SQL condition: documents this subject may know exist."""
        parsed = (DocumentRow.status == DocumentStatus.PARSED.value) & self.session.readable_clause(
            orm, DocumentRow.marking_id
        )
        # A damaged document keeps its marking: only those who may read it learn of it.
        damaged = (DocumentRow.status == DocumentStatus.DAMAGED.value) & (
            self.session.readable_clause(orm, DocumentRow.marking_id)
        )
        if _is_steward(self.session):
            hidden = [DocumentStatus.PARSED.value, DocumentStatus.DAMAGED.value]
            if not sees_spills(self.session):
                hidden.append(DocumentStatus.SPILLED.value)  # a spill's location is withheld
            return or_(parsed, damaged, DocumentRow.status.not_in(hidden))
        return parsed

    def _get(self, orm: OrmSession, doc_id: str, action: AuditAction) -> DocumentRow:
        row = orm.scalar(select(DocumentRow).where(DocumentRow.id == doc_id, self._visible(orm)))
        if row is None and 8 <= len(doc_id) < 64 and all(c in "0123456789abcdef" for c in doc_id):
            # A unique prefix of a visible document (as listings print them) is enough.
            matches = list(
                orm.scalars(
                    select(DocumentRow)
                    .where(DocumentRow.id.startswith(doc_id), self._visible(orm))
                    .limit(2)
                )
            )
            row = matches[0] if len(matches) == 1 else None
        if row is None:
            exists = orm.get(DocumentRow, doc_id) is not None
            self.session.audit(
                action,
                object_id=doc_id[:64],
                decision="deny",
                reason="not readable by the subject" if exists else "no such document",
            )
            raise NotFound(f"No document with id {doc_id}.")
        return row

    # The paged listings (garrison.store.listings) read through the same rules.
    def visible(self, orm: OrmSession) -> Any:
        return self._visible(orm)

    def findings_visible(self, orm: OrmSession, query: _Query) -> _Query:
        return self._findings_visible(orm, query)

    def finding_dict(self, row: FindingRow) -> dict[str, Any]:
        return self._finding_dict(row)

    def doc_dict(self, orm: OrmSession, row: DocumentRow, findings: Any) -> dict[str, Any]:
        return self._doc_dict(orm, row, findings)

    def findings_of(
        self, orm: OrmSession, doc_ids: builtins.list[str]
    ) -> dict[str, builtins.list[dict[str, Any]]]:
        """The visible findings of many documents, read in one query per 500 documents."""
        out: dict[str, builtins.list[dict[str, Any]]] = {}
        for start in range(0, len(doc_ids), 500):
            query = self._findings_visible(
                orm, select(FindingRow).where(FindingRow.doc_id.in_(doc_ids[start : start + 500]))
            ).order_by(FindingRow.created_at, FindingRow.id)
            for f in orm.scalars(query):
                out.setdefault(f.doc_id, []).append(self._finding_dict(f))
        return out

    @staticmethod
    def check_status(status: str | None) -> None:
        """InvalidInput unless ``status`` is None or a document status."""
        if status is not None and status not in {s.value for s in DocumentStatus}:
            raise InvalidInput(
                f"Unknown status {status!r}: use parsed, quarantined, spilled or damaged."
            )

    def _banner(self, orm: OrmSession, marking_id: int | None) -> str | None:
        marking = self.session.marking_of(orm, marking_id)
        return marking.banner() if marking is not None else None

    def _doc_dict(
        self,
        orm: OrmSession,
        row: DocumentRow,
        findings: builtins.list[dict[str, Any]] | None = None,
    ) -> dict[str, Any]:
        parsed = row.status == DocumentStatus.PARSED.value
        data: dict[str, Any] = {
            "id": row.id,
            "uri": row.uri,
            "filename": row.filename,
            "media_type": row.media_type if row.status != DocumentStatus.SPILLED.value else None,
            "status": row.status,
            "reason": row.reason,
            "size": row.size,
            "source": row.source_name,
            "parent_id": row.parent_id,
            "title": row.title if parsed else None,
            "author": row.author if parsed else None,
            "banner": self._banner(orm, row.banner_marking_id) if parsed else None,
            "marking": self._banner(orm, row.marking_id) if parsed else None,
            "ingested_at": row.ingested_at.isoformat() if row.ingested_at else None,
        }
        if parsed and row.original_marking_id is not None:
            data["original_marking"] = self._banner(orm, row.original_marking_id)
        if not parsed and row.meta.get("reason_detail"):
            data["reason_detail"] = row.meta["reason_detail"]
        if findings is None:
            findings = self.findings_of(orm, [row.id]).get(row.id, [])
        data["findings"] = findings
        return data

    def _findings_visible(self, orm: OrmSession, query: _Query) -> _Query:
        """``query`` restricted to findings this subject may see. A finding with its own
        marking (a duplicate marked differently reveals both records) needs that marking
        dominated, and is for stewards and admins only."""
        if not _is_steward(self.session):
            return query.where(FindingRow.marking_id.is_(None))
        return self.session.readable(orm, query, FindingRow.marking_id, allow_unmarked=True)

    @staticmethod
    def _finding_dict(f: FindingRow) -> dict[str, Any]:
        out: dict[str, Any] = {"id": f.id, "doc_id": f.doc_id, "kind": f.kind, "detail": f.detail}
        if f.element_id:
            out["element_id"] = f.element_id
        if f.resolved_by:
            out["resolved_by"] = f.resolved_by
            out["resolved_at"] = f.resolved_at.isoformat() if f.resolved_at else None
            out["resolution_note"] = f.resolution_note
        return out

    # -- queries ------------------------------------------------------------------------------

    def list(
        self, *, status: str | None = None, limit: int | None = None
    ) -> builtins.list[dict[str, Any]]:
        """Documents this subject may know of, oldest first."""
        self.check_status(status)
        with self.session.workspace.catalog.transaction() as orm:
            query = select(DocumentRow).where(self._visible(orm))
            if status is not None:
                query = query.where(DocumentRow.status == status)
            query = query.order_by(DocumentRow.ingested_at, DocumentRow.id)
            if limit is not None:
                query = query.limit(limit)
            rows = list(orm.scalars(query))
            found = self.findings_of(orm, [r.id for r in rows])
            docs = [self._doc_dict(orm, row, found.get(row.id, [])) for row in rows]
        self.session.audit(AuditAction.DOCS_LIST, details={"count": len(docs), "status": status})
        return docs

    def show(self, doc_id: str, *, elements: bool = False) -> dict[str, Any]:
        """One document (with its elements on request), marked as its compilation rules raise
        the view (see the module docs); NotFound when unreadable."""
        rules = workspace_rules(self.session)
        with self.session.workspace.catalog.transaction() as orm:
            row = self._get(orm, doc_id, AuditAction.DOC_READ)
            data = self._doc_dict(orm, row)
            if rules and row.status == DocumentStatus.PARSED.value:
                self._compile_view(orm, row, data, rules)
            if elements and row.status == DocumentStatus.PARSED.value:
                view = ReaderView(self.session, orm)
                query = select(ElementRow).where(ElementRow.doc_id == row.id)
                data["elements"] = [
                    view.element(e)
                    for e in orm.scalars(
                        self.session.readable(orm, query, ElementRow.marking_id).order_by(
                            ElementRow.seq
                        )
                    )
                ]
            marking = data["marking"]
        self.session.audit(AuditAction.DOC_READ, object_id=doc_id, object_marking=marking)
        return data

    def _compile_view(
        self, orm: OrmSession, row: DocumentRow, data: dict[str, Any], rules: Any
    ) -> None:
        """Raise ``data`` (a parsed document's view) by the rules its texts fire; NotFound,
        as for an unreadable document, when the reader may not read the raised marking."""
        own = self.session.marking_of(orm, row.marking_id)
        if own is None:
            raise NotFound(f"No document with id {row.id}.")
        # Every element, whoever reads: the view's marking does not depend on the reader.
        texts = [row.title or "", row.author or "", row.filename or ""]
        # Whole rows, so each binding is verified (a changed text is never judged).
        query = select(ElementRow).where(ElementRow.doc_id == row.id).order_by(ElementRow.seq)
        texts.extend(e.text for e in orm.scalars(query))
        compiled = apply_rules(rules, texts, own)
        if not compiled.raised:
            return
        names = sorted(r.name for r in compiled.fired)
        if not self.session.can_read(compiled.marking):
            self.session.audit(
                AuditAction.DOC_READ,
                object_id=row.id,
                decision="deny",
                reason="raised by compilation rules above the subject",
                details={"compilation": names},
            )
            raise NotFound(f"No document with id {row.id}.")
        data["own_marking"] = data["marking"]
        data["marking"] = compiled.marking.banner()
        data["compilation"] = fired_details(compiled)

    def findings(
        self, *, kind: str | None = None, unresolved: bool = False, limit: int | None = None
    ) -> builtins.list[dict[str, Any]]:
        """Findings on documents this subject may know of."""
        with self.session.workspace.catalog.transaction() as orm:
            query = self._findings_visible(
                orm,
                select(FindingRow)
                .join(DocumentRow, DocumentRow.id == FindingRow.doc_id)
                .where(self._visible(orm)),
            ).order_by(FindingRow.created_at, FindingRow.id)
            if kind is not None:
                query = query.where(FindingRow.kind == kind)
            if unresolved:
                query = query.where(FindingRow.resolved_by.is_(None))
            if limit is not None:
                query = query.limit(limit)
            found = [self._finding_dict(f) for f in orm.scalars(query)]
        self.session.audit(AuditAction.FINDINGS_LIST, details={"count": len(found), "kind": kind})
        return found

    # -- steward actions ----------------------------------------------------------------------

    def resolve(self, finding_id: str, note: str) -> dict[str, Any]:
        """Record that a steward reviewed a finding, and why (audited)."""
        self.session.require(
            Action.RESOLVE_FINDINGS, AuditAction.FINDING_RESOLVE, object_id=str(finding_id)
        )
        if not note.strip():
            raise InvalidInput("A resolution needs a note saying what was done (--note).")
        with self.session.workspace.catalog.transaction() as orm:
            finding = orm.scalar(
                self._findings_visible(orm, select(FindingRow).where(FindingRow.id == finding_id))
            )
            if (
                finding is None
                or orm.scalar(
                    select(DocumentRow.id).where(
                        DocumentRow.id == finding.doc_id, self._visible(orm)
                    )
                )
                is None
            ):
                self.session.audit(
                    AuditAction.FINDING_RESOLVE,
                    object_id=str(finding_id),
                    decision="deny",
                    reason="no such finding or not readable",
                )
                raise NotFound(f"No finding with id {finding_id}.")
        with self.session._write(
            AuditAction.FINDING_RESOLVE, object_id=str(finding_id), details={"note": note}
        ) as orm:
            finding = orm.get(FindingRow, finding_id)
            assert finding is not None
            finding.resolved_by = self.session.subject.name
            finding.resolved_at = utc_now()
            finding.resolution_note = note
            orm.flush()
            return self._finding_dict(finding)

    def remove(self, doc_id: str, reason: str) -> dict[str, Any]:
        """Remove a document and everything derived from it (stewards; audited).

        Gone: the document row, its elements, locations and findings, the pipeline's element
        states, chunks and run keys, its chunk-index rows and its encrypted original -- and the
        same for its attachments and archive members that were seen nowhere else. Members the
        steward may not read stay (and are not mentioned). Dataset versions already made keep
        their frozen records: a version is immutable; delete it separately.
        """
        from garrison.store.models import (
            ChunkRow,
            DocumentLocation,
            ElementState,
            PipelineDoc,
        )

        self.session.require(
            Action.REMOVE_DOCUMENT, AuditAction.DOCUMENT_REMOVE, object_id=doc_id[:64]
        )
        if not reason.strip():
            raise InvalidInput("Removing a document needs a reason (--reason).")
        with self.session.workspace.catalog.transaction() as orm:
            root = self._get(orm, doc_id, AuditAction.DOCUMENT_REMOVE)
            doc_id = root.id
            tree = [root.id]
            frontier = [root.id]
            while frontier:
                children = list(
                    orm.scalars(
                        select(DocumentRow.id).where(
                            DocumentRow.parent_id.in_(frontier), self._visible(orm)
                        )
                    )
                )
                # A member also seen in another container or on its own stays.
                shared = set(
                    orm.scalars(
                        select(DocumentLocation.doc_id).where(
                            DocumentLocation.doc_id.in_(children),
                            or_(
                                DocumentLocation.parent_id.is_(None),
                                DocumentLocation.parent_id.not_in(tree + children),
                            ),
                        )
                    )
                )
                frontier = [c for c in children if c not in shared and c not in tree]
                tree.extend(frontier)
        # Index rows go first, after flagging the documents as not indexed: a removal
        # interrupted before its commit leaves documents that the next pipeline run re-indexes,
        # never catalog records without their index rows or index rows without a document.
        with self.session.workspace.catalog.transaction() as orm:
            orm.execute(
                update(PipelineDoc).where(PipelineDoc.doc_id.in_(tree)).values(indexed=False)
            )
        self.session.workspace.index.replace_documents(tree, [])
        with self.session._write(
            AuditAction.DOCUMENT_REMOVE,
            object_id=doc_id,
            details={"documents": len(tree), "reason": reason},
        ) as orm:
            blobs = [
                d
                for d in orm.scalars(
                    select(DocumentRow.id).where(DocumentRow.id.in_(tree), DocumentRow.blob)
                )
            ]
            chunks = len(list(orm.scalars(select(ChunkRow.id).where(ChunkRow.doc_id.in_(tree)))))
            elements = len(
                list(orm.scalars(select(ElementRow.id).where(ElementRow.doc_id.in_(tree))))
            )
            for model, column in (
                (ElementState, ElementState.doc_id),
                (ChunkRow, ChunkRow.doc_id),
                (PipelineDoc, PipelineDoc.doc_id),
                (FindingRow, FindingRow.doc_id),
                (ElementRow, ElementRow.doc_id),
                (DocumentLocation, DocumentLocation.doc_id),
                (DocumentRow, DocumentRow.id),
            ):
                orm.execute(delete(model).where(column.in_(tree)))
        # The originals last: an interrupted removal can only leave encrypted blobs that no
        # document refers to any more.
        for blob in blobs:
            self.session.workspace.blobs.delete(blob)
        return {
            "id": doc_id,
            "removed": True,
            "documents": len(tree),
            "elements": elements,
            "chunks": chunks,
        }

    def downgrade(self, object_id: str, to: str, reason: str) -> dict[str, Any]:
        """Lower the marking of a document or element: a reasoned, audited steward action.

        Only a steward who dominates the original may do it; the original marking is kept.
        """
        self.session.require(Action.DOWNGRADE, AuditAction.MARKING_DOWNGRADE, object_id=object_id)
        if not reason.strip():
            raise InvalidInput("A downgrade needs a reason (--reason).")
        new = self.session.parse_marking(to)
        with self.session.workspace.catalog.transaction() as orm:
            element = orm.scalar(
                self.session.readable(
                    orm, select(ElementRow).where(ElementRow.id == object_id), ElementRow.marking_id
                )
            )
            if element is not None:
                doc_id, current_id = element.doc_id, element.marking_id
            else:
                row = orm.scalar(
                    self.session.readable(
                        orm,
                        select(DocumentRow).where(
                            DocumentRow.id == object_id,
                            DocumentRow.status == DocumentStatus.PARSED.value,
                        ),
                        DocumentRow.marking_id,
                    )
                )
                if row is None or row.marking_id is None:
                    self.session.audit(
                        AuditAction.MARKING_DOWNGRADE,
                        object_id=object_id[:64],
                        decision="deny",
                        reason="no such object or not readable",
                    )
                    raise NotFound(f"No document or element with id {object_id}.")
                element, doc_id, current_id = None, row.id, row.marking_id
            current = self.session.marking_of(orm, current_id)
        assert current is not None
        if not dominates(current, new) or new == current:
            raise InvalidInput(
                f"{new.banner()} is not lower than the current marking {current.banner()}; "
                "a downgrade only lowers."
            )
        details = {
            "from": current.banner(),
            "to": new.banner(),
            "reason": reason,
            "kind": "element" if element is not None else "document",
        }
        with self.session._write(
            AuditAction.MARKING_DOWNGRADE,
            object_id=object_id,
            object_marking=current.banner(),
            details=details,
        ) as orm:
            new_id = self.session.intern_marking(orm, new)
            if element is not None:
                row_e = orm.get(ElementRow, object_id)
                assert row_e is not None
                row_e.original_marking_id = row_e.original_marking_id or row_e.marking_id
                row_e.marking_id = new_id
                self._rejoin_document(orm, doc_id)
            else:
                doc = orm.get(DocumentRow, doc_id)
                assert doc is not None
                doc.original_marking_id = doc.original_marking_id or doc.marking_id
                doc.marking_id = new_id
                for e in orm.scalars(select(ElementRow).where(ElementRow.doc_id == doc_id)):
                    marking = self.session.marking_of(orm, e.marking_id)
                    if marking is not None and not dominates(new, marking):
                        e.original_marking_id = e.original_marking_id or e.marking_id
                        e.marking_id = new_id
        return {"id": object_id, "from": current.banner(), "to": new.banner(), "reason": reason}

    def _rejoin_document(self, orm: OrmSession, doc_id: str) -> None:
        """After an element changed, the document is the join of its banner and elements."""
        from garrison.security.markings import join

        doc = orm.get(DocumentRow, doc_id)
        assert doc is not None
        parts: list[Marking] = []
        for e in orm.scalars(select(ElementRow).where(ElementRow.doc_id == doc_id)):
            m = self.session.marking_of(orm, e.marking_id)
            if m is not None:
                parts.append(m)
        banner = self.session.marking_of(orm, doc.banner_marking_id)
        if banner is not None:
            parts.append(banner)
        if parts:
            doc.marking_id = self.session.intern_marking(orm, join(*parts))


class Jobs:
    """Ingest and pipeline jobs (stewards and admins), as the asker may see them.

    A subject who reads everything up to system high (and the system session) sees every job
    whole. Anyone else sees, of each job, only the items about documents they may know of --
    a parsed document they may read, a quarantined one -- and counts recomputed over those
    items alone; a pipeline job's counts (over every document) are withheld, and so are the
    parameters and error of a job someone else ran (they name folders, queries and files).
    Where a spill came from (its URI, its file name) is shown only to admins, the system
    session and stewards who dominate system high; to anyone else a spilled item is left out
    entirely. An item with no document (a file that could not be read, a link not followed)
    is shown to whoever reads everything and to the job's own actor.
    """

    def __init__(self, session: Session) -> None:
        self.session = session

    def require_reader(self, action: AuditAction) -> None:
        self._require(action)

    def job_dict(self, job: JobRow) -> dict[str, Any]:
        return self._job_dict(job)

    def as_seen(
        self, orm: OrmSession, jobs: builtins.list[dict[str, Any]]
    ) -> builtins.list[dict[str, Any]]:
        """``jobs`` as the asker may see them (whole to one who reads everything)."""
        if self.sees_everything() or not jobs:
            return jobs
        items = self._items(orm, [j["id"] for j in jobs])
        return [self._restricted(orm, j, items[j["id"]]) for j in jobs]

    def _require(self, action: AuditAction) -> None:
        if not _is_steward(self.session):
            self.session.audit(action, decision="deny", reason="jobs are for stewards and admins")
            raise NotPermitted(
                f"{self.session.subject.name} may not see jobs: they are for stewards and admins."
            )

    def sees_everything(self) -> bool:
        """Does the asker read everything a job can touch (system high)?"""
        return bool(self.session.can_read(self.session.workspace.system_high))

    def sees_spill_locations(self) -> bool:
        """May the asker see where a spill came from? Admins, the system session, and stewards
        who dominate system high (CLI.md)."""
        return sees_spills(self.session)

    @staticmethod
    def _job_dict(job: JobRow) -> dict[str, Any]:
        return {
            "id": job.id,
            "kind": job.kind,
            "status": job.status,
            "actor": job.actor,
            "done": job.done,
            "total": job.total,
            "counts": job.counts,
            "params": job.params,
            "error": job.error,
            "started_at": job.started_at.isoformat() if job.started_at else None,
            "finished_at": job.finished_at.isoformat() if job.finished_at else None,
        }

    def _items(
        self, orm: OrmSession, job_ids: builtins.list[str]
    ) -> dict[str, builtins.list[dict[str, Any]]]:
        """Each job's items the asker may see, with the document's status and size."""
        everything = self.sees_everything()
        spills = self.sees_spill_locations()
        readable = self.session.readable_marking_ids(orm)
        binder = self.session.workspace.catalog.binder
        actors = {
            job_id: actor
            for job_id, actor in orm.execute(
                select(JobRow.id, JobRow.actor).where(JobRow.id.in_(job_ids))
            )
        }
        out: dict[str, builtins.list[dict[str, Any]]] = {j: [] for j in job_ids}
        query = (
            select(
                JobItemRow,
                DocumentRow.status.label("doc_status"),
                DocumentRow.size.label("doc_size"),
                *binding_columns(DocumentRow, "doc_"),
            )
            .outerjoin(DocumentRow, DocumentRow.id == JobItemRow.doc_id)
            .where(JobItemRow.job_id.in_(job_ids))
            .order_by(JobItemRow.id)
        )
        rows = list(orm.execute(query))
        # A document whose row fails its integrity check counts as removed: its marking never
        # decides who sees an item.
        good = {id(r) for r in verify_columns(binder, rows, (DocumentRow, "doc_"))}
        for row in rows:
            item, size = row[0], row.doc_size
            status = row.doc_status if id(row) in good else None
            marking_id = row.doc_marking_id
            if item.doc_id is None:
                visible = everything or actors.get(item.job_id) == self.session.subject.name
            elif status is None:
                visible = everything  # the document was removed since
            elif status == DocumentStatus.SPILLED.value:
                visible = spills
            elif status == DocumentStatus.PARSED.value:
                visible = marking_id in readable
            else:
                visible = True  # quarantined: shown to stewards and admins, with no content
            if not visible:
                continue
            out[item.job_id].append(
                {
                    "uri": item.uri,
                    "doc_id": item.doc_id,
                    "outcome": item.outcome,
                    "reason": item.reason,
                    "detail": item.detail,
                    "_size": size or 0,
                }
            )
        return out

    def _elements(self, orm: OrmSession, doc_ids: set[str]) -> int:
        if not doc_ids:
            return 0
        query = select(*binding_columns(ElementRow)).where(ElementRow.doc_id.in_(doc_ids))
        rows = orm.execute(self.session.readable(orm, query, ElementRow.marking_id))
        # Counted only when each row's binding verifies: an element re-marked in the catalog
        # behind Garrison's back is unreadable, and so is not counted either.
        return len(verify_columns(self.session.workspace.catalog.binder, rows, (ElementRow, "")))

    def _restricted(
        self, orm: OrmSession, data: dict[str, Any], items: builtins.list[dict[str, Any]]
    ) -> dict[str, Any]:
        """A job as seen by someone who does not read everything (see the class docstring)."""
        own = data["actor"] == self.session.subject.name
        data["restricted"] = True
        if not own:
            data["params"] = {}
            data["error"] = "withheld" if data["error"] else None
        if data["kind"] == "ingest":
            outcomes: dict[str, int] = {}
            reasons: dict[str, int] = {}
            for item in items:
                outcomes[item["outcome"]] = outcomes.get(item["outcome"], 0) + 1
                if item["outcome"] in ("quarantined", "failed"):
                    key = str(item["reason"])
                    reasons[key] = reasons.get(key, 0) + 1
            parsed = {i["doc_id"] for i in items if i["outcome"] == "parsed" and i["doc_id"]}
            data["counts"] = {
                "files": len(items),
                "parsed": outcomes.get("parsed", 0),
                "quarantined": outcomes.get("quarantined", 0) + outcomes.get("failed", 0),
                "quarantine_reasons": dict(sorted(reasons.items())),
                "spilled": outcomes.get("spilled", 0),
                "unchanged": outcomes.get("unchanged", 0),
                "elements": self._elements(orm, parsed),
                "bytes": sum(i["_size"] for i in items if i["outcome"] != "unchanged"),
            }
            data["done"] = len(items)
            data["total"] = len(items) if data["status"] != "running" else None
        else:
            # A pipeline run's counts are over every document: none of them can be shown.
            data["counts"] = {}
            data["done"] = None
            data["total"] = None
        return data

    def list(self, *, limit: int | None = None) -> builtins.list[dict[str, Any]]:
        """Every job, oldest first; stale ``running`` jobs are marked interrupted first."""
        self._require(AuditAction.JOBS_LIST)
        from garrison.store.jobs import mark_stale_jobs

        mark_stale_jobs(self.session)
        with self.session.workspace.catalog.transaction() as orm:
            query = select(JobRow).order_by(JobRow.started_at)
            if limit is not None:
                query = query.limit(limit)
            jobs = self.as_seen(orm, [self._job_dict(j) for j in orm.scalars(query)])
        self.session.audit(AuditAction.JOBS_LIST, details={"count": len(jobs)})
        return jobs

    def show(self, job_id: str) -> dict[str, Any]:
        """One job with what happened to each input the asker may see; NotFound if none."""
        self._require(AuditAction.JOBS_SHOW)
        everything = self.sees_everything()
        with self.session.workspace.catalog.transaction() as orm:
            job = orm.get(JobRow, job_id)
            if job is None:
                self.session.audit(
                    AuditAction.JOBS_SHOW,
                    object_id=job_id[:64],
                    decision="deny",
                    reason="no such job",
                )
                raise NotFound(f"No job with id {job_id}.")
            data = self._job_dict(job)
            items = self._items(orm, [job.id])[job.id]
            if not everything:
                data = self._restricted(orm, data, items)
        for item in items:
            item.pop("_size")
        data["items"] = items
        self.session.audit(AuditAction.JOBS_SHOW, object_id=job_id[:64])
        return data


# -- original bytes -----------------------------------------------------------------------------

#: Findings saying part of a file was never read into elements (its text is unknown): the
#: original bytes may hold anything up to system high.
UNREAD_FINDINGS = frozenset({"unreadable-content", "no-text-layer"})


def _whole_marking(session: Session, orm: OrmSession, root: DocumentRow) -> Marking:
    """What a document's original bytes may hold: the join of every marking it ever had, its
    elements' (before any downgrade too) and those of the attachments and members inside it.

    A part that was never read (an ``unreadable-content`` or ``no-text-layer`` finding), or an
    attachment quarantined or spilled (its marking unknown), makes it system high.
    """
    from garrison.security.markings import join

    high = session.workspace.system_high
    binder = session.workspace.catalog.binder
    parts: list[Marking] = []
    seen: set[str] = set()
    frontier = [root.id]
    unknown = False
    while frontier and not unknown:
        rows = list(orm.scalars(select(DocumentRow).where(DocumentRow.id.in_(frontier))))
        if len(rows) != len(set(frontier)):
            unknown = True  # a part whose row fails its integrity check (dropped by the read)
            break
        frontier = []
        for row in rows:
            if row.id in seen:
                continue
            seen.add(row.id)
            if row.status != DocumentStatus.PARSED.value or row.marking_id is None:
                unknown = True
                break
            ids = {
                row.marking_id,
                row.banner_marking_id,
                row.default_marking_id,
                row.original_marking_id,
            }
            # Every element's and child's row must verify: one edited in the catalog has an
            # unknown marking, which makes the whole file system high.
            elements = list(
                orm.execute(select(*binding_columns(ElementRow)).where(ElementRow.doc_id == row.id))
            )
            good = verify_columns(binder, elements, (ElementRow, ""))
            if len(good) != len(elements):
                unknown = True
                break
            for element in good:
                ids.update((element.marking_id, element.original_marking_id))
            parts += [m for m in (session.marking_of(orm, i) for i in ids) if m is not None]
            children = list(
                orm.execute(
                    select(*binding_columns(DocumentRow)).where(DocumentRow.parent_id == row.id)
                )
            )
            if len(verify_columns(binder, children, (DocumentRow, ""))) != len(children):
                unknown = True
                break
            frontier += [c.id for c in children if c.id not in seen]
        if not unknown and seen:
            unread = orm.scalar(
                select(FindingRow.id)
                .where(FindingRow.doc_id.in_(seen), FindingRow.kind.in_(UNREAD_FINDINGS))
                .limit(1)
            )
            unknown = unread is not None
    if unknown:
        parts.append(high)
    return join(*parts) if parts else high


def original_decision(session: Session, doc_id: str) -> Decision:
    """May the subject take this (visible, parsed) document's original bytes out? Not audited.

    Taking the original out is an export: a steward's action, for a subject who may export the
    whole document (never through DISPLAY ONLY access), and only for one who dominates system
    high when part of the file was never read.
    """
    from garrison.security.policy import can_export, permits

    allowed = permits(session.subject, Action.DATASET_EXPORT)
    if not allowed:
        return allowed
    with session.workspace.catalog.transaction() as orm:
        row = orm.get(DocumentRow, doc_id)
        if row is None or row.status != DocumentStatus.PARSED.value or row.marking_id is None:
            return Decision(False, "not a parsed document")
        whole = _whole_marking(session, orm, row)
    return can_export(session.subject, whole, system_high=session.workspace.system_high)


def original_bytes(session: Session, doc_id: str) -> tuple[dict[str, Any], bytes]:
    """A parsed document (as :meth:`Documents.show` returns it) and its original bytes.

    NotFound (as for any unreadable document) unless the subject may know of it and it was
    parsed; NotPermitted (audited) unless :func:`original_decision` allows it. Audited as
    ``doc.original`` with the marking of everything the bytes may hold.
    """
    from garrison.security.policy import can_export

    doc = Documents(session).show(doc_id)
    if doc["status"] != DocumentStatus.PARSED.value or doc["marking"] is None:
        raise NotFound(f"No document with id {doc_id}.")
    session.require(Action.DATASET_EXPORT, AuditAction.DOC_ORIGINAL, object_id=doc["id"])
    with session.workspace.catalog.transaction() as orm:
        row = orm.get(DocumentRow, doc["id"])
        if row is None:
            raise NotFound(f"No document with id {doc_id}.")
        whole = _whole_marking(session, orm, row)
    decision = can_export(session.subject, whole, system_high=session.workspace.system_high)
    if not decision:
        session.audit(
            AuditAction.DOC_ORIGINAL,
            object_id=doc["id"],
            object_marking=doc["marking"],
            decision="deny",
            reason=f"{whole.banner()}: {decision.reason}",
        )
        raise NotPermitted(
            f"{session.subject.name} may not download this original: taking it out is an "
            "export, and their access does not allow exporting all it may hold."
        )
    from garrison.store.damage import read_original

    data = read_original(session, doc["id"])
    session.audit(
        AuditAction.DOC_ORIGINAL,
        object_id=doc["id"],
        object_marking=whole.banner(),
        details={"bytes": len(data)},
    )
    return {**doc, "export_marking": whole.banner()}, data
