"""Exports: a project's labels as a new dataset version, or as a file.

Only labels the exporter may read, on tasks they may read, are exported, and nothing that was
rejected in review counts toward the aggregate. Each record's ``labels`` field holds::

    {"project", "task_type", "aggregate", "method", "tie", "gold",
     "annotators": [{"annotator", "value", "kind", "schema_version", "marking",
                     "review_state", "submitted_at"}, ...]}

``aggregate`` is a reviewer's fix when there is one (``method`` ``review``), else the replicas'
aggregate by the method asked for: ``majority`` (plurality; None on a tie, ``tie`` true) or
``dawid-skene`` (the most probable class under Dawid–Skene's per-annotator confusion model,
fitted on every exported task of the project). ``method`` records which one. A record is
marked with the join of its own marking and every exported label's; so is the version.
Stewards export (``Action.DATASET_EXPORT``); every export is audited (``label.export``).
"""

from __future__ import annotations

import json
from collections import Counter, defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from garrison.core.errors import InvalidInput
from garrison.datasets import Datasets, DatasetVersion
from garrison.label._projects import LabelProject, load_project
from garrison.label._tasks import snapshot_records
from garrison.security.audit import AuditAction
from garrison.security.markings import Marking, join
from garrison.security.policy import Action
from garrison.store import labels as store
from garrison.store.session import Session

__all__ = ["FILE_FORMATS", "RecordLabels", "export_dataset", "export_file", "export_labels"]

#: Formats written here; the others (``conll``, ``spacy``, ``coco``, ``yolo``, ``preference``,
#: ``label-studio``) come from :mod:`garrison.label.formats`.
FILE_FORMATS = ("jsonl",)


@dataclass(frozen=True)
class RecordLabels:
    """A record's exported labels: aggregate, per-annotator replicas and their marking."""

    record_id: str
    text: str
    fields: dict[str, Any]
    split: str
    record_marking: Marking
    marking: Marking
    labels: dict[str, Any]

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.record_id,
            "text": self.text,
            "split": self.split,
            "marking": self.marking.banner(),
            "labels": self.labels,
        }


def _key(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"))


def _dawid_skene(
    project: LabelProject, grouped: Mapping[str, list[dict[str, Any]]]
) -> dict[str, Any]:
    from garrison.label._agreement_report import aggregate_values

    values: dict[str, dict[str, Any]] = defaultdict(dict)
    for record_id, replicas in grouped.items():
        for r in replicas:
            if r["kind"] == "annotation" and r["review_state"] != "rejected":
                values[record_id][r["annotator"]] = r["value"]
    return aggregate_values(project.task_type, dict(values), "dawid-skene")


def aggregate(values: Sequence[Any], fixes: Sequence[Any]) -> tuple[Any, str, bool]:
    """(aggregate, method, tie): the latest fix, else the plurality value (None on a tie)."""
    if fixes:
        return fixes[-1], "review", False
    if not values:
        return None, "none", False
    forms: dict[Any, Any] = {}
    for v in values:  # a plain string is its own key; anything else its canonical JSON
        forms.setdefault(("s", v) if isinstance(v, str) else ("j", _key(v)), v)
    counted = Counter(
        ("s", v) if isinstance(v, str) else ("j", _key(v)) for v in values
    ).most_common()
    if len(counted) > 1 and counted[0][1] == counted[1][1]:
        return None, "majority", True
    return forms[counted[0][0]], "majority", False


def export_labels(
    session: Session, project_name: str, *, method: str = "majority"
) -> tuple[LabelProject, list[RecordLabels]]:
    """Every readable labeled record of a project with its labels (stewards), in task order,
    aggregated by ``method`` (``majority`` or ``dawid-skene``)."""
    from garrison.label._agreement_report import AGGREGATION_METHODS

    if method not in AGGREGATION_METHODS:
        raise InvalidInput(
            f"Unknown aggregation method {method!r}: use {', '.join(AGGREGATION_METHODS)}."
        )
    session.require(Action.DATASET_EXPORT, AuditAction.LABEL_EXPORT, object_id=project_name[:128])
    project = load_project(session, project_name, AuditAction.LABEL_EXPORT)
    with session.workspace.catalog.transaction() as orm:
        rows = store.export_rows(session, orm, project.id)
        markings: dict[int, Marking] = {}
        for row in rows:
            if row["marking_id"] not in markings:
                found = session.marking_of(orm, row["marking_id"])
                if found is not None:
                    markings[row["marking_id"]] = found
    records = snapshot_records(session, project.snapshot)
    grouped: dict[str, list[dict[str, Any]]] = defaultdict(list)
    gold: dict[str, Any] = {}
    for row in rows:
        if row["marking_id"] in markings:
            grouped[row["record_id"]].append(row)
            if row["gold"] is not None:
                gold[row["record_id"]] = row["gold"]
    skene = _dawid_skene(project, grouped) if method == "dawid-skene" else {}
    out = []
    joined: dict[tuple[Marking, frozenset[int]], Marking] = {}
    for record_id, replicas in grouped.items():
        record = records[record_id]
        own = record.detail
        counted = [
            r for r in replicas if r["kind"] == "annotation" and r["review_state"] != "rejected"
        ]
        fixes = [r["value"] for r in replicas if r["kind"] == "fix"]
        value, used, tie = aggregate([r["value"] for r in counted], fixes)
        if method == "dawid-skene" and used == "majority":
            value, used, tie = skene.get(record_id), "dawid-skene", False
        key = (own, frozenset(r["marking_id"] for r in replicas))
        marking = joined.get(key)  # a few distinct combinations: join each once
        if marking is None:
            marking = joined[key] = join(own, *(markings[i] for i in key[1]))
        labels = {
            "project": project.name,
            "task_type": project.task_type,
            "aggregate": value,
            "method": used,
            "tie": tie,
            "gold": gold.get(record_id),
            "annotators": [
                {
                    "annotator": r["annotator"],
                    "value": r["value"],
                    "kind": r["kind"],
                    "schema_version": r["schema_version"],
                    "marking": markings[r["marking_id"]].banner(),
                    "review_state": r["review_state"],
                    "submitted_at": r["submitted_at"].isoformat() if r["submitted_at"] else None,
                }
                for r in replicas
            ],
        }
        out.append(
            RecordLabels(record_id, record.text, record.fields, record.split, own, marking, labels)
        )
    return project, out


def export_dataset(
    session: Session, project_name: str, *, name: str | None = None, method: str = "majority"
) -> DatasetVersion:
    """The project's dataset version again, each labeled record with a ``labels`` field and
    marked with the join of its labels (stewards); a new version named ``name`` (default: the
    project's name), aggregated by ``method``."""
    project, labeled = export_labels(session, project_name, method=method)
    fields: Mapping[str, Mapping[str, Any]] = {r.record_id: {"labels": r.labels} for r in labeled}
    markings = {r.record_id: r.marking for r in labeled}
    version = Datasets(session).derive(
        project.dataset_version_id,
        name=name or project.name,
        fields=fields,
        markings=markings,
        source={
            "label_project": project.id,
            "schema_version": project.schema_version,
            "method": method,
        },
    )
    session.audit(
        AuditAction.LABEL_EXPORT,
        object_id=project.id,
        object_marking=version.marking.banner(),
        details={"dataset": version.id, "records": len(labeled), "method": method},
    )
    return version


def export_file(
    session: Session, project_name: str, fmt: str, path: Path, *, method: str = "majority"
) -> dict[str, Any]:
    """Write the project's labels to ``path`` in ``fmt`` (stewards); refuses an existing file.

    ``jsonl`` is one record a line (``id``, ``text``, ``split``, ``marking``, ``labels``); the
    other formats (CoNLL, spaCy, COCO, YOLO, preference JSONL, Label Studio) are written by
    :mod:`garrison.label.formats` from the same records. Returns what was written.
    """
    if path.exists():
        raise InvalidInput(f"{path} already exists; give a new file name.")
    project, labeled = export_labels(session, project_name, method=method)
    marking = join(*(r.marking for r in labeled)) if labeled else project.marking
    if fmt == "jsonl":
        with path.open("w", encoding="utf-8") as out:
            for record in labeled:
                out.write(json.dumps(record.to_dict(), sort_keys=True, default=str) + "\n")
    else:
        write_format(session, fmt, project, labeled, path)
    session.audit(
        AuditAction.LABEL_EXPORT,
        object_id=project.id,
        object_marking=marking.banner(),
        details={"format": fmt, "records": len(labeled), "out": str(path), "method": method},
    )
    return {
        "path": str(path),
        "format": fmt,
        "records": len(labeled),
        "marking": marking.banner(),
        "method": method,
    }


def write_format(
    session: Session, fmt: str, project: LabelProject, labeled: list[RecordLabels], path: Path
) -> None:
    """A file format of :mod:`garrison.label.formats` (InvalidInput for an unknown one), from
    the same exported records: every file carries its marking (and a ``.marking`` sidecar)."""
    from garrison.label.formats import EXPORTERS, export_records

    if fmt not in EXPORTERS:
        known = ", ".join([*FILE_FORMATS, *EXPORTERS])
        raise InvalidInput(f"Unknown label export format {fmt!r}: use {known}.")
    rows = [
        {
            "id": r.record_id,
            "text": r.text,
            "fields": r.fields,
            "marking": r.marking.banner(),
            "label": r.labels["aggregate"],
            "labels": r.labels,
        }
        for r in labeled
        if r.labels["aggregate"] is not None or fmt == "label-studio"
    ]
    export_records(
        fmt, project.task_type, rows, path, schema=project.schema, parse=session.parse_marking
    )
