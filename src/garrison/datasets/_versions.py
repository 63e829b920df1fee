"""Dataset versions: immutable, content-addressed snapshots of selected records.

``create`` selects the records, assigns splits, writes a manifest -- every record's id, content
hash, split and marking, the selection, the split parameters and the pipeline stages that made
the records -- and takes the SHA-256 of the manifest as the version id, so the same data and
selection always give the same id. The records themselves (text, marking, fields) are frozen in
a Parquet snapshot kept in the workspace's encrypted blob store; exports read the snapshot, so
a later pipeline run never changes a version. Who made it and when are recorded beside the
manifest, not in it.

A record's marking is frozen twice: its banner (what people read) and its structured form
(``marking_detail``, :meth:`Marking.to_dict`, as the catalog interns the markings of chunks and
elements). The banner alone does not round-trip: a classified roll-up keeps UCNI, LIMDIS, SBU,
CUI, EXDIS under NODIS, HVSACO beside a program and the programs behind
``SAR-MULTIPLE PROGRAMS`` in its attributes only. Every access check and every export reads the
structured form; a snapshot made before it was stored falls back to the banner, and such a
version turns ``stale-marking`` wherever the banner reads lower than the records' sources.
"""

from __future__ import annotations

import builtins
import hashlib
import io
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from garrison.core.errors import CheckFailed, InvalidInput, MarkingError, NotFound
from garrison.datasets._records import (
    DatasetRecord,
    Selection,
    compiled_marking,
    record_marking,
    select_records,
)
from garrison.datasets._splits import assign_splits
from garrison.security.audit import AuditAction
from garrison.security.markings import Marking, dominates, join
from garrison.security.policy import Action
from garrison.store.compilation import workspace_rules
from garrison.store.datasets import (
    add_version,
    current_markings,
    delete_version,
    version_marking,
    version_rows,
)
from garrison.store.models import DatasetVersionRow
from garrison.store.session import Session

__all__ = ["STALE_MARKING", "DatasetVersion", "Datasets", "SnapshotRecord"]

MANIFEST_FORMAT = 1
#: A full version id: the SHA-256 of its manifest.
_FULL_ID = re.compile(r"[0-9a-f]{64}")
#: What ``status`` says of a version whose sources' markings rose since it was made.
STALE_MARKING = "stale-marking"


def _canonical(value: Any) -> bytes:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def marking_detail(marking: Marking) -> dict[str, Any]:
    """The structured form a record's marking is frozen in (JSON-safe, round-trips exactly)."""
    detail: dict[str, Any] = json.loads(json.dumps(marking.to_dict(), sort_keys=True))
    return detail


@dataclass(frozen=True)
class SnapshotRecord:
    """A record as frozen in a version.

    ``marking`` is the banner, for people; ``detail`` the full marking, for every decision
    (the banner drops attributes a classified roll-up keeps).
    """

    id: str
    kind: str
    doc_id: str
    text: str
    marking: str
    split: str
    fields: dict[str, Any]
    lineage: list[dict[str, Any]]
    detail: Marking


@dataclass(frozen=True)
class DatasetVersion:
    """A version as its subject may see it."""

    id: str
    name: str
    marking: Marking
    manifest: dict[str, Any]
    record_count: int
    snapshot: str
    created_by: str
    created_at: str
    #: A source's marking rose since the version was made: refused for export until a steward
    #: re-creates it.
    stale: bool = False

    @property
    def status(self) -> str:
        return STALE_MARKING if self.stale else "current"

    def to_dict(self, *, records: bool = False) -> dict[str, Any]:
        splits: dict[str, int] = {}
        for record in self.manifest["records"]:
            splits[record["split"]] = splits.get(record["split"], 0) + 1
        data: dict[str, Any] = {
            "id": self.id,
            "name": self.name,
            "marking": self.marking.banner(),
            "status": self.status,
            "records": self.record_count,
            "splits": splits,
            "selection": self.manifest["selection"],
            "split": self.manifest["split"],
            "pipelines": self.manifest["pipelines"],
            "created_by": self.created_by,
            "created_at": self.created_at,
        }
        if records:
            data["manifest"] = self.manifest
        return data


def _pipelines(records: list[DatasetRecord]) -> list[dict[str, Any]]:
    seen: dict[tuple[str, str, str], None] = {}
    for record in records:
        for step in record.lineage:
            key = (
                str(step.get("stage")),
                str(step.get("version", "")),
                str(step.get("params_hash", "")),
            )
            seen[key] = None
    return [{"stage": s, "version": v, "params_hash": p} for s, v, p in sorted(seen)]


def _snapshot(records: list[SnapshotRecord]) -> bytes:
    import pyarrow as pa  # type: ignore[import-untyped]
    import pyarrow.parquet as pq  # type: ignore[import-untyped]

    table = pa.Table.from_pylist(
        [
            {
                "id": r.id,
                "kind": r.kind,
                "doc_id": r.doc_id,
                "text": r.text,
                "marking": r.marking,
                "marking_detail": json.dumps(marking_detail(r.detail), sort_keys=True),
                "split": r.split,
                "fields": json.dumps(r.fields, sort_keys=True, default=str),
                "lineage": json.dumps(r.lineage, sort_keys=True, default=str),
            }
            for r in records
        ]
    )
    sink = io.BytesIO()
    pq.write_table(table, sink)
    return sink.getvalue()


class Datasets:
    """Dataset versions through a session: reads filtered by marking, changes audited."""

    def __init__(self, session: Session) -> None:
        self.session = session
        self._stale_cache: dict[str, bool] = {}

    # -- reading -------------------------------------------------------------------------------

    def _row(self, ref: str) -> DatasetVersionRow:
        """``NAME`` (its latest version), ``NAME@VERSION-PREFIX`` or a full version id.

        A prefix matching more than one version the subject may read is an error; one matching
        none answers like a version that does not exist.
        """
        name, at, version = ref.partition("@")
        if at:
            if not name or not version:
                raise InvalidInput(f"A dataset reference is NAME, NAME@VERSION or an id: {ref!r}.")
            rows = version_rows(self.session, name=name, id_prefix=version.lower())
            if len({r.id for r in rows}) > 1:
                raise InvalidInput(
                    f"The version prefix {version!r} of {name} is ambiguous; give more of it."
                )
        else:
            rows = version_rows(self.session, name=ref)
            if not rows and _FULL_ID.fullmatch(ref.lower()):
                full = ref.lower()
                rows = [r for r in version_rows(self.session, id_prefix=full) if r.id == full]
        if not rows:
            self.session.audit(
                AuditAction.DATASET_READ,
                object_id=ref[:128],
                decision="deny",
                reason="no such version or not readable",
            )
            raise NotFound(f"No dataset version {ref}.")
        return rows[0]

    def _version(self, row: DatasetVersionRow) -> DatasetVersion:
        marking = version_marking(self.session, row)
        return DatasetVersion(
            row.id,
            row.name,
            marking,
            row.manifest,
            row.record_count,
            row.snapshot,
            row.created_by,
            row.created_at.isoformat(),
            stale=self._stale(row.id, row.snapshot, marking),
        )

    def _stale(self, version_id: str, snapshot: str, marking: Marking) -> bool:
        """Whether a record of the version shows, today, more than it was marked with.

        Computed from the catalog at read time, so it holds whatever raised a marking (a new
        location, a re-ingest, a re-parse). A record whose chunk or element is gone is judged
        by its document's marking; one whose document is gone, or whose source fails its integrity
        check, is stale (fail closed).
        """
        cached = self._stale_cache.get(version_id)
        if cached is not None:
            return cached
        records = self._snapshot(snapshot)
        chunk_ids = [r.id for r in records if r.kind == "chunk"]
        element_ids = [r.id for r in records if r.kind == "element"]
        now = current_markings(
            self.session,
            doc_ids=[r.doc_id for r in records],
            chunk_ids=chunk_ids,
            element_ids=element_ids,
        )
        stale = False
        # A rule added since the version was made makes a record that combines its parts stale.
        rules = workspace_rules(self.session)
        for record in records:
            document = now.documents.get(record.doc_id)
            if document is None or record.id in now.failed:
                stale = True
                break
            item, headings = now.items.get(record.id, (document, None))
            if record.kind == "document":
                item = document
            try:
                current = record_marking(record.kind, item, document, headings, record.fields)
                current = compiled_marking(
                    rules, record.text, record.fields, record.fields, current
                )
            except (KeyError, MarkingError):
                stale = True
                break
            if not dominates(record.detail, current) or not dominates(marking, current):
                stale = True
                break
        self._stale_cache[version_id] = stale
        return stale

    def get(self, ref: str) -> DatasetVersion:
        """One readable version; NotFound otherwise (same answer as for a missing one)."""
        version = self._version(self._row(ref))
        self.session.audit(
            AuditAction.DATASET_READ, object_id=version.id, object_marking=version.marking.banner()
        )
        return version

    def list(self) -> builtins.list[DatasetVersion]:
        """Every readable, undeleted version, newest first."""
        versions = [self._version(r) for r in version_rows(self.session)]
        self.session.audit(AuditAction.DATASET_LIST, details={"count": len(versions)})
        return versions

    def records(self, version: DatasetVersion) -> builtins.list[SnapshotRecord]:
        """The frozen records of a version (the caller already holds the version)."""
        return self._snapshot(version.snapshot)

    def snapshot_records(self, snapshot: str) -> builtins.list[SnapshotRecord]:
        """The frozen records of the snapshot blob ``snapshot`` (a version's ``snapshot``).

        No check here: a caller that holds a snapshot hash shows each record only to readers
        of its marking (labeling hands out one record at a time).
        """
        return self._snapshot(snapshot)

    def _snapshot(self, snapshot: str) -> builtins.list[SnapshotRecord]:
        import pyarrow.parquet as pq

        table = pq.read_table(io.BytesIO(self.session.workspace.blobs.get(snapshot)))
        markings: dict[tuple[str, str | None], Marking] = {}
        out = []
        for r in table.to_pylist():
            key = (r["marking"], r.get("marking_detail"))
            detail = markings.get(key)
            if detail is None:
                detail = markings[key] = self._frozen_marking(*key)
            out.append(
                SnapshotRecord(
                    r["id"],
                    r["kind"],
                    r["doc_id"],
                    r["text"],
                    r["marking"],
                    r["split"],
                    json.loads(r["fields"]),
                    json.loads(r["lineage"]),
                    detail,
                )
            )
        return out

    def _frozen_marking(self, banner: str, detail: str | None) -> Marking:
        """A record's full marking: its stored structured form, or (a snapshot made before the
        form was stored) its banner. A form whose banner is not the stored one fails closed."""
        if detail is None:
            return self.session.parse_marking(banner)
        marking = Marking.from_dict(json.loads(detail), registry=self.session.workspace.registry)
        if marking.banner() != banner:
            raise CheckFailed(
                f"A dataset record's stored marking ({marking.banner()}) does not match its "
                f"banner ({banner}); the snapshot is damaged."
            )
        return marking

    def diff(self, a: str, b: str) -> dict[str, Any]:
        """What changed from version ``a`` to ``b``: records added, removed, changed, moved."""
        va, vb = self.get(a), self.get(b)
        ra = {r["id"]: r for r in va.manifest["records"]}
        rb = {r["id"]: r for r in vb.manifest["records"]}
        return {
            "from": va.id,
            "to": vb.id,
            "added": sorted(set(rb) - set(ra)),
            "removed": sorted(set(ra) - set(rb)),
            "changed": sorted(i for i in set(ra) & set(rb) if ra[i]["sha256"] != rb[i]["sha256"]),
            "moved": sorted(i for i in set(ra) & set(rb) if ra[i]["split"] != rb[i]["split"]),
            "selection_changed": va.manifest["selection"] != vb.manifest["selection"],
        }

    # -- changing ------------------------------------------------------------------------------

    def create(
        self,
        name: str,
        selection: Selection,
        *,
        ratios: dict[str, float] | None = None,
        seed: int = 0,
        stratify: str | None = None,
    ) -> DatasetVersion:
        """Materialize a version (stewards); the same data and selection give the same id."""
        self.session.require(Action.DATASET_CREATE, AuditAction.DATASET_CREATE, object_id=name)
        if not name or len(name) > 128 or "@" in name:
            raise InvalidInput("A dataset name is 1-128 characters, without '@'.")
        ratios = ratios or {"train": 1.0}
        records = select_records(self.session, selection)
        splits = assign_splits(records, ratios, seed=seed, stratify=stratify)
        marking = join(*(r.marking for r in records))
        frozen = sorted(
            (
                SnapshotRecord(
                    r.id,
                    r.kind,
                    r.doc_id,
                    r.text,
                    r.marking.banner(),
                    splits[r.id],
                    {k: v for k, v in r.fields.items() if k in selection.fields},
                    r.lineage,
                    r.marking,
                )
                for r in records
            ),
            key=lambda r: r.id,
        )
        manifest: dict[str, Any] = {
            "format": MANIFEST_FORMAT,
            "name": name,
            "marking": marking.banner(),
            "marking_detail": marking_detail(marking),
            "selection": selection.model_dump(mode="json"),
            "split": {"ratios": dict(sorted(ratios.items())), "seed": seed, "stratify": stratify},
            "pipelines": _pipelines(records),
            "records": [
                {
                    "id": r.id,
                    "sha256": hashlib.sha256(r.text.encode()).hexdigest(),
                    "split": r.split,
                    "marking": r.marking,
                    "marking_detail": marking_detail(r.detail),
                }
                for r in frozen
            ],
        }
        findings = sorted(
            ({"record": r.id, **f} for r in records for f in r.findings),
            key=lambda f: (f["record"], f["rule"]),
        )
        if findings:
            # Records raised by compilation rules (the manifest is marked at least as high).
            manifest["findings"] = findings
        version_id = hashlib.sha256(_canonical(manifest)).hexdigest()
        snapshot = self.session.workspace.blobs.put(_snapshot(frozen))
        add_version(
            self.session,
            version_id=version_id,
            name=name,
            marking=marking,
            manifest=manifest,
            record_count=len(frozen),
            snapshot=snapshot,
        )
        self._stale_cache.pop(version_id, None)
        return self._version(self._row(version_id))

    def derive(
        self,
        base_ref: str,
        *,
        name: str,
        fields: Mapping[str, Mapping[str, Any]],
        markings: Mapping[str, Marking] | None = None,
        source: Mapping[str, Any] | None = None,
    ) -> DatasetVersion:
        """A new version of a readable version's records with extra ``fields`` by record id
        (stewards): each record is marked with the join of its own marking and
        ``markings[id]`` (what the new fields show), the version with the join of all. Same
        splits and selection; ``source`` (e.g. a labeling project) goes into the manifest's
        ``derived_from`` and the changed records' lineage. The same inputs give the same id.
        """
        self.session.require(Action.DATASET_CREATE, AuditAction.DATASET_CREATE, object_id=name)
        if not name or len(name) > 128 or "@" in name:
            raise InvalidInput("A dataset name is 1-128 characters, without '@'.")
        base = self._version(self._row(base_ref))
        extra = dict(markings or {})
        step = {"stage": "derive", **dict(source or {})}
        frozen = []
        for r in self._snapshot(base.snapshot):
            marking = r.detail
            if r.id in extra:
                marking = join(marking, extra[r.id])
            added = fields.get(r.id)
            frozen.append(
                SnapshotRecord(
                    r.id,
                    r.kind,
                    r.doc_id,
                    r.text,
                    marking.banner(),
                    r.split,
                    {**r.fields, **dict(added)} if added else r.fields,
                    [*r.lineage, step] if added else r.lineage,
                    marking,
                )
            )
        marking = join(*(r.detail for r in frozen))
        manifest = {
            **base.manifest,
            "name": name,
            "marking": marking.banner(),
            "marking_detail": marking_detail(marking),
            "derived_from": {"id": base.id, **dict(source or {})},
            "records": [
                {
                    "id": r.id,
                    "sha256": hashlib.sha256(r.text.encode()).hexdigest(),
                    "fields_sha256": hashlib.sha256(_canonical(r.fields)).hexdigest(),
                    "split": r.split,
                    "marking": r.marking,
                    "marking_detail": marking_detail(r.detail),
                }
                for r in frozen
            ],
        }
        version_id = hashlib.sha256(_canonical(manifest)).hexdigest()
        snapshot = self.session.workspace.blobs.put(_snapshot(frozen))
        add_version(
            self.session,
            version_id=version_id,
            name=name,
            marking=marking,
            manifest=manifest,
            record_count=len(frozen),
            snapshot=snapshot,
        )
        self._stale_cache.pop(version_id, None)
        return self._version(self._row(version_id))

    def delete(self, ref: str) -> str:
        """Delete a version (stewards; audited). Its id is never reused for other content."""
        self.session.require(Action.DATASET_DELETE, AuditAction.DATASET_DELETE, object_id=ref[:128])
        row = self._row(ref)
        delete_version(self.session, row.id)
        return row.id
