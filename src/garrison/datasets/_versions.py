"""Dataset versions: immutable, content-addressed snapshots of selected records.

``create`` selects the records, assigns splits, writes a manifest -- every record's id, content
hash, split and marking, the selection, the split parameters and the pipeline stages that made
the records -- and takes the SHA-256 of the manifest as the version id, so the same data and
selection always give the same id. The records themselves (text, marking, fields) are frozen in
a Parquet snapshot kept in the workspace's encrypted blob store; exports read the snapshot, so
a later pipeline run never changes a version. Who made it and when are recorded beside the
manifest, not in it.
"""

from __future__ import annotations

import builtins
import hashlib
import io
import json
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select

from garrison.core.clock import utc_now
from garrison.core.errors import InvalidInput, NotFound
from garrison.datasets._records import DatasetRecord, Selection, select_records
from garrison.datasets._splits import assign_splits
from garrison.security.markings import Marking, join
from garrison.security.policy import Action
from garrison.store.models import DatasetVersionRow
from garrison.store.session import Session

__all__ = ["DatasetVersion", "Datasets", "SnapshotRecord"]

MANIFEST_FORMAT = 1


def _canonical(value: Any) -> bytes:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


@dataclass(frozen=True)
class SnapshotRecord:
    """A record as frozen in a version."""

    id: str
    kind: str
    doc_id: str
    text: str
    marking: str
    split: str
    fields: dict[str, Any]
    lineage: list[dict[str, Any]]


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

    def to_dict(self, *, records: bool = False) -> dict[str, Any]:
        splits: dict[str, int] = {}
        for record in self.manifest["records"]:
            splits[record["split"]] = splits.get(record["split"], 0) + 1
        data: dict[str, Any] = {
            "id": self.id,
            "name": self.name,
            "marking": self.marking.banner(),
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

    # -- reading -------------------------------------------------------------------------------

    def _row(self, ref: str) -> DatasetVersionRow:
        """``NAME`` (latest version), ``NAME@VERSION`` or a version id (unique prefix)."""
        name, _, version = ref.partition("@")
        with self.session.workspace.catalog.transaction() as orm:
            readable = self.session.readable_marking_ids(orm)
            query = select(DatasetVersionRow).where(
                DatasetVersionRow.deleted_at.is_(None),
                DatasetVersionRow.marking_id.in_(readable),
            )
            if version:
                query = query.where(
                    DatasetVersionRow.name == name, DatasetVersionRow.id.startswith(version)
                )
            else:
                query = query.where(
                    (DatasetVersionRow.name == name) | DatasetVersionRow.id.startswith(name)
                )
            rows = list(orm.scalars(query.order_by(DatasetVersionRow.created_at.desc())))
        if version and len(rows) > 1:
            rows = []
        if not rows:
            self.session.audit(
                "dataset.read",
                object_id=ref[:128],
                decision="deny",
                reason="no such version or not readable",
            )
            raise NotFound(f"No dataset version {ref}.")
        return rows[0]

    def _version(self, row: DatasetVersionRow) -> DatasetVersion:
        with self.session.workspace.catalog.transaction() as orm:
            marking = self.session.marking_of(orm, row.marking_id)
        assert marking is not None
        return DatasetVersion(
            row.id,
            row.name,
            marking,
            row.manifest,
            row.record_count,
            row.snapshot,
            row.created_by,
            row.created_at.isoformat(),
        )

    def get(self, ref: str) -> DatasetVersion:
        """One readable version; NotFound otherwise (same answer as for a missing one)."""
        version = self._version(self._row(ref))
        self.session.audit(
            "dataset.read", object_id=version.id, object_marking=version.marking.banner()
        )
        return version

    def list(self) -> builtins.list[DatasetVersion]:
        """Every readable, undeleted version, newest first."""
        with self.session.workspace.catalog.transaction() as orm:
            readable = self.session.readable_marking_ids(orm)
            rows = list(
                orm.scalars(
                    select(DatasetVersionRow)
                    .where(
                        DatasetVersionRow.deleted_at.is_(None),
                        DatasetVersionRow.marking_id.in_(readable),
                    )
                    .order_by(DatasetVersionRow.created_at.desc())
                )
            )
        versions = [self._version(r) for r in rows]
        self.session.audit("dataset.list", details={"count": len(versions)})
        return versions

    def records(self, version: DatasetVersion) -> builtins.list[SnapshotRecord]:
        """The frozen records of a version (the caller already holds the version)."""
        import pyarrow.parquet as pq

        table = pq.read_table(io.BytesIO(self.session.workspace.blobs.get(version.snapshot)))
        return [
            SnapshotRecord(
                r["id"],
                r["kind"],
                r["doc_id"],
                r["text"],
                r["marking"],
                r["split"],
                json.loads(r["fields"]),
                json.loads(r["lineage"]),
            )
            for r in table.to_pylist()
        ]

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
        self.session.require(Action.DATASET_CREATE, "dataset.create", object_id=name)
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
                )
                for r in records
            ),
            key=lambda r: r.id,
        )
        manifest = {
            "format": MANIFEST_FORMAT,
            "name": name,
            "marking": marking.banner(),
            "selection": selection.model_dump(mode="json"),
            "split": {"ratios": dict(sorted(ratios.items())), "seed": seed, "stratify": stratify},
            "pipelines": _pipelines(records),
            "records": [
                {
                    "id": r.id,
                    "sha256": hashlib.sha256(r.text.encode()).hexdigest(),
                    "split": r.split,
                    "marking": r.marking,
                }
                for r in frozen
            ],
        }
        version_id = hashlib.sha256(_canonical(manifest)).hexdigest()
        snapshot = self.session.workspace.blobs.put(_snapshot(frozen))
        with self.session._write(
            "dataset.create",
            object_id=version_id,
            object_marking=marking.banner(),
            details={"name": name, "records": len(frozen)},
        ) as orm:
            row = orm.get(DatasetVersionRow, version_id)
            if row is None:
                orm.add(
                    DatasetVersionRow(
                        id=version_id,
                        name=name,
                        marking_id=self.session.intern_marking(orm, marking),
                        manifest=manifest,
                        record_count=len(frozen),
                        snapshot=snapshot,
                        created_by=self.session.subject.name,
                        created_at=utc_now(),
                    )
                )
            elif row.deleted_at is not None:
                row.deleted_at = None
                row.deleted_by = None
        return self._version(self._row(version_id))

    def delete(self, ref: str) -> str:
        """Delete a version (stewards; audited). Its id is never reused for other content."""
        self.session.require(Action.DATASET_DELETE, "dataset.delete", object_id=ref[:128])
        row = self._row(ref)
        with self.session._write("dataset.delete", object_id=row.id) as orm:
            stored = orm.get(DatasetVersionRow, row.id)
            if stored is None:
                raise NotFound(f"No dataset version {ref}.")
            stored.deleted_at = utc_now()
            stored.deleted_by = self.session.subject.name
        return row.id
