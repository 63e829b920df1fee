"""Damaged originals: a blob whose bytes no longer match the document's hash.

A blob is checked on every read (its AES-GCM tag and its SHA-256, see
:mod:`garrison.store.blobs`). When the check fails the document is marked ``damaged``: its
derived records (chunks, element states, run keys) and index rows go, so neither search nor
datasets serve anything of it, the catalog rows stay for the steward to see, and the change is
audited (``doc.damaged``). Ingesting the same file again restores the original and the
``parsed`` status; the next pipeline run derives it again.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from sqlalchemy import select

from garrison.core.errors import CheckFailed, NotFound
from garrison.core.records import DocumentStatus
from garrison.security.audit import AuditAction
from garrison.store.index import ChunkIndex
from garrison.store.models import DocumentRow
from garrison.store.pipeline_state import delete_derived
from garrison.store.session import Session

__all__ = ["DAMAGED_REASON", "Damage", "mark_damaged", "read_original", "scan_originals"]

#: The ``reason`` of a damaged document.
DAMAGED_REASON = "blob-corrupt"


@dataclass(frozen=True)
class Damage:
    """One document whose original failed its check, and why (one sentence)."""

    doc_id: str
    why: str


def mark_damaged(session: Session, doc_id: str, why: str) -> bool:
    """Mark ``doc_id`` damaged and withdraw what was derived from it; True when it changed.

    The catalog is changed first (fail closed: nothing more is served), then the index rows
    go, then the audit event is written.
    """
    with session.workspace.catalog.transaction() as orm:
        row = orm.get(DocumentRow, doc_id)
        if row is None or row.status != DocumentStatus.PARSED.value:
            return False
        delete_derived(orm, [doc_id])
        row.status, row.reason = DocumentStatus.DAMAGED.value, DAMAGED_REASON
        marking = session.marking_of(orm, row.marking_id)
    ChunkIndex(session.workspace.root / "index").replace_documents([doc_id], [])
    session.audit(
        AuditAction.DOC_DAMAGED,
        object_id=doc_id,
        object_marking=marking.banner() if marking is not None else None,
        decision="deny",
        reason=DAMAGED_REASON,
        details={"why": why},
    )
    return True


def read_original(session: Session, doc_id: str) -> bytes:
    """The original bytes of ``doc_id``; a failed check marks it damaged and raises
    ``CheckFailed`` (the caller has already decided the subject may read it)."""
    try:
        return session.workspace.blobs.get(doc_id)
    except CheckFailed as exc:
        mark_damaged(session, doc_id, exc.message)
        raise CheckFailed(
            f"The original of document {doc_id} is damaged (it no longer matches its hash); "
            "it is marked damaged and nothing of it is served. Ingest the file again to "
            "restore it."
        ) from exc


def scan_originals(session: Session) -> Iterator[Damage]:
    """Check the original of every parsed document (decrypt and hash); mark and yield each
    that fails. Reads every blob: as long as the blob store is large."""
    with session.workspace.catalog.transaction() as orm:
        ids = list(
            orm.scalars(
                select(DocumentRow.id).where(
                    DocumentRow.status == DocumentStatus.PARSED.value, DocumentRow.blob.is_(True)
                )
            )
        )
    blobs = session.workspace.blobs
    for doc_id in ids:
        try:
            blobs.get(doc_id)
        except NotFound:
            why = "its original is missing from the blob store"
        except CheckFailed as exc:
            why = exc.message
        else:
            continue
        mark_damaged(session, doc_id, why)
        yield Damage(doc_id, why)
