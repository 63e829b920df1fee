"""Catalog access for predictions: what ``classify`` stages said about elements and chunks.

A prediction is marked with the join of its item's marking and its classifier's, so it is
often higher than the item: every read goes through :meth:`Session.readable` on the
prediction's own marking (whole-row reads, so each row's binding is verified too), and a
prediction the reader may not read is never counted, matched or shown -- filtering on a label
only such predictions carry answers exactly like filtering on a label nobody has.

Predictions are derived records of their document: written by the pipeline's sink in the
same transaction as the document's chunks (:mod:`garrison.store.pipeline_state`), replaced
when only the classifiers changed (:func:`replace_predictions`), and deleted with the rest of
the document's derived records.
"""

from __future__ import annotations

import hashlib
from collections import defaultdict
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import delete, insert, select, update
from sqlalchemy.orm import Session as OrmSession

from garrison.core.clock import utc_now
from garrison.core.errors import InvalidInput
from garrison.security.audit import AuditAction
from garrison.security.markings import Marking, dominates
from garrison.store.models import ChunkRow, PipelineDoc, PredictionRow
from garrison.store.session import Session

__all__ = [
    "LabelFilter",
    "ReadablePrediction",
    "chunks_labelled",
    "documents_of_chunks",
    "parse_labels",
    "prediction_id",
    "predictions_of_documents",
    "readable_predictions",
    "replace_predictions",
    "stored_chunks",
]

_PART = 500


def prediction_id(item_kind: str, item_id: str, name: str) -> str:
    """The id of the prediction ``name`` on one item: the same on every run."""
    digest = hashlib.sha256(f"{item_kind}\x00{item_id}\x00{name}".encode()).hexdigest()
    return digest[:32]


@dataclass(frozen=True)
class LabelFilter:
    """``NAME=LABEL`` filters: an item matches when, for every name, a readable prediction of
    that name has one of the labels given for it."""

    labels: Mapping[str, frozenset[str]] = field(default_factory=dict)

    def __bool__(self) -> bool:
        return bool(self.labels)

    def as_list(self) -> list[str]:
        return [f"{n}={label}" for n in sorted(self.labels) for label in sorted(self.labels[n])]


def parse_labels(values: Iterable[str]) -> LabelFilter:
    """``NAME=LABEL`` strings as a :class:`LabelFilter` (InvalidInput for a malformed one)."""
    grouped: dict[str, set[str]] = defaultdict(set)
    for raw in values:
        name, sep, label = str(raw).partition("=")
        name, label = name.strip(), label.strip()
        if not sep or not name or not label:
            raise InvalidInput(f"A label filter reads NAME=LABEL (e.g. topic=logistics): {raw!r}.")
        grouped[name].add(label)
    return LabelFilter({n: frozenset(v) for n, v in grouped.items()})


@dataclass(frozen=True)
class ReadablePrediction:
    """One prediction as a reader who may read it sees it."""

    item_id: str
    item_kind: str
    doc_id: str
    name: str
    model_id: str
    label: str
    probability: float
    marking: Marking

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "label": self.label,
            "probability": self.probability,
            "model_id": self.model_id,
            "marking": self.marking.banner(),
        }


def _readable(session: Session, orm: OrmSession, query: Any) -> list[tuple[PredictionRow, Marking]]:
    rows = orm.scalars(session.readable(orm, query, PredictionRow.marking_id))
    out = []
    for row in rows:
        marking = session.marking_of(orm, row.marking_id)
        if marking is not None:
            out.append((row, marking))
    return out


def _to_readable(row: PredictionRow, marking: Marking) -> ReadablePrediction:
    return ReadablePrediction(
        row.item_id,
        row.item_kind,
        row.doc_id,
        row.name,
        row.model_id,
        row.label,
        float(row.probability),
        marking,
    )


def readable_predictions(
    session: Session,
    orm: OrmSession,
    *,
    item_ids: Collection[str] | None = None,
    doc_ids: Collection[str] | None = None,
    labels: LabelFilter | None = None,
    ceiling: Marking | None = None,
) -> list[ReadablePrediction]:
    """The predictions the subject may read, of these items or documents (or all), matching
    ``labels`` when given (any of its name/label pairs) and within ``ceiling`` when given, in
    item and name order."""
    base = select(PredictionRow)
    if labels:
        pairs = [(n, label) for n, values in labels.labels.items() for label in values]
        base = base.where(PredictionRow.name.in_(sorted({n for n, _ in pairs})))
    out: list[ReadablePrediction] = []
    keys: list[tuple[str, list[str] | None]] = []
    if item_ids is not None:
        ids = sorted(set(item_ids))
        keys = [("item", ids[i : i + _PART]) for i in range(0, len(ids), _PART)]
    elif doc_ids is not None:
        ids = sorted(set(doc_ids))
        keys = [("doc", ids[i : i + _PART]) for i in range(0, len(ids), _PART)]
    else:
        keys = [("all", None)]
    for kind, part in keys:
        query = base
        if kind == "item" and part is not None:
            query = query.where(PredictionRow.item_id.in_(part))
        elif kind == "doc" and part is not None:
            query = query.where(PredictionRow.doc_id.in_(part))
        for row, marking in _readable(session, orm, query):
            if labels and row.label not in labels.labels.get(row.name, frozenset()):
                continue
            if ceiling is not None and not dominates(ceiling, marking):
                continue
            out.append(_to_readable(row, marking))
    out.sort(key=lambda p: (p.doc_id, p.item_kind, p.item_id, p.name))
    return out


def predictions_of_documents(
    session: Session, doc_ids: Collection[str], *, ceiling: Marking | None = None
) -> list[ReadablePrediction]:
    """The readable predictions (within ``ceiling``) on the items of ``doc_ids``."""
    with session.workspace.catalog.transaction() as orm:
        return readable_predictions(session, orm, doc_ids=doc_ids, ceiling=ceiling)


def chunks_labelled(
    session: Session, orm: OrmSession, labels: LabelFilter, ceiling: Marking | None = None
) -> dict[str, list[Marking]]:
    """Readable chunks that match ``labels`` -- by a readable prediction on the chunk or on
    one of its elements, for every name -- each with the markings of the predictions that
    matched it (what showing the chunk under the filter reveals)."""
    found = readable_predictions(session, orm, labels=labels, ceiling=ceiling)
    if not found:
        return {}
    by_name: dict[str, dict[str, list[Marking]]] = defaultdict(lambda: defaultdict(list))
    element_hits: dict[str, list[ReadablePrediction]] = defaultdict(list)
    for p in found:
        if p.item_kind == "chunk":
            by_name[p.name][p.item_id].append(p.marking)
        else:
            element_hits[p.item_id].append(p)
    if element_hits:
        docs = sorted({p.doc_id for ps in element_hits.values() for p in ps})
        for start in range(0, len(docs), _PART):
            query = select(ChunkRow).where(ChunkRow.doc_id.in_(docs[start : start + _PART]))
            for chunk in orm.scalars(session.readable(orm, query, ChunkRow.marking_id)):
                for element_id in chunk.element_ids or ():
                    for p in element_hits.get(element_id, ()):
                        by_name[p.name][chunk.id].append(p.marking)
    names = list(labels.labels)
    if any(name not in by_name for name in names):
        return {}
    common = set(by_name[names[0]])
    for name in names[1:]:
        common &= set(by_name[name])
    return {
        chunk_id: [m for name in names for m in by_name[name][chunk_id]]
        for chunk_id in sorted(common)
    }


def stored_chunks(session: Session, doc_ids: Sequence[str]) -> list[tuple[ChunkRow, Marking]]:
    """The readable stored chunks of ``doc_ids`` with their markings, in document order."""
    out: list[tuple[ChunkRow, Marking]] = []
    for start in range(0, len(doc_ids), _PART):
        part = list(doc_ids[start : start + _PART])
        with session.workspace.catalog.transaction() as orm:
            query = select(ChunkRow).where(ChunkRow.doc_id.in_(part))
            rows = orm.scalars(
                session.readable(orm, query, ChunkRow.marking_id).order_by(
                    ChunkRow.doc_id, ChunkRow.seq
                )
            )
            for row in rows:
                marking = session.marking_of(orm, row.marking_id)
                if marking is not None:
                    out.append((row, marking))
    return out


def documents_of_chunks(session: Session, chunk_ids: Sequence[str]) -> list[str]:
    """The ids of the documents that hold the readable chunks among ``chunk_ids``, sorted."""
    docs: set[str] = set()
    for start in range(0, len(chunk_ids), _PART):
        part = list(chunk_ids[start : start + _PART])
        with session.workspace.catalog.transaction() as orm:
            query = select(ChunkRow).where(ChunkRow.id.in_(part))
            docs.update(
                c.doc_id for c in orm.scalars(session.readable(orm, query, ChunkRow.marking_id))
            )
    return sorted(docs)


def delete_predictions(orm: OrmSession, doc_ids: Sequence[str]) -> None:
    """Delete the predictions of ``doc_ids`` (in ``orm``'s transaction)."""
    ids = list(doc_ids)
    for start in range(0, len(ids), _PART):
        part = ids[start : start + _PART]
        orm.execute(delete(PredictionRow).where(PredictionRow.doc_id.in_(part)))


def prediction_rows(
    session: Session,
    orm: OrmSession,
    job_id: str,
    predictions: Iterable[tuple[str, str, str, Mapping[str, Any]]],
) -> list[dict[str, Any]]:
    """Catalog rows for ``(item_kind, item_id, doc_id, prediction)`` tuples, where a
    prediction is what the ``classify`` stage attaches (name, model_id, label, probability,
    probabilities, marking); markings interned in ``orm``'s transaction."""
    now = utc_now()
    rows: list[dict[str, Any]] = []
    for item_kind, item_id, doc_id, p in predictions:
        rows.append(
            {
                "id": prediction_id(item_kind, item_id, str(p["name"])),
                "item_id": item_id,
                "item_kind": item_kind,
                "doc_id": doc_id,
                "name": str(p["name"]),
                "model_id": str(p["model_id"]),
                "label": str(p["label"]),
                "probability": round(float(p["probability"]), 6),
                "probabilities": {
                    str(k): round(float(v), 6) for k, v in dict(p["probabilities"]).items()
                },
                "marking_id": session.intern_marking(orm, p["marking"]),
                "run_id": job_id,
                "created_at": now,
            }
        )
    return rows


def insert_predictions(orm: OrmSession, rows: Sequence[dict[str, Any]]) -> None:
    if rows:
        orm.execute(insert(PredictionRow), list(rows))


def replace_predictions(
    session: Session,
    job_id: str,
    doc_ids: Sequence[str],
    predictions: Iterable[tuple[str, str, str, Mapping[str, Any]]],
    predict_key: str | None,
) -> int:
    """Replace the predictions of ``doc_ids`` (whose other derived records stand) and record
    the ``predict_key`` they were made under; one transaction, committed after the
    ``pipeline.write`` audit event. Returns how many predictions were written."""
    ids = list(doc_ids)
    if not ids:
        return 0
    with session.workspace.catalog.transaction() as orm:
        delete_predictions(orm, ids)
        rows = prediction_rows(session, orm, job_id, predictions)
        insert_predictions(orm, rows)
        for start in range(0, len(ids), _PART):
            orm.execute(
                update(PipelineDoc)
                .where(PipelineDoc.doc_id.in_(ids[start : start + _PART]))
                .values(predict_key=predict_key)
            )
        orm.flush()
        session.audit(
            AuditAction.PIPELINE_WRITE,
            details={"job": job_id, "documents": len(ids), "predictions": len(rows)},
        )
    return len(rows)
