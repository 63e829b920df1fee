"""Catalog tables (SQLAlchemy 2 declarative). Schema changes go through Alembic migrations."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

__all__ = [
    "Base",
    "ChunkRow",
    "CompilationRuleRow",
    "DatasetVersionRow",
    "DocumentLocation",
    "DocumentRow",
    "ElementRow",
    "ElementState",
    "EvalCacheRow",
    "EvalRunItemRow",
    "EvalRunRow",
    "EvalSuiteItemRow",
    "EvalSuiteRow",
    "FindingRow",
    "InternedMarking",
    "JobItemRow",
    "JobRow",
    "LabelAnnotatorRow",
    "LabelProjectRow",
    "LabelReviewRow",
    "LabelRow",
    "LabelTaskRow",
    "Meta",
    "ModelVersionRow",
    "PipelineDoc",
    "PredictionRow",
    "RegistryEntry",
    "SourceRow",
    "SubjectRow",
    "TokenRow",
]


class Base(DeclarativeBase):
    """Declarative base of every catalog table."""


class Meta(Base):
    """Key/value facts about the workspace (id, system high, schema format)."""

    __tablename__ = "garrison_meta"

    key: Mapped[str] = mapped_column(String(64), primary_key=True)
    value: Mapped[str] = mapped_column(Text)


class InternedMarking(Base):
    """Each distinct marking once; records refer to it by id and search filters on ids."""

    __tablename__ = "markings"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    #: Canonical JSON of the structured form: the identity of the marking.
    key: Mapped[str] = mapped_column(Text, unique=True)
    banner: Mapped[str] = mapped_column(Text)
    expression: Mapped[str] = mapped_column(Text)
    #: HMAC-SHA-256 binding this row to its marking(s) (see :mod:`garrison.store.bindings`).
    binding: Mapped[str | None] = mapped_column(String(64), nullable=True)


class SubjectRow(Base):
    """A user or service account: clearance, accesses, grants and roles."""

    __tablename__ = "subjects"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(128), unique=True)
    kind: Mapped[str] = mapped_column(String(16))
    clearance: Mapped[str] = mapped_column(String(4))
    sci: Mapped[list[str]] = mapped_column(JSON)
    sap: Mapped[list[str]] = mapped_column(JSON)
    citizenship: Mapped[str] = mapped_column(String(8))
    groups: Mapped[list[str]] = mapped_column(JSON)
    grants: Mapped[list[str]] = mapped_column(JSON)
    roles: Mapped[list[str]] = mapped_column(JSON)
    #: MARKINGS.md 7.4 briefings: NATO level (or None), NATO special briefings, atomic energy
    #: accesses, ACCM nicknames and non-IC dissemination grants.
    nato: Mapped[str | None] = mapped_column(String(4), nullable=True)
    nato_special: Mapped[list[str]] = mapped_column(JSON, default=list)
    aea: Mapped[list[str]] = mapped_column(JSON, default=list)
    accm: Mapped[list[str]] = mapped_column(JSON, default=list)
    nonic: Mapped[list[str]] = mapped_column(JSON, default=list)
    #: Distinguished name of the subject's client certificate, for mutual TLS.
    dn: Mapped[str | None] = mapped_column(Text, unique=True, nullable=True)
    disabled: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class RegistryEntry(Base):
    """A site addition to the marking registry (SCI system, SAP id, country group, CUI category)."""

    __tablename__ = "registry_entries"
    __table_args__ = (UniqueConstraint("kind", "name"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    kind: Mapped[str] = mapped_column(String(16))
    name: Mapped[str] = mapped_column(String(64))
    #: Members of a country group (``NATO-MEMBERS`` included); for a ``sap-nickname`` the one
    #: PID it stands for; ``None`` for an opaque tetragraph and for other kinds.
    members: Mapped[list[str] | None] = mapped_column(JSON, nullable=True)
    description: Mapped[str | None] = mapped_column(Text, nullable=True)
    added_by: Mapped[str] = mapped_column(String(128))
    added_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class CompilationRuleRow(Base):
    """A site's classification-by-compilation rule (MARKINGS.md section 6).

    ``when_terms`` and ``and_terms`` hold each matcher as written (terms, and expressions with
    their ``re:`` prefix); the rule is marked with its own marking, which is what a record that
    combines both parts is raised to, and only readers of that marking see the rule.
    """

    __tablename__ = "compilation_rules"

    #: Opaque and random (made when the row is written).
    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    name: Mapped[str] = mapped_column(String(64), unique=True)
    when_terms: Mapped[list[str]] = mapped_column(JSON)
    and_terms: Mapped[list[str]] = mapped_column(JSON)
    marking_id: Mapped[int] = mapped_column(ForeignKey("markings.id"), index=True)
    reason: Mapped[str] = mapped_column(Text)
    added_by: Mapped[str] = mapped_column(String(128))
    added_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    #: HMAC-SHA-256 binding this row to its marking (see :mod:`garrison.store.bindings`).
    binding: Mapped[str | None] = mapped_column(String(64), nullable=True)


def row_dict(row: Any) -> dict[str, Any]:
    """Column values of a mapped row as a plain dict."""
    return {c.key: getattr(row, c.key) for c in row.__table__.columns}


class SourceRow(Base):
    """A named place data comes from, with the marking of whatever it holds unmarked."""

    __tablename__ = "sources"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(256), unique=True)
    kind: Mapped[str] = mapped_column(String(16))
    uri: Mapped[str] = mapped_column(Text)
    default_marking_id: Mapped[int] = mapped_column(ForeignKey("markings.id"))
    created_by: Mapped[str] = mapped_column(String(128))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class DocumentRow(Base):
    """One original file (or table snapshot), identified by the SHA-256 of its bytes.

    A spilled document keeps only its hash, size, status and reason: never a title, a media
    type, a marking or any text.
    """

    __tablename__ = "documents"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    status: Mapped[str] = mapped_column(String(16), index=True)
    reason: Mapped[str | None] = mapped_column(String(32), nullable=True)
    size: Mapped[int] = mapped_column(BigInteger)
    media_type: Mapped[str | None] = mapped_column(String(128), nullable=True)
    filename: Mapped[str | None] = mapped_column(Text, nullable=True)
    uri: Mapped[str] = mapped_column(Text)
    source_name: Mapped[str] = mapped_column(String(256))
    parent_id: Mapped[str | None] = mapped_column(String(64), nullable=True, index=True)
    title: Mapped[str | None] = mapped_column(Text, nullable=True)
    author: Mapped[str | None] = mapped_column(Text, nullable=True)
    created: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    modified: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    banner_marking_id: Mapped[int | None] = mapped_column(ForeignKey("markings.id"), nullable=True)
    marking_id: Mapped[int | None] = mapped_column(
        ForeignKey("markings.id"), nullable=True, index=True
    )
    #: The source default the inherited elements took (the join, after a conflict).
    default_marking_id: Mapped[int | None] = mapped_column(ForeignKey("markings.id"), nullable=True)
    #: Set by a downgrade: what the document was marked before.
    original_marking_id: Mapped[int | None] = mapped_column(
        ForeignKey("markings.id"), nullable=True
    )
    blob: Mapped[bool] = mapped_column(Boolean, default=False)
    meta: Mapped[dict[str, Any]] = mapped_column(JSON)
    job_id: Mapped[str | None] = mapped_column(String(32), nullable=True)
    superseded_by: Mapped[str | None] = mapped_column(String(64), nullable=True)
    ingested_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    #: HMAC-SHA-256 binding this row to its marking(s) (see :mod:`garrison.store.bindings`).
    binding: Mapped[str | None] = mapped_column(String(64), nullable=True)


class DocumentLocation(Base):
    """Every place the same bytes were seen (re-ingest records a location, nothing else)."""

    __tablename__ = "document_locations"
    __table_args__ = (UniqueConstraint("doc_id", "uri"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    doc_id: Mapped[str] = mapped_column(String(64), ForeignKey("documents.id"), index=True)
    uri: Mapped[str] = mapped_column(Text, index=True)
    source_name: Mapped[str] = mapped_column(String(256))
    parent_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    job_id: Mapped[str | None] = mapped_column(String(32), nullable=True)
    seen_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class ElementRow(Base):
    """One element of a parsed document, with its own marking."""

    __tablename__ = "elements"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    doc_id: Mapped[str] = mapped_column(String(64), ForeignKey("documents.id"), index=True)
    seq: Mapped[int] = mapped_column(Integer)
    type: Mapped[str] = mapped_column(String(32))
    text: Mapped[str] = mapped_column(Text)
    page: Mapped[int | None] = mapped_column(Integer, nullable=True)
    marking_id: Mapped[int] = mapped_column(ForeignKey("markings.id"), index=True)
    marking_source: Mapped[str] = mapped_column(String(16))
    original_marking_id: Mapped[int | None] = mapped_column(
        ForeignKey("markings.id"), nullable=True
    )
    #: Everything else a parser found: heading level, section path, cells, locator, fields...
    data: Mapped[dict[str, Any]] = mapped_column(JSON)
    #: HMAC-SHA-256 binding this row to its marking(s) (see :mod:`garrison.store.bindings`).
    binding: Mapped[str | None] = mapped_column(String(64), nullable=True)


class FindingRow(Base):
    """A marking finding for a steward; ``detail`` never quotes content."""

    __tablename__ = "findings"

    #: Opaque and random (made when the row is written): never a counter.
    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    doc_id: Mapped[str] = mapped_column(String(64), ForeignKey("documents.id"), index=True)
    element_id: Mapped[str | None] = mapped_column(String(32), nullable=True)
    kind: Mapped[str] = mapped_column(String(48), index=True)
    detail: Mapped[str] = mapped_column(Text)
    job_id: Mapped[str | None] = mapped_column(String(32), nullable=True)
    #: Set when the finding itself carries a marking (a duplicate marked differently is marked
    #: with the join of both): only subjects who may read it see it.
    marking_id: Mapped[int | None] = mapped_column(ForeignKey("markings.id"), nullable=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    resolved_by: Mapped[str | None] = mapped_column(String(128), nullable=True)
    resolved_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    resolution_note: Mapped[str | None] = mapped_column(Text, nullable=True)
    #: HMAC-SHA-256 binding this row to its marking(s) (see :mod:`garrison.store.bindings`).
    binding: Mapped[str | None] = mapped_column(String(64), nullable=True)


class JobRow(Base):
    """A unit of long work (an ingest run): status, progress and counts."""

    __tablename__ = "jobs"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    kind: Mapped[str] = mapped_column(String(16))
    status: Mapped[str] = mapped_column(String(16), index=True)
    actor: Mapped[str] = mapped_column(String(128))
    pid: Mapped[int | None] = mapped_column(Integer, nullable=True)
    params: Mapped[dict[str, Any]] = mapped_column(JSON)
    counts: Mapped[dict[str, Any]] = mapped_column(JSON)
    done: Mapped[int] = mapped_column(Integer, default=0)
    total: Mapped[int | None] = mapped_column(Integer, nullable=True)
    error: Mapped[str | None] = mapped_column(Text, nullable=True)
    started_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)


class JobItemRow(Base):
    """What happened to one input of a job (including files that never became documents)."""

    __tablename__ = "job_items"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    job_id: Mapped[str] = mapped_column(String(32), ForeignKey("jobs.id"), index=True)
    uri: Mapped[str] = mapped_column(Text)
    doc_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    outcome: Mapped[str] = mapped_column(String(16))
    reason: Mapped[str | None] = mapped_column(String(32), nullable=True)
    detail: Mapped[str | None] = mapped_column(Text, nullable=True)


class ElementState(Base):
    """What the pipeline made of one element (its latest run): text, language, PII, quality,
    duplicate status and lineage. The element row itself never changes."""

    __tablename__ = "element_states"

    element_id: Mapped[str] = mapped_column(String(32), ForeignKey("elements.id"), primary_key=True)
    doc_id: Mapped[str] = mapped_column(String(64), index=True)
    run_id: Mapped[str] = mapped_column(String(32))
    marking_id: Mapped[int] = mapped_column(ForeignKey("markings.id"), index=True)
    text: Mapped[str] = mapped_column(Text)
    language: Mapped[str | None] = mapped_column(String(8), nullable=True)
    language_confidence: Mapped[float | None] = mapped_column(Float, nullable=True)
    quality: Mapped[dict[str, Any]] = mapped_column(JSON)
    flags: Mapped[list[str]] = mapped_column(JSON)
    pii: Mapped[list[dict[str, Any]]] = mapped_column(JSON)
    dropped: Mapped[str | None] = mapped_column(String(64), nullable=True)
    dup_of: Mapped[str | None] = mapped_column(String(32), nullable=True, index=True)
    dup_kind: Mapped[str | None] = mapped_column(String(8), nullable=True)
    failed: Mapped[str | None] = mapped_column(Text, nullable=True)
    lineage: Mapped[list[dict[str, Any]]] = mapped_column(JSON)
    #: The dedup stage's MinHash signature of this element's text (``rensa.RMinHash`` state
    #: bytes, never a pickle) and the parameters it was made under (permutations, shingle size,
    #: seed, algorithm): a re-run reuses it instead of shingling every text again.
    minhash_key: Mapped[str | None] = mapped_column(String(32), nullable=True)
    minhash: Mapped[bytes | None] = mapped_column(LargeBinary, nullable=True)
    #: The dedup stage's exact-duplicate hash of the text (SHA-256 of its normalized words) and
    #: its word count: with the signature, all a re-run's dedup needs of an unchanged element.
    text_hash: Mapped[str | None] = mapped_column(String(64), nullable=True)
    word_count: Mapped[int | None] = mapped_column(Integer, nullable=True)
    #: HMAC-SHA-256 binding this row to its marking(s) (see :mod:`garrison.store.bindings`).
    binding: Mapped[str | None] = mapped_column(String(64), nullable=True)


class PipelineDoc(Base):
    """Where a document stands with the pipeline: the keys its derived records were made under.

    ``head_key`` covers the document's elements (ids and markings) and the stages before the
    first corpus stage; ``tail_key`` covers what entered the stages after the last corpus stage.
    A re-run recomputes both and redoes only what no longer matches. ``indexed`` turns true once
    the chunk index holds the document's rows (set after the catalog commit, so a run killed in
    between redoes the document instead of leaving a gap).
    """

    __tablename__ = "pipeline_docs"

    doc_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    pipeline: Mapped[str] = mapped_column(String(64))
    head_key: Mapped[str | None] = mapped_column(String(64), nullable=True)
    tail_key: Mapped[str | None] = mapped_column(String(64), nullable=True)
    #: The ``classify`` stages (with their classifier version ids) the document's predictions
    #: were made by; None when it has none. Changing it re-predicts, nothing else.
    predict_key: Mapped[str | None] = mapped_column(String(64), nullable=True)
    indexed: Mapped[bool] = mapped_column(Boolean, default=False)
    job_id: Mapped[str] = mapped_column(String(32))
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class ChunkRow(Base):
    """A chunk: consecutive elements of one document, marked with the join of theirs."""

    __tablename__ = "chunks"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    doc_id: Mapped[str] = mapped_column(String(64), index=True)
    seq: Mapped[int] = mapped_column(Integer)
    run_id: Mapped[str] = mapped_column(String(32))
    marking_id: Mapped[int] = mapped_column(ForeignKey("markings.id"), index=True)
    text: Mapped[str] = mapped_column(Text)
    token_count: Mapped[int | None] = mapped_column(Integer, nullable=True)
    element_ids: Mapped[list[str]] = mapped_column(JSON)
    section_path: Mapped[list[str]] = mapped_column(JSON)
    #: The interned marking of each ``section_path`` heading, in the same order: a heading is
    #: shown only to readers who dominate its marking (withheld otherwise, never blanked).
    section_marking_ids: Mapped[list[int] | None] = mapped_column(JSON, nullable=True)
    embedding_model: Mapped[str | None] = mapped_column(String(128), nullable=True)
    lineage: Mapped[list[dict[str, Any]]] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    #: HMAC-SHA-256 binding this row to its marking(s) (see :mod:`garrison.store.bindings`).
    binding: Mapped[str | None] = mapped_column(String(64), nullable=True)


class PredictionRow(Base):
    """A classifier's prediction on one element or chunk, written by the ``classify`` stage.

    Marked with the join of the item's marking and the classifier's (a SECRET classifier's
    prediction on an UNCLASSIFIED chunk is SECRET); removed with the item's derived records.
    """

    __tablename__ = "predictions"

    #: Derived from the item and the prediction's name: the same prediction has the same id.
    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    item_id: Mapped[str] = mapped_column(String(32), index=True)
    #: ``element`` or ``chunk``.
    item_kind: Mapped[str] = mapped_column(String(8))
    doc_id: Mapped[str] = mapped_column(String(64), index=True)
    #: What the prediction is called (the stage's ``name``: the model name by default).
    name: Mapped[str] = mapped_column(String(128), index=True)
    #: The classifier version that made it.
    model_id: Mapped[str] = mapped_column(String(64))
    label: Mapped[str] = mapped_column(String(256))
    probability: Mapped[float] = mapped_column(Float)
    #: Every label's probability.
    probabilities: Mapped[dict[str, float]] = mapped_column(JSON)
    marking_id: Mapped[int] = mapped_column(ForeignKey("markings.id"), index=True)
    run_id: Mapped[str] = mapped_column(String(32))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    #: HMAC-SHA-256 binding this row to its marking (see :mod:`garrison.store.bindings`).
    binding: Mapped[str | None] = mapped_column(String(64), nullable=True)


class DatasetVersionRow(Base):
    """An immutable dataset version: its manifest (the records, selection, pipelines), whose
    hash is its id. Who made it and when sit beside it, outside the hashed content."""

    __tablename__ = "dataset_versions"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    name: Mapped[str] = mapped_column(String(128), index=True)
    marking_id: Mapped[int] = mapped_column(ForeignKey("markings.id"), index=True)
    manifest: Mapped[dict[str, Any]] = mapped_column(JSON)
    record_count: Mapped[int] = mapped_column(Integer)
    #: SHA-256 of the records' snapshot (Parquet) in the encrypted blob store.
    snapshot: Mapped[str] = mapped_column(String(64))
    created_by: Mapped[str] = mapped_column(String(128))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    deleted_by: Mapped[str | None] = mapped_column(String(128), nullable=True)
    deleted_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    #: HMAC-SHA-256 binding this row to its marking(s) (see :mod:`garrison.store.bindings`).
    binding: Mapped[str | None] = mapped_column(String(64), nullable=True)


class ModelVersionRow(Base):
    """An immutable model version (embedder, classifier or generator): its manifest -- every
    weight file's hash, the base model, the training dataset versions, parameters and seeds --
    whose hash is its id. Who registered it and when sit beside it, outside the hashed content."""

    __tablename__ = "model_versions"
    __table_args__ = (UniqueConstraint("name", "version"),)

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    name: Mapped[str] = mapped_column(String(128), index=True)
    #: 1, 2, ... per name, in the order versions were registered.
    version: Mapped[int] = mapped_column(Integer)
    kind: Mapped[str] = mapped_column(String(16))
    marking_id: Mapped[int] = mapped_column(ForeignKey("markings.id"), index=True)
    manifest: Mapped[dict[str, Any]] = mapped_column(JSON)
    card: Mapped[dict[str, Any]] = mapped_column(JSON)
    #: The versions this one derives from (base model, training dataset versions).
    lineage: Mapped[list[dict[str, Any]]] = mapped_column(JSON)
    created_by: Mapped[str] = mapped_column(String(128))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    deleted_by: Mapped[str | None] = mapped_column(String(128), nullable=True)
    deleted_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    #: HMAC-SHA-256 binding this row to its marking (see :mod:`garrison.store.bindings`).
    binding: Mapped[str | None] = mapped_column(String(64), nullable=True)


class TokenRow(Base):
    """An API bearer token: only the SHA-256 of its secret is kept, never the secret itself."""

    __tablename__ = "api_tokens"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    user: Mapped[str] = mapped_column(String(128), index=True)
    secret_sha256: Mapped[str] = mapped_column(String(64))
    created_by: Mapped[str] = mapped_column(String(128))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    expires_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)


class EvalSuiteRow(Base):
    """An immutable evaluation suite version: its manifest (kind, holdout flag, source and the
    items' content ids, in order), whose hash is its id. The items' payloads are sealed in the
    encrypted blob store (``snapshot``); each item also has an :class:`EvalSuiteItemRow`, so
    reads are filtered and counted per item. Marked with the join of its items."""

    __tablename__ = "eval_suites"
    __table_args__ = (UniqueConstraint("name", "version"),)

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    name: Mapped[str] = mapped_column(String(128), index=True)
    #: 1, 2, ... per name, in the order versions were created.
    version: Mapped[int] = mapped_column(Integer)
    kind: Mapped[str] = mapped_column(String(16))
    holdout: Mapped[bool] = mapped_column(Boolean)
    marking_id: Mapped[int] = mapped_column(ForeignKey("markings.id"), index=True)
    manifest: Mapped[dict[str, Any]] = mapped_column(JSON)
    item_count: Mapped[int] = mapped_column(Integer)
    #: SHA-256 of the sealed item payloads in the encrypted blob store.
    snapshot: Mapped[str] = mapped_column(String(64))
    created_by: Mapped[str] = mapped_column(String(128))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    #: HMAC-SHA-256 binding this row to its marking (see :mod:`garrison.store.bindings`).
    binding: Mapped[str | None] = mapped_column(String(64), nullable=True)


class EvalSuiteItemRow(Base):
    """One item of a suite version: its content id, place, marking, cluster and slices (the
    payload stays sealed in the suite's snapshot). Marked with the join of its sources."""

    __tablename__ = "eval_suite_items"

    #: SHA-256 of the suite id and the item id: one row per item of a version.
    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    suite_id: Mapped[str] = mapped_column(ForeignKey("eval_suites.id"), index=True)
    #: The item's content id (SHA-256 of its kind, input, expected, marking and sources).
    item_id: Mapped[str] = mapped_column(String(64))
    position: Mapped[int] = mapped_column(Integer)
    marking_id: Mapped[int] = mapped_column(ForeignKey("markings.id"), index=True)
    #: What the item is not independent of: its source document's id, else the item id.
    cluster: Mapped[str] = mapped_column(String(64))
    slices: Mapped[dict[str, str]] = mapped_column(JSON)
    #: HMAC-SHA-256 binding this row to its marking (see :mod:`garrison.store.bindings`).
    binding: Mapped[str | None] = mapped_column(String(64), nullable=True)


class EvalRunRow(Base):
    """An evaluation run: a system under test on a suite's items (or on items it made itself,
    for red-team runs). Marked with the join of its items' and responses' markings so far."""

    __tablename__ = "eval_runs"

    #: Random (32 hex digits); runs are named by its first 12.
    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    #: The suite's kind (qa, classification, ...) or an external kind (redteam).
    kind: Mapped[str] = mapped_column(String(32))
    suite_id: Mapped[str | None] = mapped_column(String(64), nullable=True, index=True)
    suite_ref: Mapped[str | None] = mapped_column(String(160), nullable=True)
    #: The system under test: kind, ref, version id, parameters, subject, ceiling.
    system: Mapped[dict[str, Any]] = mapped_column(JSON)
    #: Scorer name -> version.
    scorers: Mapped[dict[str, Any]] = mapped_column(JSON)
    #: Runner settings: concurrency, retries, timeout, seed (and an external run's own).
    parameters: Mapped[dict[str, Any]] = mapped_column(JSON)
    #: running, interrupted, complete.
    status: Mapped[str] = mapped_column(String(16))
    marking_id: Mapped[int] = mapped_column(ForeignKey("markings.id"), index=True)
    item_count: Mapped[int] = mapped_column(Integer)
    created_by: Mapped[str] = mapped_column(String(128))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    #: HMAC-SHA-256 binding this row to its marking (see :mod:`garrison.store.bindings`).
    binding: Mapped[str | None] = mapped_column(String(64), nullable=True)


class EvalRunItemRow(Base):
    """One item's result in a run: its scores, and its transcript sealed (item, context,
    response). Marked with the item's marking joined with the response's."""

    __tablename__ = "eval_run_items"
    __table_args__ = (UniqueConstraint("run_id", "item_id"),)

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    run_id: Mapped[str] = mapped_column(String(32), index=True)
    item_id: Mapped[str] = mapped_column(String(512))
    position: Mapped[int] = mapped_column(Integer)
    #: scored, not-eligible, error.
    status: Mapped[str] = mapped_column(String(16))
    marking_id: Mapped[int] = mapped_column(ForeignKey("markings.id"), index=True)
    scores: Mapped[dict[str, Any]] = mapped_column(JSON)
    binary: Mapped[dict[str, Any]] = mapped_column(JSON)
    cluster: Mapped[str] = mapped_column(String(512))
    slices: Mapped[dict[str, Any]] = mapped_column(JSON)
    latency_ms: Mapped[float] = mapped_column(Float)
    tokens: Mapped[int | None] = mapped_column(Integer, nullable=True)
    error: Mapped[str | None] = mapped_column(Text, nullable=True)
    #: AES-256-GCM sealed JSON (base64), bound to the run, the item and the marking as
    #: associated data.
    transcript: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    #: HMAC-SHA-256 binding this row to its marking (see :mod:`garrison.store.bindings`).
    binding: Mapped[str | None] = mapped_column(String(64), nullable=True)


class EvalCacheRow(Base):
    """A system's response to one item, kept so a re-run or a resumed run never asks again.

    Keyed by a hash of (system version, parameters, acting subject and ceiling, item id and
    content); the response is sealed and marked with the response's marking."""

    __tablename__ = "eval_cache"

    key: Mapped[str] = mapped_column(String(64), primary_key=True)
    marking_id: Mapped[int] = mapped_column(ForeignKey("markings.id"), index=True)
    #: AES-256-GCM sealed JSON (base64: the response and its context), bound to the key.
    response: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    #: HMAC-SHA-256 binding this row to its marking (see :mod:`garrison.store.bindings`).
    binding: Mapped[str | None] = mapped_column(String(64), nullable=True)


class LabelProjectRow(Base):
    """A labeling project: one task type over the records of one dataset version.

    Marked with what its name, schema and instructions show (declared by the steward who made
    it); its tasks carry their records' markings, so an annotator may see a project and only
    the tasks they may read. The schema is versioned: ``schema_version`` counts its revisions
    and every label records the version it was made under.
    """

    __tablename__ = "label_projects"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    name: Mapped[str] = mapped_column(String(128), unique=True)
    dataset_version_id: Mapped[str] = mapped_column(String(64), index=True)
    #: The dataset version's snapshot (records are read from it, never copied).
    snapshot: Mapped[str] = mapped_column(String(64))
    task_type: Mapped[str] = mapped_column(String(16))
    schema: Mapped[dict[str, Any]] = mapped_column(JSON)
    schema_version: Mapped[int] = mapped_column(Integer)
    #: Overlap, gold and review rates, calibration and pause thresholds.
    settings: Mapped[dict[str, Any]] = mapped_column(JSON)
    marking_id: Mapped[int] = mapped_column(ForeignKey("markings.id"), index=True)
    created_by: Mapped[str] = mapped_column(String(128))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    #: HMAC-SHA-256 binding this row to its marking (see :mod:`garrison.store.bindings`).
    binding: Mapped[str | None] = mapped_column(String(64), nullable=True)


class LabelTaskRow(Base):
    """One record to label in a project (a reference: dataset version record id, no text).

    Marked with its record's marking (joined with a gold answer's, when a reviewer set one);
    ``claimed`` counts replicas handed out and not skipped or rejected, ``submitted`` those
    submitted, so overlap is enforced without reading the labels.
    """

    __tablename__ = "label_tasks"
    __table_args__ = (
        Index("ix_label_tasks_queue", "project_id", "kind", "open", "priority", "seq"),
        Index("ix_label_tasks_record", "project_id", "record_id"),
        Index("ix_label_tasks_page", "project_id", "seq"),
        # Covers the grouped counts (no table lookups).
        Index("ix_label_tasks_counts", "project_id", "marking_id", "kind", "submitted"),
    )

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    project_id: Mapped[str] = mapped_column(String(32))
    record_id: Mapped[str] = mapped_column(String(64))
    #: ``production``, ``gold`` (hidden in the stream) or ``calibration``.
    kind: Mapped[str] = mapped_column(String(12))
    marking_id: Mapped[int] = mapped_column(ForeignKey("markings.id"), index=True)
    #: The known answer of a gold or calibration task.
    gold: Mapped[Any] = mapped_column(JSON, nullable=True)
    #: A pre-label: ``{"value", "score", "source"}``, marked by ``suggestion_marking_id``.
    suggestion: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
    suggestion_marking_id: Mapped[int | None] = mapped_column(
        ForeignKey("markings.id"), nullable=True
    )
    #: Queue order: lower first (active learning sets it).
    priority: Mapped[float] = mapped_column(Float)
    seq: Mapped[int] = mapped_column(Integer)
    claimed: Mapped[int] = mapped_column(Integer)
    submitted: Mapped[int] = mapped_column(Integer)
    #: Whether the task still takes replicas (``claimed`` below the project's overlap).
    open: Mapped[bool] = mapped_column(Boolean)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    #: HMAC-SHA-256 binding this row to its marking(s) (see :mod:`garrison.store.bindings`).
    binding: Mapped[str | None] = mapped_column(String(64), nullable=True)


class LabelRow(Base):
    """One replica: an annotator's label on a task (or a reviewer's fix of one), never
    overwritten once submitted.

    Marked with the join of its record's marking and of what the annotator typed; the value,
    any skip or flag reason, the schema version and who and when are its lineage.
    """

    __tablename__ = "labels"
    __table_args__ = (
        Index("ix_labels_task_annotator", "task_id", "annotator"),
        Index("ix_labels_project_annotator", "project_id", "annotator", "status"),
        Index("ix_labels_project_review", "project_id", "review_state", "submitted_at"),
        # Covers the grouped counts (no table lookups).
        Index("ix_labels_counts", "project_id", "kind", "annotator", "status", "marking_id"),
    )

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    task_id: Mapped[str] = mapped_column(String(32))
    project_id: Mapped[str] = mapped_column(String(32))
    annotator: Mapped[str] = mapped_column(String(128))
    #: ``annotation`` or ``fix`` (a reviewer's correction of ``parent_id``).
    kind: Mapped[str] = mapped_column(String(12))
    #: ``draft``, ``submitted`` or ``skipped``.
    status: Mapped[str] = mapped_column(String(12))
    value: Mapped[Any] = mapped_column(JSON, nullable=True)
    reason: Mapped[str | None] = mapped_column(Text, nullable=True)
    flagged: Mapped[bool] = mapped_column(Boolean)
    parent_id: Mapped[str | None] = mapped_column(String(32), nullable=True)
    schema_version: Mapped[int] = mapped_column(Integer)
    marking_id: Mapped[int] = mapped_column(ForeignKey("markings.id"), index=True)
    #: ``pending`` (sampled for review), ``accepted``, ``fixed``, ``rejected`` or None.
    review_state: Mapped[str | None] = mapped_column(String(12), nullable=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    submitted_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    #: HMAC-SHA-256 binding this row to its marking (see :mod:`garrison.store.bindings`).
    binding: Mapped[str | None] = mapped_column(String(64), nullable=True)


class LabelReviewRow(Base):
    """A reviewer's verdict on one label: ``accept``, ``fix`` or ``reject`` with a reason."""

    __tablename__ = "label_reviews"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    label_id: Mapped[str] = mapped_column(String(32), index=True)
    project_id: Mapped[str] = mapped_column(String(32), index=True)
    reviewer: Mapped[str] = mapped_column(String(128))
    verdict: Mapped[str] = mapped_column(String(8))
    reason: Mapped[str | None] = mapped_column(Text, nullable=True)
    fix_label_id: Mapped[str | None] = mapped_column(String(32), nullable=True)
    marking_id: Mapped[int] = mapped_column(ForeignKey("markings.id"), index=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    #: HMAC-SHA-256 binding this row to its marking (see :mod:`garrison.store.bindings`).
    binding: Mapped[str | None] = mapped_column(String(64), nullable=True)


class LabelAnnotatorRow(Base):
    """An annotator's standing in a project: ``calibration``, ``active`` or ``paused``."""

    __tablename__ = "label_annotators"
    __table_args__ = (UniqueConstraint("project_id", "annotator"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    project_id: Mapped[str] = mapped_column(String(32))
    annotator: Mapped[str] = mapped_column(String(128))
    state: Mapped[str] = mapped_column(String(12))
    reason: Mapped[str | None] = mapped_column(Text, nullable=True)
    #: Queue position (priority, seq) of the last production task handed to them: the next
    #: search starts after it (a replica released behind it is found once the rest is done).
    cursor_priority: Mapped[float | None] = mapped_column(Float, nullable=True)
    cursor_seq: Mapped[int | None] = mapped_column(Integer, nullable=True)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
