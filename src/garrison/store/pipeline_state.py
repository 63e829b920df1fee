"""Catalog access for the pipeline: its inputs, element states, run keys and chunk rows.

The executor plans and runs; this module is how it reads what a subject may read (every query
that returns marked rows goes through :meth:`Session.readable`) and how its sink writes a
batch's derived records -- element states, chunks, findings and run keys -- in one
transaction that commits only after the batch's audit event is on disk.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, cast

from sqlalchemy import Table, delete, insert, select, update
from sqlalchemy.orm import Session as OrmSession

from garrison.security.audit import AuditAction
from garrison.security.markings import Marking
from garrison.store.bindings import binding_columns, verify_columns
from garrison.store.models import (
    ChunkRow,
    DocumentRow,
    ElementRow,
    ElementState,
    FindingRow,
    PipelineDoc,
)
from garrison.store.predictions import delete_predictions, insert_predictions
from garrison.store.session import Session

__all__ = [
    "PIPELINE_FINDINGS",
    "BatchWrite",
    "LightState",
    "PlanRows",
    "delete_derived",
    "element_states",
    "elements",
    "intern_markings",
    "light_states",
    "mark_indexed",
    "mark_unindexed",
    "plan_rows",
    "remove_derived",
    "stored_keys",
    "write_derived",
]

#: Finding kinds the pipeline owns (replaced on every run of the same documents).
PIPELINE_FINDINGS = ("stage-failed", "duplicate-marked-differently", "compilation")

_PART = 500


@dataclass
class PlanRows:
    """What a run plan is computed from, as the subject reads the catalog."""

    #: Readable parsed current documents (in ingest order) and their marking ids.
    inputs: list[tuple[str, int | None]]
    #: (document id, element id, marking id) of their readable elements, in reading order.
    elements: list[tuple[str, str, int]]
    #: Run keys stored for the inputs (for every document when the run is not restricted).
    stored: dict[str, PipelineDoc]
    #: Documents with derived records that are no longer inputs of any run.
    remove: list[str]


def plan_rows(session: Session, doc_ids: Sequence[str] | None) -> PlanRows:
    """The rows :func:`garrison.pipeline.plan.plan_run` needs (reads only).

    Every marking id comes from a row whose binding verifies: a document or element edited in
    the catalog is left out (and audited), as the whole-row reads that build items leave it out.
    """
    binder = session.workspace.catalog.binder
    with session.workspace.catalog.transaction() as orm:
        query = select(*binding_columns(DocumentRow)).where(
            DocumentRow.status == "parsed", DocumentRow.superseded_by.is_(None)
        )
        if doc_ids is not None:
            query = query.where(DocumentRow.id.in_(list(doc_ids)))
        query = session.readable(orm, query, DocumentRow.marking_id)
        inputs = [
            (row.id, row.marking_id)
            for row in verify_columns(
                binder,
                orm.execute(query.order_by(DocumentRow.ingested_at, DocumentRow.id)),
                (DocumentRow, ""),
            )
        ]
        wanted = {doc_id for doc_id, _ in inputs}
        element_query = (
            select(*binding_columns(ElementRow))
            .join(DocumentRow, DocumentRow.id == ElementRow.doc_id)
            .where(DocumentRow.status == "parsed", DocumentRow.superseded_by.is_(None))
        )
        if doc_ids is not None:
            element_query = element_query.where(ElementRow.doc_id.in_(list(wanted)))
        element_query = session.readable(
            orm, element_query, DocumentRow.marking_id, ElementRow.marking_id
        )
        found = [
            (row.doc_id, row.id, row.marking_id)
            for row in verify_columns(
                binder,
                orm.execute(element_query.order_by(ElementRow.doc_id, ElementRow.seq)),
                (ElementRow, ""),
            )
            if row.doc_id in wanted
        ]
        stored = {
            row.doc_id: row
            for row in orm.scalars(select(PipelineDoc))
            if row.doc_id in wanted or doc_ids is None
        }
        # Derived records of documents that are no longer inputs of any run. (Only those the
        # subject may read or that carry no marking: spills, quarantine.)
        leaving_query = session.readable(
            orm,
            select(*binding_columns(DocumentRow)).where(
                (DocumentRow.status != "parsed") | DocumentRow.superseded_by.is_not(None)
            ),
            DocumentRow.marking_id,
            allow_unmarked=True,
        )
        leaving = {
            row.id for row in verify_columns(binder, orm.execute(leaving_query), (DocumentRow, ""))
        }
        remove = sorted(
            {d for d in orm.scalars(select(PipelineDoc.doc_id)) if d in leaving}
            | set(
                orm.scalars(
                    select(PipelineDoc.doc_id).where(
                        PipelineDoc.doc_id.not_in(select(DocumentRow.id))
                    )
                )
            )
        )
    return PlanRows(inputs, found, stored, remove)


def elements(session: Session, doc_ids: Sequence[str]) -> list[tuple[ElementRow, Marking]]:
    """Every readable element of ``doc_ids`` with its marking, in reading order."""
    with session.workspace.catalog.transaction() as orm:
        query = select(ElementRow).where(ElementRow.doc_id.in_(list(doc_ids)))
        rows = orm.scalars(
            session.readable(orm, query, ElementRow.marking_id).order_by(
                ElementRow.doc_id, ElementRow.seq
            )
        )
        return [(row, _marking(session, orm, row.marking_id)) for row in rows]


def element_states(
    session: Session, doc_ids: Sequence[str]
) -> Iterator[tuple[ElementRow, ElementState, Marking]]:
    """Readable elements of ``doc_ids`` with their stored states (and the states' markings),
    in reading order, a few hundred documents per transaction."""
    for start in range(0, len(doc_ids), _PART):
        part = list(doc_ids[start : start + _PART])
        with session.workspace.catalog.transaction() as orm:
            query = (
                select(ElementRow, ElementState)
                .join(ElementState, ElementState.element_id == ElementRow.id)
                .where(ElementRow.doc_id.in_(part))
            )
            rows = orm.execute(
                session.readable(orm, query, ElementRow.marking_id).order_by(
                    ElementRow.doc_id, ElementRow.seq
                )
            )
            batch = [
                (element, state, _marking(session, orm, state.marking_id))
                for element, state in rows
            ]
        yield from batch


@dataclass(frozen=True)
class LightState:
    """An element's state without its text: what element-level dedup reads."""

    element_id: str
    doc_id: str
    seq: int
    marking: Marking
    dropped: str | None
    failed: str | None
    minhash_key: str | None
    minhash: bytes | None
    text_hash: str | None
    word_count: int | None


def light_states(session: Session, doc_ids: Iterable[str]) -> list[LightState]:
    """Light states of the readable elements of ``doc_ids``.

    The state's marking is what the item carries, so each state's binding is verified -- which
    reads its text (the binding covers it), only to hash it: the text is not kept. The subject
    must read both the element's and the state's marking.
    """
    wanted = set(doc_ids)
    binder = session.workspace.catalog.binder
    out: list[LightState] = []
    with session.workspace.catalog.transaction() as orm:
        query = select(
            *binding_columns(ElementState),
            ElementRow.seq,
            ElementState.dropped,
            ElementState.failed,
            ElementState.minhash_key,
            ElementState.minhash,
            ElementState.text_hash,
            ElementState.word_count,
        ).join(ElementRow, ElementRow.id == ElementState.element_id)
        query = session.readable(orm, query, ElementRow.marking_id, ElementState.marking_id)
        kept: list[Any] = []
        # In parts, so no more than a part's texts are held at once.
        result = orm.execute(query.execution_options(yield_per=2000))
        for part in result.partitions():
            mine = [r for r in part if r.doc_id in wanted]
            for r in verify_columns(binder, mine, (ElementState, "")):
                light = (r.minhash_key, r.minhash, r.text_hash, r.word_count)
                kept.append(
                    (r.element_id, r.doc_id, r.seq, r.marking_id, r.dropped, r.failed, *light)
                )
        for eid, doc_id, seq, marking_id, dropped, failed, key, sig, digest, words in kept:
            out.append(
                LightState(
                    eid,
                    doc_id,
                    seq,
                    _marking(session, orm, marking_id),
                    dropped,
                    failed,
                    key,
                    bytes(sig) if sig is not None else None,
                    digest,
                    words,
                )
            )
    return out


def stored_keys(session: Session, doc_ids: Sequence[str]) -> dict[str, tuple[Any, ...]]:
    """(head key, tail key, indexed) of each of ``doc_ids`` that has run keys."""
    wanted = set(doc_ids)
    with session.workspace.catalog.transaction() as orm:
        return {
            row.doc_id: (row.head_key, row.tail_key, row.indexed)
            for row in orm.scalars(select(PipelineDoc))
            if row.doc_id in wanted
        }


def intern_markings(session: Session, markings: Iterable[Marking]) -> None:
    """Intern ``markings`` now, in one transaction (before concurrent writers need them)."""
    with session.workspace.catalog.transaction() as orm:
        for marking in markings:
            session.intern_marking(orm, marking)


def _marking(session: Session, orm: OrmSession, marking_id: int | None) -> Marking:
    found = session.marking_of(orm, marking_id)
    if found is None:
        raise LookupError("a marked row without a marking")
    return found


def delete_derived(orm: OrmSession, doc_ids: Sequence[str]) -> None:
    """Delete what the pipeline made of ``doc_ids`` from the catalog (in ``orm``'s transaction):
    element states, chunks, predictions, the pipeline's findings and the run keys."""
    ids = list(doc_ids)
    delete_predictions(orm, ids)
    orm.execute(delete(ElementState).where(ElementState.doc_id.in_(ids)))
    orm.execute(delete(ChunkRow).where(ChunkRow.doc_id.in_(ids)))
    orm.execute(
        delete(FindingRow).where(FindingRow.doc_id.in_(ids), FindingRow.kind.in_(PIPELINE_FINDINGS))
    )
    orm.execute(delete(PipelineDoc).where(PipelineDoc.doc_id.in_(ids)))


def remove_derived(session: Session, doc_ids: Sequence[str], *, job_id: str | None = None) -> int:
    """Drop the derived records and index rows of ``doc_ids``; audited. Returns how many of
    them had any."""
    ids = list(doc_ids)
    if not ids:
        return 0
    with session.workspace.catalog.transaction() as orm:
        had = set(orm.scalars(select(PipelineDoc.doc_id).where(PipelineDoc.doc_id.in_(ids))))
        had |= set(orm.scalars(select(ChunkRow.doc_id).where(ChunkRow.doc_id.in_(ids))))
        delete_derived(orm, ids)
        session.audit(
            AuditAction.PIPELINE_REMOVE,
            details={"job": job_id, "documents": len(had)},
        )
    session.workspace.index.replace_documents(ids, [])
    return len(had)


def _table(model: type[Any]) -> Table:
    return cast(Table, model.__table__)


@dataclass
class BatchWrite:
    """One batch's derived records, written in one transaction (see :func:`write_derived`)."""

    session: Session
    orm: OrmSession
    job_id: str
    #: The batch's documents (for the index rows' document-level fields).
    documents: dict[str, DocumentRow]
    counts: dict[str, int] = field(default_factory=lambda: {"elements": 0, "chunks": 0})

    def intern(self, marking: Marking) -> int:
        """The interned id of ``marking`` (added in this transaction when new)."""
        return self.session.intern_marking(self.orm, marking)

    def add(
        self,
        *,
        states: Sequence[dict[str, Any]] = (),
        chunks: Sequence[dict[str, Any]] = (),
        findings: Sequence[dict[str, Any]] = (),
        keys: Sequence[dict[str, Any]] = (),
        predictions: Sequence[dict[str, Any]] = (),
    ) -> None:
        """Insert element states, chunk rows, findings, predictions and run keys (``indexed``
        false)."""
        # Core executemany on the tables, not the ORM's bulk insert: the same rows (bound by the
        # engine's insert hook), without building the ORM's per-row insert state.
        connection = self.orm.connection()
        if states:
            connection.execute(insert(_table(ElementState)), list(states))
        if chunks:
            connection.execute(insert(_table(ChunkRow)), list(chunks))
        if findings:
            connection.execute(insert(_table(FindingRow)), list(findings))
        insert_predictions(self.orm, predictions)
        if keys:
            connection.execute(
                insert(_table(PipelineDoc)),
                [{**k, "indexed": False, "job_id": self.job_id} for k in keys],
            )
        self.counts["elements"] += len(states)
        self.counts["chunks"] += len(chunks)
        if predictions:
            self.counts["predictions"] = self.counts.get("predictions", 0) + len(predictions)


@contextmanager
def write_derived(session: Session, job_id: str, doc_ids: Sequence[str]) -> Iterator[BatchWrite]:
    """Replace the derived records of ``doc_ids``: their old ones are deleted, the block adds
    the new ones, and the transaction commits after the ``pipeline.write`` audit event."""
    with session.workspace.catalog.transaction() as orm:
        delete_derived(orm, doc_ids)
        documents = {
            d.id: d
            for d in orm.scalars(select(DocumentRow).where(DocumentRow.id.in_(list(doc_ids))))
        }
        batch = BatchWrite(session, orm, job_id, documents)
        yield batch
        orm.flush()
        session.audit(
            AuditAction.PIPELINE_WRITE,
            details={"job": job_id, "documents": len(doc_ids), **batch.counts},
        )


def mark_indexed(session: Session, doc_ids: Iterable[str], job_id: str) -> None:
    """Record that the index holds the rows ``job_id`` wrote for ``doc_ids``."""
    with session.workspace.catalog.transaction() as orm:
        orm.execute(
            update(PipelineDoc)
            .where(PipelineDoc.doc_id.in_(list(doc_ids)), PipelineDoc.job_id == job_id)
            .values(indexed=True)
        )


def mark_unindexed(session: Session, doc_ids: Iterable[str]) -> None:
    """Record that the index no longer holds the rows of ``doc_ids`` (the next run redoes them)."""
    ids = list(doc_ids)
    if not ids:
        return
    with session.workspace.catalog.transaction() as orm:
        orm.execute(update(PipelineDoc).where(PipelineDoc.doc_id.in_(ids)).values(indexed=False))
