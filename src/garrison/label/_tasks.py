"""Task types, label schemas and values: what a label may say, and when two labels agree.

A task type fixes the shape of a label's value:

==============  =============================================================================
classification  ``"CLASS"`` (single) or ``["CLASS", ...]`` (``multi: true``), classes from
                the schema
spans           ``[{"start": int, "end": int, "type": "TYPE"}, ...]``: exact character offsets
                into the record's text, types from the schema's ``span_types``
boxes           ``[{"x", "y", "w", "h": float, "label": "CLASS"}, ...]`` on an image record
preference      ``"a"``, ``"b"`` or ``"tie"`` between the record's two texts (``fields.a`` and
                ``fields.b``, or its text split at the schema's ``separator``)
answer          free text: a portion the annotator marks (default: the record's marking)
==============  =============================================================================

A schema is ``{"classes", "multi", "span_types", "instructions", "examples"}``; what a task
type does not use is ignored. Records are read from their dataset version's snapshot (never
copied into the catalog); :func:`snapshot_record` caches a snapshot's records by id.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from garrison.core.errors import InvalidInput
from garrison.datasets import Datasets, SnapshotRecord
from garrison.security.markings import Marking
from garrison.store.session import Session

__all__ = [
    "TASK_TYPES",
    "LabelView",
    "TaskView",
    "agree",
    "check_schema",
    "check_value",
    "snapshot_record",
]

TASK_TYPES = ("classification", "spans", "boxes", "preference", "answer")
PREFERENCES = ("a", "b", "tie")
_IOU = 0.5


@dataclass(frozen=True)
class TaskView:
    """A task as the annotator it was handed to sees it (never whether it is gold)."""

    id: str
    project: str
    task_type: str
    record_id: str
    text: str
    fields: dict[str, Any]
    marking: Marking
    schema: dict[str, Any]
    schema_version: int
    suggestion: dict[str, Any] | None = None
    draft: Any = None
    #: Set for reviewers and stewards only.
    kind: str | None = None

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "id": self.id,
            "project": self.project,
            "task_type": self.task_type,
            "record_id": self.record_id,
            "text": self.text,
            "fields": self.fields,
            "marking": self.marking.banner(),
            "schema": self.schema,
            "schema_version": self.schema_version,
            "suggestion": self.suggestion,
            "draft": self.draft,
        }
        if self.kind is not None:
            data["kind"] = self.kind
        return data


@dataclass(frozen=True)
class LabelView:
    """One replica as a reader who may read it sees it."""

    id: str
    task_id: str
    annotator: str
    kind: str
    status: str
    value: Any
    marking: Marking
    schema_version: int
    created_at: str
    submitted_at: str | None = None
    reason: str | None = None
    flagged: bool = False
    review_state: str | None = None
    parent_id: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "task_id": self.task_id,
            "annotator": self.annotator,
            "kind": self.kind,
            "status": self.status,
            "value": self.value,
            "marking": self.marking.banner(),
            "schema_version": self.schema_version,
            "created_at": self.created_at,
            "submitted_at": self.submitted_at,
            "reason": self.reason,
            "flagged": self.flagged,
            "review_state": self.review_state,
            "parent_id": self.parent_id,
            **self.extra,
        }


def _strings(value: Any, what: str) -> list[str]:
    if value is None:
        return []
    if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
        raise InvalidInput(f"A label schema's {what} is a list of names.")
    if len(set(value)) != len(value):
        raise InvalidInput(f"A label schema's {what} repeat a name.")
    return list(value)


def check_schema(task_type: str, schema: Mapping[str, Any]) -> dict[str, Any]:
    """The schema in canonical form; InvalidInput when it cannot describe ``task_type``."""
    if task_type not in TASK_TYPES:
        raise InvalidInput(f"Unknown task type {task_type!r}: use {', '.join(TASK_TYPES)}.")
    if not isinstance(schema, Mapping):
        raise InvalidInput("A label schema is a mapping (classes, span_types, instructions).")
    known = {"classes", "multi", "span_types", "instructions", "examples", "separator"}
    unknown = sorted(set(schema) - known)
    if unknown:
        raise InvalidInput(f"A label schema has no {', '.join(unknown)}: use {sorted(known)}.")
    out: dict[str, Any] = {
        "classes": _strings(schema.get("classes"), "classes"),
        "multi": bool(schema.get("multi", False)),
        "span_types": _strings(schema.get("span_types"), "span types"),
        "instructions": str(schema.get("instructions") or ""),
        "examples": list(schema.get("examples") or []),
    }
    if schema.get("separator") is not None:
        out["separator"] = str(schema["separator"])
    if task_type in ("classification", "boxes") and not out["classes"]:
        raise InvalidInput(f"A {task_type} schema needs classes.")
    if task_type == "spans" and not out["span_types"]:
        raise InvalidInput("A spans schema needs span_types.")
    return out


def _number(value: Any, what: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise InvalidInput(f"A box's {what} is a number.")
    return float(value)


def check_value(task_type: str, schema: Mapping[str, Any], value: Any, text: str) -> Any:
    """``value`` in canonical form for the task type; InvalidInput when it does not fit."""
    classes = set(schema.get("classes") or ())
    if task_type == "classification":
        if schema.get("multi"):
            if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
                raise InvalidInput("A multi-label classification is a list of classes.")
            chosen = sorted(set(value))
        else:
            if not isinstance(value, str):
                raise InvalidInput("A classification is one class name.")
            chosen = [value]
        unknown = [c for c in chosen if c not in classes]
        if unknown:
            raise InvalidInput(f"{unknown[0]!r} is not a class of this project.")
        return chosen if schema.get("multi") else chosen[0]
    if task_type == "spans":
        if not isinstance(value, list):
            raise InvalidInput("Span labels are a list of {start, end, type}.")
        spans = []
        for span in value:
            if not isinstance(span, Mapping) or set(span) - {"start", "end", "type", "text"}:
                raise InvalidInput("A span is {start, end, type}.")
            start, end, kind = span.get("start"), span.get("end"), span.get("type")
            if not isinstance(start, int) or not isinstance(end, int) or isinstance(start, bool):
                raise InvalidInput("A span's start and end are character offsets.")
            if not 0 <= start < end <= len(text):
                raise InvalidInput(f"The span {start}-{end} is outside the record's text.")
            if kind not in set(schema.get("span_types") or ()):
                raise InvalidInput(f"{kind!r} is not a span type of this project.")
            spans.append({"start": start, "end": end, "type": kind})
        return sorted(spans, key=lambda s: (s["start"], s["end"], s["type"]))
    if task_type == "boxes":
        if not isinstance(value, list):
            raise InvalidInput("Boxes are a list of {x, y, w, h, label}.")
        boxes = []
        for box in value:
            if not isinstance(box, Mapping) or set(box) != {"x", "y", "w", "h", "label"}:
                raise InvalidInput("A box is {x, y, w, h, label}.")
            coords = {k: _number(box[k], k) for k in ("x", "y", "w", "h")}
            if coords["w"] <= 0 or coords["h"] <= 0 or coords["x"] < 0 or coords["y"] < 0:
                raise InvalidInput("A box has a positive width and height inside the image.")
            if box["label"] not in classes:
                raise InvalidInput(f"{box['label']!r} is not a class of this project.")
            boxes.append({**coords, "label": box["label"]})
        return boxes
    if task_type == "preference":
        if value not in PREFERENCES:
            raise InvalidInput("A preference is 'a', 'b' or 'tie'.")
        return value
    if not isinstance(value, str) or not value.strip():
        raise InvalidInput("An answer is non-empty text.")
    return value.strip()


def _iou(a: Mapping[str, float], b: Mapping[str, float]) -> float:
    x1, y1 = max(a["x"], b["x"]), max(a["y"], b["y"])
    x2 = min(a["x"] + a["w"], b["x"] + b["w"])
    y2 = min(a["y"] + a["h"], b["y"] + b["h"])
    inter = max(0.0, x2 - x1) * max(0.0, y2 - y1)
    union = a["w"] * a["h"] + b["w"] * b["h"] - inter
    return inter / union if union > 0 else 0.0


def agree(task_type: str, a: Any, b: Any) -> bool:
    """Whether two canonical values say the same (gold checks, calibration): equal classes,
    spans or preference; boxes matched one to one at IoU >= 0.5 with the same label; answers
    equal ignoring case and spacing."""
    if task_type == "boxes":
        if not isinstance(a, list) or not isinstance(b, list) or len(a) != len(b):
            return False
        unused = list(b)
        for box in a:
            match = next(
                (o for o in unused if o["label"] == box["label"] and _iou(box, o) >= _IOU), None
            )
            if match is None:
                return False
            unused.remove(match)
        return True
    if task_type == "answer":
        return " ".join(str(a).lower().split()) == " ".join(str(b).lower().split())
    if task_type == "classification" and isinstance(a, list) and isinstance(b, list):
        return sorted(a) == sorted(b)
    return bool(a == b)


# -- records -------------------------------------------------------------------------------------

_CACHE: OrderedDict[str, dict[str, SnapshotRecord]] = OrderedDict()
_CACHE_SIZE = 4
_LOCK = threading.Lock()


def snapshot_records(session: Session, snapshot: str) -> dict[str, SnapshotRecord]:
    """A dataset snapshot's records by id (decrypted once per process, kept for a few
    snapshots: they are immutable). Callers show a record only to readers of its marking."""
    with _LOCK:
        cached = _CACHE.get(snapshot)
        if cached is not None:
            _CACHE.move_to_end(snapshot)
            return cached
    records = {r.id: r for r in Datasets(session).snapshot_records(snapshot)}
    with _LOCK:
        _CACHE[snapshot] = records
        while len(_CACHE) > _CACHE_SIZE:
            _CACHE.popitem(last=False)
    return records


def snapshot_record(session: Session, snapshot: str, record_id: str) -> SnapshotRecord:
    """One record of a snapshot; a missing one is a damaged project (KeyError)."""
    return snapshot_records(session, snapshot)[record_id]
