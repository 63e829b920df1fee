"""Exporting a dataset version: data files, manifest, checksums, signature and card.

``export_version`` writes one directory, for the far side of an air gap::

    BANNER.txt        the version's marking banner
    manifest.json     the version's manifest, canonical JSON (its SHA-256 is the version id)
    data/...          the records (layout per format, below)
    README.md         the card in the Hugging Face layout: YAML metadata (dataset_info,
                      splits, configs, license, the marking), then the card text (``._hf``)
    card.md, card.html, card.json   the dataset card (``garrison.datasets.card``)
    prompt_template.yaml            chat exports made with ``--prompt-template``
    SHA256SUMS        ``<hex>  <path>`` for every file above, sorted by path
    manifest.sig      JSON: Ed25519 signatures of manifest.json and of SHA256SUMS, key id

Formats -- every record carries its own ``marking`` (the banner) and ``marking_detail`` (the
full structured marking, :meth:`Marking.to_dict`: what the banner leaves out of a classified
roll-up -- UCNI, LIMDIS, SBU, CUI, EXDIS under NODIS, HVSACO, the programs behind
``SAR-MULTIPLE PROGRAMS`` -- still travels with the record):

- ``parquet``: ``data/{split}.parquet``; columns ``id, text, marking, marking_detail, split``
  then the version's selected fields; lists and mappings are JSON-encoded strings.
- ``jsonl``: ``data/{split}.jsonl``; the same keys, nested values kept as JSON.
- ``hf``: ``hf/``, a Hugging Face ``datasets.DatasetDict`` saved with ``save_to_disk`` (one
  split each), columns as for Parquet; ``datasets.load_from_disk`` reads it offline.
- ``chat``: ``data/{split}.jsonl``, one conversation per record: a ``system`` message
  ``Classification: <record banner>``, a ``user`` prompt derived from the record (the section
  path when the version selected ``section_path``, else the document title when it selected
  ``title``, else ``Continue the document.``), and the record's text as the ``assistant`` reply;
  beside ``messages``: ``id``, ``marking``, ``marking_detail`` and ``split``.

``with_embeddings`` adds ``embedding`` (the chunk's stored vector, or null) and
``embedding_model`` to the parquet, jsonl and hf formats; a chat export's messages follow a
prompt template (:mod:`garrison.datasets._hf`).

Exports are all or nothing: everything is written into a hidden temporary directory beside
``out`` and renamed into place at the end; on any failure the temporary directory is removed.
The subject must be a steward allowed to *export* (not merely read) the version's marking and
every record's -- access that comes only through DISPLAY ONLY is never enough.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, get_args

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from garrison.core.errors import InvalidInput, MissingExtra, NotPermitted
from garrison.datasets._hf import PromptTemplate, SplitInfo, features_of, readme
from garrison.datasets._versions import (
    STALE_MARKING,
    Datasets,
    DatasetVersion,
    SnapshotRecord,
    _canonical,
    marking_detail,
)
from garrison.datasets.card import build_card
from garrison.datasets.signing import SIGNATURE_ALGORITHM
from garrison.datasets.signing import check_new_directory as _check_out
from garrison.datasets.signing import file_sha256 as _sha256
from garrison.datasets.signing import regular_files as _files
from garrison.security import crypto
from garrison.security.audit import AuditAction
from garrison.security.markings import dominates
from garrison.security.policy import Action, can_export
from garrison.store.embeddings import ChunkVector, chunk_vectors
from garrison.store.keys import dataset_signing_key
from garrison.store.session import Session

__all__ = [
    "FORMATS",
    "SIGNATURE_ALGORITHM",
    "ExportFormat",
    "ExportResult",
    "export_public_key",
    "export_version",
    "public_key_pem",
]

ExportFormat = Literal["parquet", "jsonl", "hf", "chat"]
FORMATS: tuple[str, ...] = get_args(ExportFormat)
#: Files of an export that SHA256SUMS does not (cannot) list.
UNSUMMED = ("SHA256SUMS", "manifest.sig")
_SPLIT_ORDER = ("train", "validation", "test")
_CORE_COLUMNS = ("id", "text", "marking", "marking_detail", "split")


@dataclass(frozen=True)
class ExportResult:
    """What an export wrote."""

    version_id: str
    path: Path
    format: str
    #: Every file of the export, relative to ``path``, sorted.
    files: list[str]
    records: int
    #: The version's marking banner.
    marking: str
    #: Fingerprint of the key that signed ``manifest.sig``.
    key_id: str

    def to_dict(self) -> dict[str, Any]:
        return {
            "version_id": self.version_id,
            "path": str(self.path),
            "format": self.format,
            "files": self.files,
            "records": self.records,
            "marking": self.marking,
            "key_id": self.key_id,
        }


def public_key_pem(where: Session | Path) -> tuple[str, bytes]:
    """The dataset signing key's id (fingerprint) and public half (PEM SubjectPublicKeyInfo).

    ``where`` is a session (audited as ``dataset.key-export``, to stdout) or a workspace root.
    Creates the signing key on first use. The key is public: any subject may read it.
    """
    session = where if isinstance(where, Session) else None
    workspace_root = where.workspace.root if isinstance(where, Session) else Path(where)
    public = dataset_signing_key(workspace_root).public_key()
    pem = public.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    key_id = crypto.fingerprint(public)
    if session is not None:
        session.audit(AuditAction.DATASET_KEY_EXPORT, object_id=key_id, details={"out": "stdout"})
    return key_id, pem


def export_public_key(where: Session | Path, out: Path) -> str:
    """Write the dataset signing key's public half to ``out`` (PEM SubjectPublicKeyInfo).

    ``where`` is a session (the write is audited as ``dataset.key-export``) or a workspace root.
    Creates the signing key on first use. Returns the key id (its fingerprint). ``out`` must
    not exist (InvalidInput otherwise): a trusted key is never silently replaced. The key is
    public, so any subject may export it.
    """
    session = where if isinstance(where, Session) else None
    workspace_root = where.workspace.root if isinstance(where, Session) else Path(where)
    key_id, pem = public_key_pem(workspace_root)
    try:
        with out.open("xb") as fh:
            fh.write(pem)
    except FileExistsError:
        raise InvalidInput(f"{out} already exists; choose another path.") from None
    if session is not None:
        session.audit(AuditAction.DATASET_KEY_EXPORT, object_id=key_id, details={"out": str(out)})
    return key_id


def export_version(
    session: Session,
    ref: str,
    fmt: ExportFormat,
    out: Path,
    *,
    with_embeddings: bool = False,
    prompt_template: PromptTemplate | None = None,
    license_id: str = "other",
) -> ExportResult:
    """Export dataset version ``ref`` as ``fmt`` into the new directory ``out``; audited.

    ``with_embeddings`` adds ``embedding`` and ``embedding_model`` columns (chunk versions, not
    the chat format): each chunk's vector as the pipeline stored it, null where it stored none
    (or none the subject may read); a vector marked above its record's marking stops the export.
    ``prompt_template`` (chat only) says how records become messages (:mod:`._hf`);
    ``license_id`` goes into README.md's metadata (``other``: governed by the marking).

    Raises, with nothing written: NotPermitted when the subject's roles do not allow exports or
    when it may not export the version's or a record's marking (including access only through
    DISPLAY ONLY); NotFound when the version does not exist or is not readable; InvalidInput for
    an unknown format or when ``out`` exists and is not an empty directory.
    """
    session.require(Action.DATASET_EXPORT, AuditAction.DATASET_EXPORT, object_id=ref[:128])
    datasets = Datasets(session)
    version = datasets.get(ref)
    banner = version.marking.banner()
    if version.stale:
        session.audit(
            AuditAction.DATASET_EXPORT,
            object_id=version.id,
            object_marking=banner,
            decision="deny",
            reason=STALE_MARKING,
        )
        raise NotPermitted(
            f"{version.name}@{version.id[:12]} is {STALE_MARKING}: a source's marking rose since "
            "it was made; a steward must re-create it before it can be exported."
        )
    records = datasets.records(version)
    _check_exportable(session, version, records)
    if fmt not in FORMATS:
        raise InvalidInput(f"Unknown export format {fmt!r}: use {', '.join(FORMATS)}.")
    if prompt_template is not None and fmt != "chat":
        raise InvalidInput("A prompt template applies to the chat format only.")
    vectors: dict[str, ChunkVector] | None = None
    if with_embeddings:
        vectors = _vectors(session, version, records, fmt)
    out = Path(out)
    _check_out(out)

    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.tmp-", dir=out.parent))
    try:
        key = dataset_signing_key(session.workspace.root)
        key_id = crypto.fingerprint(key.public_key())
        _write(
            tmp,
            version,
            records,
            fmt,
            key,
            key_id,
            _Options(vectors, prompt_template or PromptTemplate(), license_id),
        )
        files = sorted(_files(tmp))
        if out.exists():
            out.rmdir()  # empty, checked above; rmdir refuses anything else
        os.rename(tmp, out)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    try:
        session.audit(
            AuditAction.DATASET_EXPORT,
            object_id=version.id,
            object_marking=banner,
            details={"format": fmt, "out": str(out), "records": len(records), "key_id": key_id},
        )
    except BaseException:
        # Fail closed: an export the audit log does not know about must not remain.
        shutil.rmtree(out, ignore_errors=True)
        raise
    return ExportResult(version.id, out, fmt, files, len(records), banner, key_id)


# -- checks ------------------------------------------------------------------------------------


def _check_exportable(
    session: Session, version: DatasetVersion, records: list[SnapshotRecord]
) -> None:
    high = session.workspace.system_high
    # Judged on each record's full marking, never its banner (which drops attributes).
    markings = [version.marking, *dict.fromkeys(r.detail for r in records)]
    for marking in markings:
        banner = marking.banner()
        decision = can_export(session.subject, marking, system_high=high)
        if decision:
            continue
        session.audit(
            AuditAction.DATASET_EXPORT,
            object_id=version.id,
            object_marking=version.marking.banner(),
            decision="deny",
            reason=f"{banner}: {decision.reason}",
        )
        if session.can_read(marking):
            raise NotPermitted(
                f"{session.subject.name} may not export {version.name}: their access to some of "
                "its data comes only through DISPLAY ONLY, which allows viewing, never export."
            )
        raise NotPermitted(
            f"{session.subject.name} may not export {version.name}: it holds data above what "
            "they may read."
        )


def _vectors(
    session: Session, version: DatasetVersion, records: list[SnapshotRecord], fmt: str
) -> dict[str, ChunkVector]:
    """The stored vectors of a chunk version's records; fail closed on one marked above its
    record (the row's marking must cover everything in it)."""
    if fmt == "chat":
        raise InvalidInput("--with-embeddings applies to parquet, jsonl and hf exports.")
    if version.manifest.get("kind", version.manifest["selection"].get("kind")) not in (
        "chunks",
        "chunk",
    ) and any(r.kind != "chunk" for r in records):
        raise InvalidInput("--with-embeddings needs a dataset of chunks (--kind chunks).")
    vectors = chunk_vectors(session, (r.id for r in records))
    for record in records:
        found = vectors.get(record.id)
        if found is not None and not dominates(record.detail, found.marking):
            raise NotPermitted(
                f"Record {record.id}'s stored embedding is marked {found.marking.banner()}, above "
                f"the record's {record.marking}; export without --with-embeddings."
            )
    return vectors


# -- writing -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Options:
    vectors: dict[str, ChunkVector] | None
    template: PromptTemplate
    license_id: str


def _write(
    tmp: Path,
    version: DatasetVersion,
    records: list[SnapshotRecord],
    fmt: ExportFormat,
    key: Ed25519PrivateKey,
    key_id: str,
    options: _Options | None = None,
) -> None:
    options = options or _Options(None, PromptTemplate(), "other")
    banner = version.marking.banner()
    (tmp / "BANNER.txt").write_text(banner + "\n", encoding="utf-8")
    manifest = _canonical(version.manifest)
    (tmp / "manifest.json").write_bytes(manifest)
    fields = [str(f) for f in version.manifest["selection"].get("fields", [])]
    by_split = _by_split(records)
    vectors = options.vectors

    def rows(split_records: list[SnapshotRecord], *, flat: bool) -> list[dict[str, Any]]:
        out = [_row(r, fields, flat=flat) for r in split_records]
        if vectors is not None:
            for row, record in zip(out, split_records, strict=True):
                found = vectors.get(record.id)
                row["embedding"] = found.vector if found is not None else None
                row["embedding_model"] = found.model if found is not None else None
        return out

    if fmt == "parquet":
        tables = _write_parquet(tmp / "data", {s: rows(rs, flat=True) for s, rs in by_split})
        split_files = {s: [f"data/{s}.parquet"] for s, _ in by_split}
    elif fmt == "jsonl":
        rows_by_split = {s: rows(rs, flat=False) for s, rs in by_split}
        _write_jsonl(tmp / "data", rows_by_split)
        tables = _tables(rows_by_split)
        split_files = {s: [f"data/{s}.jsonl"] for s, _ in by_split}
    elif fmt == "chat":
        chats = {s: [_chat(r, options.template, fields) for r in rs] for s, rs in by_split}
        _write_jsonl(tmp / "data", chats)
        tables = _tables(chats)
        split_files = {s: [f"data/{s}.jsonl"] for s, _ in by_split}
        if options.template.source is not None:
            (tmp / "prompt_template.yaml").write_text(options.template.source, encoding="utf-8")
    else:
        tables = _write_hf(tmp / "hf", {s: rows(rs, flat=True) for s, rs in by_split})
        split_files = {
            s: sorted(str(p.relative_to(tmp)) for p in (tmp / "hf" / s).glob("*.arrow"))
            for s, _ in by_split
        }

    card_names = ["README.md", "card.html", "card.json", "card.md"]
    files = sorted([*_files(tmp), *card_names, *UNSUMMED])
    card = build_card(
        version,
        records,
        export={"format": fmt, "files": files, "signed": True, "key_id": key_id},
    )
    notes: list[str] = []
    if vectors is not None:
        notes.append(
            f"{sum(1 for r in records if r.id in vectors)} of {len(records)} records have a "
            "stored embedding (`embedding`, with `embedding_model`); the others have null."
        )
    if options.template.source is not None:
        notes.append("Chat messages follow `prompt_template.yaml`.")
    splits = [
        SplitInfo(s, split_files[s], len(rs), int(tables[s].nbytes) if s in tables else 0)
        for s, rs in by_split
    ]
    schema = _schema(tables)
    (tmp / "README.md").write_text(
        readme(
            name=version.name,
            version_id=version.id,
            banner=banner,
            kind=str(version.manifest["selection"].get("kind", "records")),
            fmt=fmt,
            splits=splits,
            features=features_of(schema) if schema is not None else None,
            card_markdown=card.markdown,
            license_id=options.license_id,
            notes=notes,
        ),
        encoding="utf-8",
    )
    (tmp / "card.md").write_text(card.markdown, encoding="utf-8")
    (tmp / "card.html").write_text(card.html, encoding="utf-8")
    (tmp / "card.json").write_bytes(
        json.dumps(card.data, sort_keys=True, indent=2, ensure_ascii=False).encode() + b"\n"
    )

    sums = "".join(f"{_sha256(tmp / name)}  {name}\n" for name in sorted(_files(tmp)))
    (tmp / "SHA256SUMS").write_text(sums, encoding="utf-8")
    signature = {
        "algorithm": SIGNATURE_ALGORITHM,
        "key_id": key_id,
        "version_id": version.id,
        "signature": crypto.sign(key, manifest).hex(),
        # The manifest alone does not cover the card or the data files' bytes: SHA256SUMS does.
        "sha256sums_signature": crypto.sign(key, sums.encode("utf-8")).hex(),
    }
    (tmp / "manifest.sig").write_text(json.dumps(signature, sort_keys=True, indent=2) + "\n")


def _by_split(records: list[SnapshotRecord]) -> list[tuple[str, list[SnapshotRecord]]]:
    groups: dict[str, list[SnapshotRecord]] = {}
    for record in records:
        groups.setdefault(record.split, []).append(record)

    def order(name: str) -> tuple[int, str]:
        rank = _SPLIT_ORDER.index(name) if name in _SPLIT_ORDER else len(_SPLIT_ORDER)
        return rank, name

    return [(name, groups[name]) for name in sorted(groups, key=order)]


def _row(record: SnapshotRecord, fields: list[str], *, flat: bool) -> dict[str, Any]:
    """A record as a row; ``flat`` JSON-encodes lists and mappings (columnar formats)."""
    row: dict[str, Any] = {
        "id": record.id,
        "text": record.text,
        "marking": record.marking,
        "marking_detail": _detail(record, flat=flat),
        "split": record.split,
    }
    for name in fields:
        if name in _CORE_COLUMNS:
            continue
        value = record.fields.get(name)
        if flat and isinstance(value, list | dict | tuple):
            value = json.dumps(value, sort_keys=True, ensure_ascii=False)
        row[name] = value
    return row


def _chat(
    record: SnapshotRecord, template: PromptTemplate | None = None, fields: list[str] | None = None
) -> dict[str, Any]:
    section = record.fields.get("section_path")
    title = record.fields.get("title")
    if isinstance(section, list) and section:
        prompt = f"Write the section {' > '.join(str(s) for s in section)}."
    elif isinstance(title, str) and title:
        prompt = f"Write a passage of the document {title}."
    else:
        prompt = "Continue the document."
    # Only the fields the version selected (and the record's own id, text, marking, split).
    values: dict[str, Any] = {name: record.fields.get(name) for name in fields or ()}
    values.update(
        {
            "id": record.id,
            "text": record.text,
            "marking": record.marking,
            "split": record.split,
            "prompt": prompt,
            "title": title if isinstance(title, str) and "title" in (fields or ()) else "",
            "section": " > ".join(str(s) for s in section)
            if isinstance(section, list) and "section_path" in (fields or ())
            else "",
        }
    )
    return {
        "id": record.id,
        "marking": record.marking,
        "marking_detail": _detail(record, flat=False),
        "split": record.split,
        "messages": (template or PromptTemplate()).render(values),
    }


def _detail(record: SnapshotRecord, *, flat: bool) -> Any:
    detail = marking_detail(record.detail)
    return json.dumps(detail, sort_keys=True, ensure_ascii=False) if flat else detail


def _write_jsonl(folder: Path, rows_by_split: dict[str, list[dict[str, Any]]]) -> None:
    folder.mkdir()
    for split, rows in rows_by_split.items():
        with (folder / f"{split}.jsonl").open("w", encoding="utf-8") as fh:
            for row in rows:
                fh.write(json.dumps(row, sort_keys=True, ensure_ascii=False) + "\n")


def _tables(rows_by_split: dict[str, list[dict[str, Any]]]) -> dict[str, Any]:
    """Each split's rows as an Arrow table (for README.md's features and sizes); a split whose
    values Arrow cannot type alike is left out (its size then reads 0)."""
    import pyarrow as pa  # type: ignore[import-untyped]

    out: dict[str, Any] = {}
    for split, rows in rows_by_split.items():
        try:
            out[split] = pa.Table.from_pylist(rows)
        except (pa.ArrowInvalid, pa.ArrowTypeError, TypeError):
            continue
    return out


def _schema(tables: dict[str, Any]) -> Any:
    """One schema over every split (None when the splits' types cannot be unified)."""
    import pyarrow as pa

    schemas = [t.schema for t in tables.values()]
    if not schemas:
        return None
    try:
        return pa.unify_schemas(schemas, promote_options="permissive")
    except (pa.ArrowInvalid, pa.ArrowTypeError):
        return None


def _write_parquet(folder: Path, rows_by_split: dict[str, list[dict[str, Any]]]) -> dict[str, Any]:
    import pyarrow.parquet as pq  # type: ignore[import-untyped]

    folder.mkdir()
    tables = _tables(rows_by_split)
    for split in rows_by_split:
        if split not in tables:
            raise InvalidInput(f"The {split} split's values cannot be written as Parquet columns.")
        pq.write_table(tables[split], folder / f"{split}.parquet")
    return tables


def _write_hf(folder: Path, rows_by_split: dict[str, list[dict[str, Any]]]) -> dict[str, Any]:
    # Never let the library reach for the Hugging Face Hub: this host is air-gapped.
    os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    try:
        import datasets  # type: ignore[import-untyped]
    except ImportError as exc:
        raise MissingExtra("hf", "datasets") from exc
    bars = datasets.is_progress_bar_enabled()
    datasets.disable_progress_bars()  # progress bars would write to the caller's stderr
    try:
        data = datasets.DatasetDict(
            {split: datasets.Dataset.from_list(rows) for split, rows in rows_by_split.items()}
        )
        data.save_to_disk(str(folder))
    finally:
        if bars:
            datasets.enable_progress_bars()
    return {split: data[split].data.table for split in rows_by_split}
