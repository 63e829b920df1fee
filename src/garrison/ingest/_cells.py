"""Portion marks in tables and records: per cell, per field value, per ``key: value`` line.

A table cell, a record's field value (at any depth) and each value of a record rendered as
``key: value`` lines (or ``col: value; col: value``, or ``a | b`` table rows) may start with a
portion mark, or be, whole, a banner-looking marking (a ``classification`` column holding
``SECRET//NOFORN``). Each is read, stripped from the value, and kept per cell; the caller joins
them into the element's marking. Used by :mod:`garrison.ingest.marking`.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from garrison.core.errors import MarkingError
from garrison.core.records import TableCell
from garrison.security.markings import (
    Marking,
    find_portion_mark,
    is_banner_candidate,
    leading_enumerator,
    normalize_marking_text,
)

__all__ = ["Marks", "mark_cells", "mark_fields", "mark_record_text"]

_LINE_BREAK = re.compile(r"(\r\n|[\n\r\v\f\x1c\x1d\x1e\x85\u2028\u2029])")
#: ``key: `` at the start of a line or after ``; `` (how records are rendered as text).
_KEY = re.compile(r"(?:^|; )[^\s:;][^:;\n]{0,100}?: ")
_CELL_SEPARATOR = re.compile(r" \| |\t")


@dataclass
class Marks:
    """Marks found in one element, and marks that failed validation."""

    parse: Callable[[str], Marking | MarkingError]
    found: list[Marking] = field(default_factory=list)
    errors: list[MarkingError] = field(default_factory=list)

    def read(self, value: str, previous: str | None = None) -> tuple[Marking, int] | None:
        """The marking ``value`` starts with and the offset past it, or None."""
        hit = find_portion_mark(value, previous_enumerator=previous)
        if hit is None:
            if not is_banner_candidate(value):
                return None
            hit = (normalize_marking_text(value).strip(), len(value))
        marking = self.parse(hit[0])
        if isinstance(marking, MarkingError):
            self.errors.append(marking)
            return None
        self.found.append(marking)
        return marking, hit[1]


@dataclass
class CellsResult:
    cells: tuple[TableCell, ...] | None
    unmarked: bool = False
    #: ``(cell text as parsed, cell text with its mark stripped)`` for every marked cell.
    replacements: list[tuple[str, str]] = field(default_factory=list)


def mark_cells(cells: tuple[TableCell, ...], marks: Marks) -> CellsResult:
    """Read a mark at the start of every cell: set ``TableCell.marking``, strip it."""
    if not cells:
        return CellsResult(None)
    result = CellsResult(None)
    out: list[TableCell] = []
    previous: dict[int, str | None] = {}  # an enumerated run goes down a column
    for cell in cells:
        hit = marks.read(cell.text, previous.get(cell.col))
        previous[cell.col] = leading_enumerator(cell.text)
        if hit is None:
            result.unmarked = result.unmarked or bool(cell.text.strip())
            out.append(cell)
            continue
        marking, end = hit
        text = cell.text[end:].strip()
        result.replacements.append((cell.text, text))
        out.append(cell.model_copy(update={"text": text, "marking": marking.banner()}))
    result.cells = tuple(out)
    return result


@dataclass
class TextResult:
    text: str
    unmarked: bool


def _segments(line: str) -> list[tuple[int, int]]:
    """``(start, stop)`` of every value in one rendered line."""
    keys = list(_KEY.finditer(line))
    if keys:
        starts = [k.end() for k in keys]
        stops = [k.start() for k in keys[1:]] + [len(line)]
        return list(zip(starts, stops, strict=True))
    bounds = [0]
    stops = []
    for sep in _CELL_SEPARATOR.finditer(line):
        stops.append(sep.start())
        bounds.append(sep.end())
    stops.append(len(line))
    return list(zip(bounds, stops, strict=True))


def mark_record_text(text: str, marks: Marks, replacements: list[tuple[str, str]]) -> TextResult:
    """Strip marks from a record's or table's text: first the cells' (already read), then a mark
    at the start of any value of a ``key: value`` line, of a table row's cell, or of a line."""
    cursor = 0
    for old, new in replacements:
        at = text.find(old, cursor)
        if at >= 0 and old != new:
            text = text[:at] + new + text[at + len(old) :]
            cursor = at + len(new)
    out: list[str] = []
    unmarked = False
    for piece in _LINE_BREAK.split(text):
        if not piece or _LINE_BREAK.fullmatch(piece):
            out.append(piece)
            continue
        kept: list[str] = []
        position = 0
        for start, stop in _segments(piece):
            value = piece[start:stop]
            hit = marks.read(value) if value.strip() else None
            if hit is None:
                unmarked = unmarked or bool(value.strip())
                continue
            kept.append(piece[position:start])
            rest = value[hit[1] :]
            kept.append(rest.lstrip())
            position = stop
        kept.append(piece[position:])
        out.append("".join(kept))
    return TextResult("".join(out), unmarked)


@dataclass
class FieldsResult:
    fields: dict[str, Any]
    #: JSON pointer of each value that carried a mark -> its marking.
    markings: dict[str, Marking]
    unmarked: bool


def _pointer(parts: list[str]) -> str:
    return "".join("/" + p.replace("~", "~0").replace("/", "~1") for p in parts)


def mark_fields(fields: dict[str, Any], marks: Marks) -> FieldsResult:
    """Read a mark at the start of every string value at any depth; strip it."""
    markings: dict[str, Marking] = {}
    unmarked = False

    def walk(value: Any, pointer: str) -> Any:
        nonlocal unmarked
        if isinstance(value, str):
            hit = marks.read(value)
            if hit is None:
                unmarked = unmarked or bool(value.strip())
                return value
            markings[pointer] = hit[0]
            return value[hit[1] :].strip()
        if isinstance(value, dict):
            return {k: walk(v, pointer + _pointer([str(k)])) for k, v in value.items()}
        if isinstance(value, list):
            return [walk(v, f"{pointer}/{i}") for i, v in enumerate(value)]
        if value is not None:
            unmarked = True
        return value

    out = {
        key: walk(value, key if key.startswith("/") else _pointer([key]))
        for key, value in fields.items()
    }
    return FieldsResult(out, markings, unmarked)
