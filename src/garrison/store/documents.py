"""Reading and acting on documents, elements, findings and jobs -- always through a session.

Every query is filtered by the subject's readable markings before anything is counted or
returned, so a listing, a count or an error never reveals what the subject may not read:
asking for a document one may not read answers exactly like asking for one that does not exist
(and the denial is audited). Quarantined and spilled documents are shown only to stewards and
admins, with no marking and no content.
"""

from __future__ import annotations

import builtins
from typing import Any

from sqlalchemy import delete, or_, select, update
from sqlalchemy.orm import Session as OrmSession

from garrison.core.clock import utc_now
from garrison.core.errors import InvalidInput, NotFound, NotPermitted
from garrison.core.records import DocumentStatus
from garrison.security.markings import Marking, dominates
from garrison.security.policy import Action
from garrison.security.subjects import Role
from garrison.store.models import DocumentRow, ElementRow, FindingRow, JobItemRow, JobRow
from garrison.store.session import Session

__all__ = ["Documents", "Jobs"]

_UNCLASSIFIED = "UNCLASSIFIED"


def _is_steward(session: Session) -> bool:
    subject = session.subject
    return subject.has_role(Role.STEWARD) or subject.has_role(Role.ADMIN)


class Documents:
    """Documents as one subject may see them."""

    def __init__(self, session: Session) -> None:
        self.session = session

    # -- visibility ---------------------------------------------------------------------------

    def _visible(self, orm: OrmSession) -> Any:
        """SQL condition: documents this subject may know exist."""
        readable = self.session.readable_marking_ids(orm)
        parsed = (DocumentRow.status == DocumentStatus.PARSED.value) & DocumentRow.marking_id.in_(
            readable
        )
        if _is_steward(self.session):
            return or_(parsed, DocumentRow.status != DocumentStatus.PARSED.value)
        return parsed

    def _get(self, orm: OrmSession, doc_id: str, action: str) -> DocumentRow:
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

    def _banner(self, orm: OrmSession, marking_id: int | None) -> str | None:
        marking = self.session.marking_of(orm, marking_id)
        return marking.banner() if marking is not None else None

    def _doc_dict(self, orm: OrmSession, row: DocumentRow) -> dict[str, Any]:
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
        data["findings"] = [
            self._finding_dict(f)
            for f in orm.scalars(
                select(FindingRow)
                .where(FindingRow.doc_id == row.id, self._findings_visible(orm))
                .order_by(FindingRow.created_at, FindingRow.id)
            )
        ]
        return data

    def _findings_visible(self, orm: OrmSession) -> Any:
        """SQL condition: findings this subject may see. A finding with its own marking (a
        duplicate marked differently reveals both records) needs that marking dominated, and
        is for stewards and admins only."""
        readable = self.session.readable_marking_ids(orm)
        if not _is_steward(self.session):
            return FindingRow.marking_id.is_(None)
        return FindingRow.marking_id.is_(None) | FindingRow.marking_id.in_(readable)

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

    def _element_dict(self, orm: OrmSession, e: ElementRow) -> dict[str, Any]:
        data = dict(e.data)
        out = {
            "id": e.id,
            "doc_id": e.doc_id,
            "seq": e.seq,
            "type": e.type,
            "text": e.text,
            "marking": self._banner(orm, e.marking_id),
            "marking_source": e.marking_source,
            "page": e.page,
            "locator": data.pop("locator", {}),
        }
        if e.original_marking_id is not None:
            out["original_marking"] = self._banner(orm, e.original_marking_id)
        out.update(data)
        return out

    # -- queries ------------------------------------------------------------------------------

    def list(
        self, *, status: str | None = None, limit: int | None = None
    ) -> builtins.list[dict[str, Any]]:
        """Documents this subject may know of, oldest first."""
        if status is not None and status not in {s.value for s in DocumentStatus}:
            raise InvalidInput(f"Unknown status {status!r}: use parsed, quarantined or spilled.")
        with self.session.workspace.catalog.transaction() as orm:
            query = select(DocumentRow).where(self._visible(orm))
            if status is not None:
                query = query.where(DocumentRow.status == status)
            query = query.order_by(DocumentRow.ingested_at, DocumentRow.id)
            if limit is not None:
                query = query.limit(limit)
            docs = [self._doc_dict(orm, row) for row in orm.scalars(query)]
        self.session.audit("docs.list", details={"count": len(docs), "status": status})
        return docs

    def show(self, doc_id: str, *, elements: bool = False) -> dict[str, Any]:
        """One document (with its elements on request); NotFound when unreadable."""
        with self.session.workspace.catalog.transaction() as orm:
            row = self._get(orm, doc_id, "doc.read")
            data = self._doc_dict(orm, row)
            if elements and row.status == DocumentStatus.PARSED.value:
                readable = self.session.readable_marking_ids(orm)
                data["elements"] = [
                    self._element_dict(orm, e)
                    for e in orm.scalars(
                        select(ElementRow)
                        .where(ElementRow.doc_id == row.id, ElementRow.marking_id.in_(readable))
                        .order_by(ElementRow.seq)
                    )
                ]
            marking = data["marking"]
        self.session.audit("doc.read", object_id=doc_id, object_marking=marking)
        return data

    def findings(
        self, *, kind: str | None = None, unresolved: bool = False, limit: int | None = None
    ) -> builtins.list[dict[str, Any]]:
        """Findings on documents this subject may know of."""
        with self.session.workspace.catalog.transaction() as orm:
            query = (
                select(FindingRow)
                .join(DocumentRow, DocumentRow.id == FindingRow.doc_id)
                .where(self._visible(orm), self._findings_visible(orm))
                .order_by(FindingRow.created_at, FindingRow.id)
            )
            if kind is not None:
                query = query.where(FindingRow.kind == kind)
            if unresolved:
                query = query.where(FindingRow.resolved_by.is_(None))
            if limit is not None:
                query = query.limit(limit)
            found = [self._finding_dict(f) for f in orm.scalars(query)]
        self.session.audit("findings.list", details={"count": len(found), "kind": kind})
        return found

    # -- steward actions ----------------------------------------------------------------------

    def resolve(self, finding_id: str, note: str) -> dict[str, Any]:
        """Record that a steward reviewed a finding, and why (audited)."""
        self.session.require(Action.RESOLVE_FINDINGS, "finding.resolve", object_id=str(finding_id))
        if not note.strip():
            raise InvalidInput("A resolution needs a note saying what was done (--note).")
        with self.session.workspace.catalog.transaction() as orm:
            finding = orm.scalar(
                select(FindingRow).where(FindingRow.id == finding_id, self._findings_visible(orm))
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
                    "finding.resolve",
                    object_id=str(finding_id),
                    decision="deny",
                    reason="no such finding or not readable",
                )
                raise NotFound(f"No finding with id {finding_id}.")
        with self.session._write(
            "finding.resolve", object_id=str(finding_id), details={"note": note}
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
        from garrison.store.index import ChunkIndex
        from garrison.store.models import (
            ChunkRow,
            DocumentLocation,
            ElementState,
            PipelineDoc,
        )

        self.session.require(Action.REMOVE_DOCUMENT, "document.remove", object_id=doc_id[:64])
        if not reason.strip():
            raise InvalidInput("Removing a document needs a reason (--reason).")
        with self.session.workspace.catalog.transaction() as orm:
            root = self._get(orm, doc_id, "document.remove")
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
        ChunkIndex(self.session.workspace.root / "index").replace_documents(tree, [])
        with self.session._write(
            "document.remove",
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
        self.session.require(Action.DOWNGRADE, "marking.downgrade", object_id=object_id)
        if not reason.strip():
            raise InvalidInput("A downgrade needs a reason (--reason).")
        new = self.session.parse_marking(to)
        with self.session.workspace.catalog.transaction() as orm:
            readable = self.session.readable_marking_ids(orm)
            element = orm.get(ElementRow, object_id)
            if element is not None and element.marking_id in readable:
                doc_id, current_id = element.doc_id, element.marking_id
            else:
                row = orm.scalar(
                    select(DocumentRow).where(
                        DocumentRow.id == object_id,
                        DocumentRow.status == DocumentStatus.PARSED.value,
                        DocumentRow.marking_id.in_(readable),
                    )
                )
                if row is None or row.marking_id is None:
                    self.session.audit(
                        "marking.downgrade",
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
            "marking.downgrade",
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
    """Ingest and pipeline jobs (stewards and admins)."""

    def __init__(self, session: Session) -> None:
        self.session = session

    def _require(self, action: str) -> None:
        if not _is_steward(self.session):
            self.session.audit(action, decision="deny", reason="jobs are for stewards and admins")
            raise NotPermitted(
                f"{self.session.subject.name} may not see jobs: they are for stewards and admins."
            )

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

    def list(self, *, limit: int | None = None) -> builtins.list[dict[str, Any]]:
        """Every job, oldest first; stale ``running`` jobs are marked interrupted first."""
        self._require("jobs.list")
        from garrison.ingest.engine import mark_stale_jobs

        mark_stale_jobs(self.session)
        with self.session.workspace.catalog.transaction() as orm:
            query = select(JobRow).order_by(JobRow.started_at)
            if limit is not None:
                query = query.limit(limit)
            return [self._job_dict(j) for j in orm.scalars(query)]

    def show(self, job_id: str) -> dict[str, Any]:
        self._require("jobs.show")
        with self.session.workspace.catalog.transaction() as orm:
            job = orm.get(JobRow, job_id)
            if job is None:
                raise NotFound(f"No job with id {job_id}.")
            data = self._job_dict(job)
            data["items"] = [
                {
                    "uri": i.uri,
                    "doc_id": i.doc_id,
                    "outcome": i.outcome,
                    "reason": i.reason,
                    "detail": i.detail,
                }
                for i in orm.scalars(
                    select(JobItemRow).where(JobItemRow.job_id == job_id).order_by(JobItemRow.id)
                )
            ]
            return data
