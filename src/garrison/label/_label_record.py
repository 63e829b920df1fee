"""The plain label record every export format reads, and the marking of a file of them."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from garrison.core.errors import InvalidInput
from garrison.security.markings import Marking, join, parse_marking

__all__ = ["KINDS", "LabelRecord", "Parse", "file_marking", "record_meta"]

KINDS = ("classification", "multilabel", "spans", "boxes", "preference", "text")

Parse = Callable[[str], Marking]


@dataclass(frozen=True)
class LabelRecord:
    """One label replica of one record, ready for export (see the module docstring)."""

    record_id: str
    marking: str
    kind: str
    value: Any
    text: str | None = None
    image: str | None = None
    width: int | None = None
    height: int | None = None
    annotator: str | None = None
    schema_version: int | None = None
    labeled_at: str | None = None
    extra: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        where = f"The label of record {self.record_id!r}"
        if not isinstance(self.record_id, str) or not self.record_id:
            raise InvalidInput("A label record needs a record id.")
        if not isinstance(self.marking, str) or not self.marking.strip():
            raise InvalidInput(f"{where} has no marking.")
        if self.kind not in KINDS:
            raise InvalidInput(f"{where} has an unknown kind {self.kind!r}.")
        object.__setattr__(self, "value", _normalized(self, where))

    @property
    def file_stem(self) -> str:
        """The image's file name without its folder and extension (YOLO's label file name)."""
        return Path(self.image or self.record_id).stem


def _normalized(record: LabelRecord, where: str) -> Any:
    value, kind = record.value, record.kind
    if kind in ("classification", "text"):
        if not isinstance(value, str):
            raise InvalidInput(f"{where} is not text.")
        return value
    if kind == "multilabel":
        if isinstance(value, str) or not all(isinstance(v, str) for v in value):
            raise InvalidInput(f"{where} is not a list of class names.")
        return tuple(value)
    if kind == "preference":
        if (
            not isinstance(value, Mapping)
            or set(value) != {"chosen", "rejected"}
            or not all(isinstance(v, str) for v in value.values())
        ):
            raise InvalidInput(f"{where} is not {{'chosen': text, 'rejected': text}}.")
        if record.text is None:
            raise InvalidInput(f"{where} is a preference without its prompt (text).")
        return {"chosen": value["chosen"], "rejected": value["rejected"]}
    if kind == "spans":
        if record.text is None:
            raise InvalidInput(f"{where} has spans but no text.")
        spans = []
        for span in value:
            start, end, label = span
            if not (isinstance(start, int) and isinstance(end, int)) or not (
                0 <= start < end <= len(record.text)
            ):
                raise InvalidInput(f"{where} has a span outside its text: {tuple(span)!r}.")
            spans.append((start, end, str(label)))
        return tuple(sorted(spans))
    boxes = []
    if record.image is None:
        raise InvalidInput(f"{where} has boxes but no image.")
    for box in value:
        x, y, w, h, label = box
        if w <= 0 or h <= 0 or x < 0 or y < 0:
            raise InvalidInput(f"{where} has a box that is not on its image: {tuple(box)!r}.")
        boxes.append((float(x), float(y), float(w), float(h), str(label)))
    return tuple(boxes)


def file_marking(records: Iterable[LabelRecord], *, parse: Parse = parse_marking) -> str:
    """The marking of a file holding ``records``: the join of theirs (UNCLASSIFIED if none)."""
    markings = {r.marking for r in records}
    parsed = [parse(m) for m in sorted(markings)]
    return join(*parsed).banner() if parsed else "UNCLASSIFIED"


def record_meta(record: LabelRecord) -> dict[str, Any]:
    out: dict[str, Any] = {"record_id": record.record_id, "marking": record.marking}
    for key in ("annotator", "schema_version", "labeled_at"):
        if getattr(record, key) is not None:
            out[key] = getattr(record, key)
    return out
