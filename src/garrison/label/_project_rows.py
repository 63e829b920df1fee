"""A labeling project's exported rows as :class:`LabelRecord` values, for the file formats.

A row is what the project's export gives for one record::

    {"id", "text", "fields", "marking", "label", "labels": {"annotators": [...]}}

where ``label`` is the aggregate value and each annotator entry holds ``annotator``, ``value``,
``kind`` (``annotation``, ``fix``), ``schema_version``, ``review_state`` and ``submitted_at``.
Values follow the project's task type: a class or a list of classes (``multi``), spans
``{"start", "end", "type"}``, boxes ``{"x", "y", "w", "h", "label"}`` in pixels, a preference
``"a"``/``"b"``/``"tie"`` between ``fields.a`` and ``fields.b`` (or the text split at the
schema's ``separator``), a free-text answer.

Each record carries the row's ``marking`` (the join of the record's and all its labels'), so a
file never says less than the labels it holds. An image record names its file in
``fields.image`` (or ``path``, ``file_name``, ``source_uri``) and its size in ``fields.width``
and ``fields.height`` (or ``image_width``, ``image_height``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from garrison.core.errors import InvalidInput
from garrison.label._label_record import LabelRecord

__all__ = ["records_from_rows"]

_IMAGE_KEYS = ("image", "path", "file_name", "source_uri")


def _first(fields: Mapping[str, Any], *keys: str) -> Any:
    for key in keys:
        if fields.get(key) not in (None, ""):
            return fields[key]
    return None


def _pair(row: Mapping[str, Any], schema: Mapping[str, Any]) -> tuple[str, str]:
    fields = row.get("fields") or {}
    if fields.get("a") is not None and fields.get("b") is not None:
        return str(fields["a"]), str(fields["b"])
    separator = schema.get("separator")
    text = str(row.get("text") or "")
    if separator and separator in text:
        a, b = text.split(str(separator), 1)
        return a.strip(), b.strip()
    raise InvalidInput(f"Record {row.get('id')!r} has no two texts (fields a and b) to prefer.")


def _kind_and_value(
    task_type: str, value: Any, row: Mapping[str, Any], schema: Mapping[str, Any]
) -> tuple[str, Any] | None:
    """The LabelRecord kind and value of a project value (None: nothing to export, a tie)."""
    if task_type == "classification":
        return (
            ("multilabel", tuple(value)) if isinstance(value, list) else ("classification", value)
        )
    if task_type == "spans":
        return "spans", tuple((int(s["start"]), int(s["end"]), str(s["type"])) for s in value)
    if task_type == "boxes":
        return "boxes", tuple(
            (float(b["x"]), float(b["y"]), float(b["w"]), float(b["h"]), str(b["label"]))
            for b in value
        )
    if task_type == "preference":
        if value not in ("a", "b"):
            return None  # a tie prefers neither text
        a, b = _pair(row, schema)
        chosen, rejected = (a, b) if value == "a" else (b, a)
        return "preference", {"chosen": chosen, "rejected": rejected}
    if task_type == "answer":
        return "text", str(value)
    raise InvalidInput(f"Unknown task type {task_type!r}.")


def _record(
    task_type: str,
    row: Mapping[str, Any],
    value: Any,
    schema: Mapping[str, Any],
    replica: Mapping[str, Any] | None,
) -> LabelRecord | None:
    converted = _kind_and_value(task_type, value, row, schema)
    if converted is None:
        return None
    kind, label = converted
    fields = row.get("fields") or {}
    image = width = height = None
    if kind == "boxes":
        image = _first(fields, *_IMAGE_KEYS)
        image = str(image) if image is not None else str(row["id"])
        width = _first(fields, "width", "image_width")
        height = _first(fields, "height", "image_height")
    text = row.get("text")
    if kind == "preference":
        text = str(fields.get("prompt") or "")
    version = replica.get("schema_version") if replica else None
    return LabelRecord(
        record_id=str(row["id"]),
        marking=str(row["marking"]),
        kind=kind,
        value=label,
        text=None if kind == "boxes" else text,
        image=image,
        width=int(width) if width is not None else None,
        height=int(height) if height is not None else None,
        annotator=str(replica["annotator"]) if replica and replica.get("annotator") else None,
        schema_version=int(version) if version is not None else None,
        labeled_at=replica.get("submitted_at") if replica else None,
    )


def records_from_rows(
    task_type: str,
    rows: Sequence[Mapping[str, Any]],
    *,
    schema: Mapping[str, Any] | None = None,
    replicas: bool = False,
) -> list[LabelRecord]:
    """The label records of a project's exported rows: each row's aggregate ``label`` (rows
    without one, a tie, are left out), or with ``replicas`` every annotation that review did
    not reject, with its annotator and schema version."""
    schema = schema or {}
    out: list[LabelRecord] = []
    for row in rows:
        if not replicas:
            if row.get("label") is not None:
                made = _record(task_type, row, row["label"], schema, None)
                if made is not None:
                    out.append(made)
            continue
        for replica in (row.get("labels") or {}).get("annotators") or []:
            if replica.get("kind") != "annotation" or replica.get("review_state") == "rejected":
                continue
            made = _record(task_type, row, replica["value"], schema, replica)
            if made is not None:
                out.append(made)
    return out
