"""Selecting the records of a dataset: what a subject may read, filtered by the selection.

A selection names the kind of record (``chunks``, ``elements``, ``documents`` or ``records`` --
the rows of legacy tables) and filters on source, media type, language, a marking ceiling,
quality, duplicates, ingest date and predictions (``labels``: ``NAME=LABEL``, matched on
predictions of the ``classify`` stage the subject may read). The subject's access filter is
applied first, in SQL (by the store); nothing it may not read is ever loaded. A record's marking
is the join of the fields it shows -- and of the predictions that selected it or that it shows
(``fields["predictions"]``): a record picked by a SECRET classifier's label is SECRET -- and of
the workspace's compilation rules (MARKINGS.md section 6): a record whose text and shown fields
combine both parts of a rule is marked at least at the rule's marking, with a ``compilation``
finding naming the rule (``DatasetRecord.findings``).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from garrison.core.errors import InvalidInput, NotPermitted
from garrison.security.compilation import CompilationRule, apply_rules, fired_details
from garrison.security.markings import Marking, dominates, join
from garrison.store.compilation import workspace_rules
from garrison.store.datasets import RecordSources, record_sources
from garrison.store.models import DocumentRow
from garrison.store.predictions import (
    LabelFilter,
    ReadablePrediction,
    parse_labels,
    predictions_of_documents,
)
from garrison.store.session import Session

__all__ = [
    "DOCUMENT_FIELDS",
    "DatasetRecord",
    "Selection",
    "compiled_marking",
    "record_marking",
    "select_records",
]

RecordKind = Literal["chunks", "elements", "documents", "records"]


class Selection(BaseModel):
    """Which records a dataset holds; part of the version's identity."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    kind: RecordKind = "chunks"
    source: str | None = None
    media_type: str | None = None
    language: str | None = None
    #: A ceiling: only records whose marking it dominates (canonical banner).
    max_marking: str | None = None
    quality_ok: bool = False
    canonical_only: bool = False
    date_from: datetime | None = None
    date_to: datetime | None = None
    #: Extra fields exported beside id, text and marking (``language``, ``source``...).
    fields: tuple[str, ...] = Field(default=("doc_id", "language", "media_type", "source"))
    #: ``NAME=LABEL`` filters on readable predictions (every name must match; several labels
    #: of one name are alternatives). A chunk matches on its own or its elements' predictions.
    labels: tuple[str, ...] = ()

    @field_validator("labels")
    @classmethod
    def _valid_labels(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        from garrison.core.errors import GarrisonError

        try:
            return tuple(parse_labels(value).as_list())
        except GarrisonError as exc:
            raise ValueError(str(exc)) from exc

    @field_validator("fields")
    @classmethod
    def _known_fields(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        unknown = sorted(set(value) - set(FIELDS))
        if unknown:
            raise ValueError(f"unknown field(s) {', '.join(unknown)}; known: {', '.join(FIELDS)}")
        return value


#: Fields a record may export.
FIELDS = (
    "doc_id",
    "language",
    "media_type",
    "source",
    "uri",
    "title",
    "section_path",
    "token_count",
    "element_ids",
    "type",
    "quality_flags",
    "pii_types",
    "fields",
    "predictions",
)


@dataclass
class DatasetRecord:
    """One record of a dataset, as selected for its subject."""

    id: str
    kind: str
    doc_id: str
    text: str
    marking: Marking
    fields: dict[str, Any] = field(default_factory=dict)
    #: Canonical record of the record's duplicate cluster (itself when not a duplicate).
    cluster: str = ""
    lineage: list[dict[str, Any]] = field(default_factory=list)
    #: ``compilation`` findings of a record a rule raised (see the module docs).
    findings: list[dict[str, Any]] = field(default_factory=list)

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.text.encode("utf-8")).hexdigest()


def _doc_ok(doc: DocumentRow, sel: Selection) -> bool:
    if sel.source is not None and doc.source_name != sel.source:
        return False
    if sel.media_type is not None and doc.media_type != sel.media_type:
        return False
    ingested = doc.ingested_at
    if ingested is not None and ingested.tzinfo is None:
        from datetime import UTC

        ingested = ingested.replace(tzinfo=UTC)
    if sel.date_from is not None and ingested is not None and ingested < sel.date_from:
        return False
    return not (sel.date_to is not None and ingested is not None and ingested > sel.date_to)


#: Fields that show the document: they carry its marking (CLI.md shows a document id only to
#: readers who dominate the document).
DOCUMENT_FIELDS = frozenset({"doc_id", "title", "uri"})


def record_marking(
    kind: str,
    item: Marking,
    document: Marking | None,
    headings: list[Marking] | None,
    fields: Iterable[str],
) -> Marking:
    """The marking of a record: the join of what it shows.

    The text (and everything derived from it) shows ``item``; ``doc_id``, ``title`` and ``uri``
    show the document; ``section_path`` shows its headings (``None`` when their markings were
    not recorded: the document's marking stands in, failing closed). A missing document marking
    fails closed as well.
    """
    shown = set(fields)
    parts = [item]
    if kind != "document" and shown & DOCUMENT_FIELDS:
        if document is None:
            raise KeyError("a record's document has no marking")
        parts.append(document)
    if kind != "document" and "section_path" in shown:
        if headings is None:
            if document is None:
                raise KeyError("a record's document has no marking")
            parts.append(document)
        else:
            parts.extend(headings)
    return join(*parts)


def _headings(
    session: Session, sources: RecordSources, path: list[str], ids: list[int] | None
) -> tuple[list[str], list[Marking] | None]:
    """The headings of ``path`` the subject may read, with their markings.

    A heading above what the subject may read is withheld, with its marking. When the headings'
    markings were not recorded (or do not match the path), the whole path is kept and ``None``
    comes back: the caller then marks it with the document's marking (fail closed).
    """
    if ids is None or len(ids) != len(path):
        return list(path), None
    shown: list[str] = []
    markings: list[Marking] = []
    for heading, marking_id in zip(path, ids, strict=True):
        marking = sources.markings.get(marking_id)
        if marking is None:
            return list(path), None
        if session.can_read(marking):
            markings.append(marking)
            shown.append(heading)
    return shown, markings


def select_records(session: Session, selection: Selection) -> list[DatasetRecord]:
    """The records ``selection`` picks among what ``session``'s subject may read.

    Each record is marked with the join of the fields the selection shows
    (:func:`record_marking`), so the ceiling selects on what a record really shows.
    """
    ceiling: Marking | None = None
    if selection.max_marking is not None:
        ceiling = session.parse_marking(selection.max_marking)
        if not session.can_read(ceiling):
            raise NotPermitted(
                f"The ceiling {ceiling.banner()} is above what {session.subject.name} may read."
            )
    sources = record_sources(session, selection.kind, lambda d: _doc_ok(d, selection))
    docs, states = sources.documents, sources.states
    shown = selection.fields

    def base_fields(doc: DocumentRow) -> dict[str, Any]:
        return {
            "doc_id": doc.id,
            "media_type": doc.media_type,
            "source": doc.source_name,
            "uri": doc.uri,
            "title": doc.title,
        }

    out: list[DatasetRecord] = []
    if selection.kind == "chunks":
        for chunk in sources.chunks:
            members = [states.get(e) for e in chunk.element_ids]
            languages = {s.language for s in members if s is not None and s.language}
            flags = sorted({f for s in members if s is not None for f in s.flags})
            pii = sorted({p["type"] for s in members if s is not None for p in s.pii})
            clusters = sorted({s.dup_of for s in members if s is not None and s.dup_of})
            doc = docs[chunk.doc_id]
            doc_marking = sources.marking(doc.marking_id)
            item = sources.marking(chunk.marking_id)
            path, headings = _headings(
                session, sources, list(chunk.section_path), chunk.section_marking_ids
            )
            out.append(
                DatasetRecord(
                    chunk.id,
                    "chunk",
                    chunk.doc_id,
                    chunk.text,
                    record_marking("chunk", item, doc_marking, headings, shown),
                    {
                        **base_fields(doc),
                        "language": next(iter(languages)) if len(languages) == 1 else None,
                        "section_path": path,
                        "token_count": chunk.token_count,
                        "element_ids": list(chunk.element_ids),
                        "type": "Chunk",
                        "quality_flags": flags,
                        "pii_types": pii,
                        "_duplicate": bool(clusters),
                    },
                    cluster=clusters[0] if clusters else chunk.id,
                    # The chunk's own steps, then those of the elements it was made from.
                    lineage=list(chunk.lineage)
                    + [step for s in members if s is not None for step in s.lineage],
                )
            )
    elif selection.kind in ("elements", "records"):
        for element in sources.elements:
            state = states.get(element.id)
            if state is not None and state.dropped:
                continue
            doc = docs[element.doc_id]
            doc_marking = sources.marking(doc.marking_id)
            item = sources.marking(element.marking_id)
            raw = element.data.get("section_marking_ids")
            path, headings = _headings(
                session,
                sources,
                list(element.data.get("section_path", [])),
                [int(i) for i in raw] if isinstance(raw, list) else None,
            )
            out.append(
                DatasetRecord(
                    element.id,
                    "element",
                    element.doc_id,
                    state.text if state is not None else element.text,
                    record_marking("element", item, doc_marking, headings, shown),
                    {
                        **base_fields(doc),
                        "language": state.language if state is not None else None,
                        "section_path": path,
                        "type": element.type,
                        "quality_flags": list(state.flags) if state is not None else [],
                        "pii_types": sorted({p["type"] for p in state.pii})
                        if state is not None
                        else [],
                        "fields": element.data.get("fields", {}),
                        "_duplicate": bool(state is not None and state.dup_of),
                    },
                    cluster=(state.dup_of if state is not None and state.dup_of else element.id),
                    lineage=list(state.lineage) if state is not None else [],
                )
            )
    else:  # documents: the text of their readable elements, in reading order
        texts: dict[str, list[str]] = {}
        for element in sources.elements:
            state = states.get(element.id)
            if state is None or not state.dropped:
                texts.setdefault(element.doc_id, []).append(
                    state.text if state is not None else element.text
                )
        for doc_id, parts in texts.items():
            doc = docs[doc_id]
            out.append(
                DatasetRecord(
                    doc_id,
                    "document",
                    doc_id,
                    "\n\n".join(parts),
                    sources.marking(doc.marking_id),
                    {**base_fields(doc), "type": "Document"},
                    cluster=doc_id,
                    lineage=[{"stage": "ingest", "parents": [doc_id]}],
                )
            )
    out = _with_predictions(session, out, parse_labels(selection.labels), shown, ceiling)
    rules = workspace_rules(session)
    for record in out:
        compiled = apply_rules(rules, _texts(record.text, record.fields, shown), record.marking)
        if compiled.raised:
            record.marking = compiled.marking
            record.findings = fired_details(compiled)
    picked = []
    for record in out:
        if ceiling is not None and not dominates(ceiling, record.marking):
            continue
        if selection.language is not None and record.fields.get("language") != selection.language:
            continue
        if selection.quality_ok and record.fields.get("quality_flags"):
            continue
        if selection.canonical_only and record.fields.get("_duplicate"):
            continue
        picked.append(record)
    for record in picked:
        record.fields.pop("_duplicate", None)
    if not picked:
        raise InvalidInput("The selection is empty: no readable record matches it.")
    return picked


def _texts(text: str, fields: dict[str, Any], shown: Iterable[str]) -> list[str]:
    """What a record shows as text: its text and the textual fields it exports."""
    out = [text]
    for name in set(shown):
        value = fields.get(name)
        if name == "predictions":
            continue  # labels, not text: they raise the record through their own markings
        if isinstance(value, str):
            out.append(value)
        elif isinstance(value, list):
            out.extend(v for v in value if isinstance(v, str))
        elif isinstance(value, dict):
            out.extend(v for v in value.values() if isinstance(v, str))
    return out


def compiled_marking(
    rules: Sequence[CompilationRule],
    text: str,
    fields: dict[str, Any],
    shown: Iterable[str],
    marking: Marking,
) -> Marking:
    """``marking`` raised by the compilation rules over what a record shows."""
    return apply_rules(rules, _texts(text, fields, shown), marking).marking


def _with_predictions(
    session: Session,
    records: list[DatasetRecord],
    labels: LabelFilter,
    shown: Iterable[str],
    ceiling: Marking | None,
) -> list[DatasetRecord]:
    """Records kept by ``labels`` (all when empty), each with the readable predictions on it
    in ``fields["predictions"]`` and its marking joined with those it shows or was picked by.

    A chunk's predictions are its own and its elements'; an element's, its own; a document's,
    those on any of its elements or chunks. Under a ceiling, predictions above it do not count.
    """
    show = "predictions" in set(shown)
    if not labels and not show:
        return records
    found = predictions_of_documents(session, {r.doc_id for r in records}, ceiling=ceiling)
    by_item: dict[str, list[ReadablePrediction]] = {}
    by_doc: dict[str, list[ReadablePrediction]] = {}
    for p in found:
        by_item.setdefault(p.item_id, []).append(p)
        by_doc.setdefault(p.doc_id, []).append(p)
    kept = []
    for record in records:
        if record.kind == "document":
            mine = by_doc.get(record.doc_id, [])
        else:
            items = [record.id, *(record.fields.get("element_ids") or [])]
            if record.kind == "element":
                items = [record.id]
            mine = [p for i in items for p in by_item.get(i, [])]
        matched = [p for p in mine if p.label in labels.labels.get(p.name, frozenset())]
        if labels and {p.name for p in matched} != set(labels.labels):
            continue
        parts = [record.marking, *(p.marking for p in matched)]
        if show:
            record.fields["predictions"] = [
                {**p.to_dict(), "item_kind": p.item_kind, "item_id": p.item_id} for p in mine
            ]
            parts.extend(p.marking for p in mine)
        record.marking = join(*parts)
        kept.append(record)
    return kept
