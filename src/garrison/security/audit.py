"""Audit records: typed events, their canonical bytes, and signed checkpoints; pure, no I/O.

An :class:`AuditEvent` is one security-relevant action. Its :meth:`~AuditEvent.canonical_bytes`
(JSON, sorted keys, no whitespace, UTF-8) is the entry hashed into the RFC 6962 Merkle tree
(:mod:`garrison.security.merkle`) and signed per event. A :class:`Checkpoint` is a signed tree
head: anyone holding the public key can check that a log of ``size`` events has root ``root``.
Persistence lives in :mod:`garrison.store.audit_log`.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from typing import Any, Literal

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from pydantic import BaseModel, ConfigDict, Field, JsonValue, field_serializer, field_validator

from garrison.core.clock import utc_now
from garrison.core.errors import InvalidInput
from garrison.security import crypto, merkle

__all__ = [
    "CHECKPOINT_DOMAIN",
    "EVENT_DOMAIN",
    "AuditAction",
    "AuditEvent",
    "Checkpoint",
    "Decision",
    "canonical_json",
    "event_signature_message",
    "format_time",
]

Decision = Literal["allow", "deny", "error"]


class AuditAction(StrEnum):
    """Every action the audit log records, one member per action name.

    A member's value is the exact name stored in ``AuditEvent.action`` (a dotted
    ``area.verb``, or one word for ``login``, ``search`` and ``integrity``), so logs written
    before this enum existed verify and read the same. Call sites pass members, never literals;
    a new kind of event is a new member here.
    """

    ASK = "ask"
    AUDIT_CHECKPOINT = "audit.checkpoint"
    AUDIT_READ = "audit.read"
    AUDIT_VERIFY = "audit.verify"
    CATALOG_MIGRATE = "catalog.migrate"
    CHUNKS_LIST = "chunks.list"
    CONVERSATION_DELETE = "conversation.delete"
    CONVERSATION_LIST = "conversation.list"
    CONVERSATION_READ = "conversation.read"
    DATASET_CREATE = "dataset.create"
    DATASET_DELETE = "dataset.delete"
    DATASET_EXPORT = "dataset.export"
    DATASET_KEY_EXPORT = "dataset.key-export"
    DATASET_LIST = "dataset.list"
    DATASET_READ = "dataset.read"
    DEDUP_REPORT = "dedup.report"
    DOCTOR_RUN = "doctor.run"
    DOC_DAMAGED = "doc.damaged"
    DOC_ORIGINAL = "doc.original"
    DOC_READ = "doc.read"
    DOCS_LIST = "docs.list"
    DOCUMENT_REMOVE = "document.remove"
    EVAL_COMPARE = "eval.compare"
    EVAL_RUN = "eval.run"
    EVAL_RUN_READ = "eval.run-read"
    EVAL_RUN_REPORT = "eval.run-report"
    EVAL_RUNS_LIST = "eval.runs-list"
    EVAL_SUITE_CREATE = "eval.suite-create"
    EVAL_SUITE_EXPORT = "eval.suite-export"
    EVAL_SUITE_LIST = "eval.suite-list"
    EVAL_SUITE_READ = "eval.suite-read"
    FINDING_RESOLVE = "finding.resolve"
    FINDINGS_LIST = "findings.list"
    INGEST_DOCUMENT = "ingest.document"
    INGEST_REMARK = "ingest.remark"
    INGEST_REPARSE = "ingest.reparse"
    INGEST_SPILL = "ingest.spill"
    INGEST_START = "ingest.start"
    INGEST_SUPERSEDE = "ingest.supersede"
    INTEGRITY = "integrity"
    JOB_FINISH = "job.finish"
    JOB_START = "job.start"
    JOBS_LIST = "jobs.list"
    JOBS_SHOW = "jobs.show"
    LABEL_EXPORT = "label.export"
    LABEL_FLAG = "label.flag"
    LABEL_IMPORT = "label.import"
    LABEL_PAUSE = "label.pause"
    LABEL_PROJECT_CREATE = "label.project-create"
    LABEL_PROJECT_LIST = "label.project-list"
    LABEL_PROJECT_READ = "label.project-read"
    LABEL_REVIEW = "label.review"
    LABEL_SKIP = "label.skip"
    LABEL_SUBMIT = "label.submit"
    LABEL_TASK = "label.task"
    LINEAGE_READ = "lineage.read"
    LOGIN = "login"
    MARKING_DOWNGRADE = "marking.downgrade"
    MODEL_EXPORT = "model.export"
    MODEL_IMPORT = "model.import"
    MODEL_LIST = "model.list"
    MODEL_OPTIMIZE = "model.optimize"
    MODEL_PREDICT = "model.predict"
    MODEL_READ = "model.read"
    MODEL_REGISTER = "model.register"
    MODEL_REMOVE = "model.remove"
    MODEL_TRAIN = "model.train"
    MODEL_USE = "model.use"
    PIPELINE_PLAN = "pipeline.plan"
    PIPELINE_REMOVE = "pipeline.remove"
    PIPELINE_RUN = "pipeline.run"
    PIPELINE_WRITE = "pipeline.write"
    REDTEAM_REPORT = "redteam.report"
    REDTEAM_RUN = "redteam.run"
    REDTEAM_SETUP = "redteam.setup"
    REGISTRY_ADD = "registry.add"
    COMPILATION_ADD = "registry.compilation-add"
    COMPILATION_REMOVE = "registry.compilation-remove"
    REGISTRY_LIST = "registry.list"
    REGISTRY_REMOVE = "registry.remove"
    SEARCH = "search"
    SESSION_OPEN = "session.open"
    STORAGE_ENCRYPTION = "workspace.storage-encryption"
    TOKEN_CREATE = "token.create"  # noqa: S105 - an action name, not a secret
    TOKEN_LIST = "token.list"  # noqa: S105
    TOKEN_REVOKE = "token.revoke"  # noqa: S105
    UNENCRYPTED_VOLUME_ALLOWED = "workspace.unencrypted-volume"
    USER_ADD = "user.add"
    USER_LIST = "user.list"
    USER_SHOW = "user.show"
    USER_UPDATE = "user.update"
    WEB_CSRF = "web.csrf"
    WEB_LOGIN = "web.login"
    WEB_LOGOUT = "web.logout"
    WEB_SESSION_END = "web.session-end"
    WORKSPACE_INIT = "workspace.init"


#: Prefix of every checkpoint signature message, so a checkpoint signature can never be replayed
#: as any other kind of Garrison signature (and vice versa).
CHECKPOINT_DOMAIN = b"garrison-audit-checkpoint-v1\n"
#: Prefix of every per-event signature message (the signed payload is this + the leaf hash).
EVENT_DOMAIN = b"garrison-audit-event-v1\n"


def canonical_json(value: Any) -> bytes:
    """Serialize JSON-able data canonically: sorted keys, no whitespace, UTF-8, no NaN."""
    return json.dumps(
        value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
    ).encode("utf-8")


def format_time(value: datetime) -> str:
    """Format an aware datetime as UTC ISO-8601 with microseconds and ``Z``.

    A fixed width keeps serialization canonical: parsing the text and formatting again gives
    the same bytes, which the Merkle leaf hashes depend on.
    """
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _utc(value: datetime) -> datetime:
    if value.tzinfo is None or value.utcoffset() is None:
        # A naive time is ambiguous; an audit record must never guess its timezone.
        raise ValueError("audit times must be timezone-aware")
    return value.astimezone(UTC)


class AuditEvent(BaseModel):
    """One security-relevant action, as recorded in the audit log (format 1).

    ``seq`` is 1-based and gap-free; ``actor`` is a user name or ``"system"``; ``action`` is the
    value of an :class:`AuditAction` (``"workspace.init"``, ``"user.add"``...), kept a plain
    string so a log reads and verifies whatever names it holds;
    ``object_marking`` is the canonical banner of the object acted on; ``decision`` says whether
    the action was allowed, denied, or failed, with ``reason`` saying why.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    seq: int = Field(ge=1)
    time: datetime
    actor: str = Field(min_length=1)
    action: str = Field(min_length=1)
    object_id: str | None = None
    object_marking: str | None = None
    decision: Decision = "allow"
    reason: str | None = None
    details: dict[str, JsonValue] = Field(default_factory=dict)
    format: int = 1

    @field_validator("time")
    @classmethod
    def _time_is_utc(cls, value: datetime) -> datetime:
        return _utc(value)

    @field_serializer("time")
    def _serialize_time(self, value: datetime) -> str:
        return format_time(value)

    def canonical_bytes(self) -> bytes:
        """Return the canonical JSON of this event: the Merkle leaf entry."""
        return canonical_json(self.model_dump(mode="json"))

    def leaf_hash(self) -> bytes:
        """Return the RFC 6962 leaf hash of :meth:`canonical_bytes`."""
        return merkle.leaf_hash(self.canonical_bytes())


def event_signature_message(leaf: bytes) -> bytes:
    """Return the bytes signed for one event: the event domain prefix and its leaf hash."""
    return EVENT_DOMAIN + leaf


class Checkpoint(BaseModel):
    """A signed tree head: the log had ``size`` events with Merkle root ``root`` at ``time``.

    ``key_id`` is the signer's public key fingerprint and ``signature`` the hex Ed25519
    signature over :meth:`message`. Create one with :meth:`sign`, check it with :meth:`verify`.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    size: int = Field(ge=0)
    root: str = Field(pattern=r"^[0-9a-f]{64}$")
    time: datetime
    key_id: str = Field(pattern=r"^[0-9a-f]{64}$")
    signature: str = Field(pattern=r"^[0-9a-f]{128}$")
    format: int = 1

    @field_validator("time")
    @classmethod
    def _time_is_utc(cls, value: datetime) -> datetime:
        return _utc(value)

    @field_serializer("time")
    def _serialize_time(self, value: datetime) -> str:
        return format_time(value)

    @staticmethod
    def signing_message(size: int, root: str, time: datetime, key_id: str) -> bytes:
        """Return the exact bytes a checkpoint signature covers (domain prefix + fields)."""
        return CHECKPOINT_DOMAIN + f"{size}\n{root}\n{format_time(time)}\n{key_id}\n".encode()

    def message(self) -> bytes:
        """Return the bytes this checkpoint's signature covers."""
        return self.signing_message(self.size, self.root, self.time, self.key_id)

    @property
    def root_bytes(self) -> bytes:
        """The Merkle root as 32 bytes."""
        return bytes.fromhex(self.root)

    @classmethod
    def sign(
        cls,
        key: Ed25519PrivateKey,
        *,
        size: int,
        root: bytes,
        time: datetime | None = None,
    ) -> Checkpoint:
        """Sign the tree head (``size``, ``root``) with ``key``; ``time`` defaults to now."""
        when = _utc(time if time is not None else utc_now())
        key_id = crypto.fingerprint(key.public_key())
        root_hex = root.hex()
        signature = crypto.sign(key, cls.signing_message(size, root_hex, when, key_id))
        return cls(size=size, root=root_hex, time=when, key_id=key_id, signature=signature.hex())

    def verify(self, public_key: Ed25519PublicKey) -> bool:
        """Return whether this checkpoint was signed by ``public_key`` and is unaltered."""
        if self.key_id != crypto.fingerprint(public_key):
            return False
        return crypto.verify_signature(public_key, self.message(), bytes.fromhex(self.signature))

    def to_json(self) -> bytes:
        """Return the checkpoint's canonical JSON (one line, no trailing newline)."""
        return canonical_json(self.model_dump(mode="json"))

    @classmethod
    def from_json(cls, data: bytes | str) -> Checkpoint:
        """Parse a checkpoint from JSON; raises pydantic ``ValidationError`` when malformed."""
        return cls.model_validate_json(data)

    @classmethod
    def from_file(cls, path: Path) -> Checkpoint:
        """Read a checkpoint exported by ``AuditLog.export_checkpoint`` (``--against FILE``).

        The one file read in this module: a kept checkpoint is handed to verification as a
        path, and reading it beside its parser keeps every caller's error the same. Raises
        ``InvalidInput`` when the file cannot be read or does not hold a checkpoint; the
        signature is checked by ``AuditLog.verify(..., against=...)``, not here.
        """
        path = Path(path)
        try:
            data = path.read_bytes()
        except OSError as exc:
            reason = (exc.strerror or type(exc).__name__).lower()
            raise InvalidInput(f"The checkpoint file {path} could not be read ({reason}).") from exc
        try:
            return cls.from_json(data)
        except ValueError as exc:
            raise InvalidInput(f"The file {path} does not hold a valid audit checkpoint.") from exc
