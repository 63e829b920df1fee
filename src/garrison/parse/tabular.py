"""Delimited text (CSV/TSV) and Parquet parsers: one Record element per row.

CSV: the encoding and delimiter are detected; a title row above the real header (one
non-empty cell, followed by a row with more) becomes a Title element. Values are typed
(int, float, bool, None, else str); a decimal comma is understood when the delimiter is ``;``.

Each row keeps its raw cells (``table_cells``, marks included) beside its typed ``fields``, so
a portion mark at the start of any cell is where the marking rules look. Banner lines as the
first or last lines of the file (``SECRET//NOFORN``, alone on the line or in the first cell of
an otherwise empty row) go to ``banners``, not into the data. The ``marking_column`` parse
option names a column holding each row's marking: its value becomes the row's
``declared_marking`` and the column is left out of the row's text, fields and cells.
"""

from __future__ import annotations

import csv
import io
import re
from datetime import date, datetime, time
from decimal import Decimal
from typing import Any

from garrison.core.records import (
    ElementType,
    Extraction,
    ParsedDocument,
    ParsedElement,
    TableCell,
)
from garrison.parse._banner import is_banner_line
from garrison.parse._registry import ParseContext, ParseFailure, register_parser
from garrison.parse._text import decode_text, sniff_delimiter
from garrison.parse.detect import without_edge_banners

__all__ = ["marking_column", "parse_delimited", "parse_parquet", "peel_banner_rows", "typed_value"]

_INT = re.compile(r"^[+-]?(0|[1-9]\d*)$")
_FLOAT = re.compile(r"^[+-]?(\d+\.\d*|\.\d+|\d+)([eE][+-]?\d+)?$")
_LEADING_ZERO = re.compile(r"^[+-]?0\d")
_COMMA_FLOAT = re.compile(r"^[+-]?\d+,\d+$")
_BOOLS = {"true": True, "false": False}


def typed_value(raw: str, *, decimal_comma: bool = False) -> int | float | bool | str | None:
    """``raw`` as int, float, bool or None when it plainly is one; else the stripped string."""
    value = raw.strip()
    if not value:
        return None
    if _INT.match(value) and len(value) < 19:
        return int(value)
    if _LEADING_ZERO.match(value):
        return value  # an identifier or code (zip, account number), not a number
    if _FLOAT.match(value):
        return float(value)
    if decimal_comma and _COMMA_FLOAT.match(value):
        return float(value.replace(",", "."))
    lowered = value.lower()
    if lowered in _BOOLS:
        return _BOOLS[lowered]
    return value


def _header_names(row: list[str], width: int) -> list[str]:
    names: list[str] = []
    seen: set[str] = set()
    for i in range(width):
        base = row[i].strip() if i < len(row) and row[i].strip() else f"column_{i + 1}"
        name, n = base, 2
        while name in seen:
            name, n = f"{base}_{n}", n + 1
        seen.add(name)
        names.append(name)
    return names


def _record_text(fields: dict[str, Any]) -> str:
    return "\n".join(f"{k}: {v}" for k, v in fields.items() if v is not None and v != "")


def _non_empty(row: list[str]) -> int:
    return sum(1 for cell in row if cell.strip())


def marking_column(ctx: ParseContext) -> str | None:
    """The ``marking_column`` parse option (``--marking-column``), or None."""
    value = ctx.options.get("marking_column")
    if value is None or value == "":
        return None
    return str(value)


def _row_banner(row: list[str], raw: str) -> str | None:
    """The banner a row holds: the whole raw line, or its only non-empty cell."""
    line = raw.strip().strip('"').strip()
    # Empty trailing cells of a spreadsheet export first: "SECRET//NOFORN,," holds the banner
    # "SECRET//NOFORN", and a candidate with the commas would fail validation as a banner.
    for candidate in (line.rstrip(",;\t|").strip().strip('"').strip(), line):
        if candidate and is_banner_line(candidate):
            return candidate
    cells = [cell.strip() for cell in row if cell.strip()]
    if len(cells) == 1 and is_banner_line(cells[0]):
        return cells[0]
    return None


def peel_banner_rows(
    numbered: list[tuple[int, list[str]]], raw_lines: dict[int, str]
) -> tuple[list[tuple[int, list[str]]], list[str]]:
    """Banner rows off the top and bottom of ``numbered``: ``(rows left, banners)``."""
    banners: list[str] = []
    rows = list(numbered)
    while rows:
        banner = _row_banner(rows[0][1], raw_lines.get(rows[0][0], ""))
        if banner is None:
            break
        banners.append(banner)
        rows.pop(0)
    bottom: list[str] = []
    while rows:
        banner = _row_banner(rows[-1][1], raw_lines.get(rows[-1][0], ""))
        if banner is None:
            break
        bottom.insert(0, banner)
        rows.pop()
    return rows, banners + bottom


def _declared(value: str | None) -> str:
    return " ".join((value or "").split())


def _raw_lines(text: str) -> dict[int, str]:
    """Physical lines by number (a quoted cell spanning lines makes them differ from rows)."""
    return dict(enumerate(text.splitlines(), start=1))


@register_parser("text/csv", "text/tab-separated-values")
def parse_delimited(data: bytes, ctx: ParseContext) -> ParsedDocument:
    """Parse CSV/TSV into Record elements (locator ``row``, 1-based as in a spreadsheet)."""
    text, encoding = decode_text(data, max_line_chars=0)
    sniffed = sniff_delimiter(without_edge_banners(text))
    if sniffed is not None:
        delimiter = sniffed[0]
    else:
        delimiter = "\t" if ctx.media_type == "text/tab-separated-values" else ","
    try:
        reader = csv.reader(io.StringIO(text), delimiter=delimiter)
        rows: list[list[str]] = []
        starts: dict[int, int] = {}  # row number -> physical line it starts on
        line = 1
        for row in reader:
            starts[len(rows) + 1] = line
            rows.append(row)
            line = reader.line_num + 1
    except csv.Error as exc:
        raise ParseFailure("corrupt", f"the delimited text could not be read: {exc}") from exc
    numbered = [(n, row) for n, row in enumerate(rows, start=1) if _non_empty(row)]
    physical = _raw_lines(text)
    numbered, banners = peel_banner_rows(
        numbered, {n: physical.get(starts.get(n, 0), "") for n, _ in numbered}
    )
    if not numbered:
        raise ParseFailure("corrupt", "the delimited file has no rows")

    elements: list[ParsedElement] = []
    section: tuple[str, ...] = ()
    title: str | None = None
    if len(numbered) >= 2 and _non_empty(numbered[0][1]) == 1 and _non_empty(numbered[1][1]) > 1:
        row_no, row = numbered.pop(0)
        title = next(cell.strip() for cell in row if cell.strip())
        section = (title,)
        elements.append(ParsedElement(type=ElementType.TITLE, text=title, locator={"row": row_no}))
    header_no, header_row = numbered.pop(0)
    width = max([len(header_row), *(len(r) for _, r in numbered)])
    names = _header_names(header_row, width)
    wanted = marking_column(ctx)
    mark_at: int | None = None
    if wanted is not None:
        if wanted not in names:
            raise ParseFailure(
                "corrupt", f"the header has no marking column {wanted!r} (--marking-column)"
            )
        mark_at = names.index(wanted)
    decimal_comma = delimiter == ";"
    for row_no, row in numbered:
        kept = [i for i in range(width) if i != mark_at]
        fields = {
            names[i]: typed_value(row[i], decimal_comma=decimal_comma) if i < len(row) else None
            for i in kept
        }
        cells = tuple(
            TableCell(row=row_no, col=i, text=row[i].strip())
            for i in kept
            if i < len(row) and row[i].strip()
        )
        declared = None
        if mark_at is not None:
            declared = _declared(row[mark_at] if mark_at < len(row) else None)
        elements.append(
            ParsedElement(
                type=ElementType.RECORD,
                text=_record_text(fields),
                fields=fields,
                table_cells=cells,
                section_path=section,
                locator={"row": row_no},
                declared_marking=declared,
            )
        )
    return ParsedDocument(
        media_type="text/tab-separated-values" if delimiter == "\t" else "text/csv",
        elements=tuple(elements),
        title=title,
        banners=tuple(banners),
        metadata={
            "encoding": encoding,
            "delimiter": delimiter,
            "columns": [name for i, name in enumerate(names) if i != mark_at],
            "header_row": header_no,
            **({"marking_column": wanted} if wanted is not None else {}),
        },
        extraction=Extraction(method="csv", parser="garrison.tabular", parser_version="1"),
    )


def _plain(value: Any) -> Any:
    if value is None or isinstance(value, bool | int | float | str | datetime | date | time):
        return value
    if isinstance(value, Decimal):
        return float(value)
    if isinstance(value, bytes):
        return value.hex()
    if isinstance(value, list):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    return str(value)


@register_parser("application/vnd.apache.parquet", libraries=("pyarrow.parquet",))
def parse_parquet(data: bytes, ctx: ParseContext) -> ParsedDocument:
    """Parse a Parquet file into Record elements (locator ``row``, 1-based)."""
    try:
        import pyarrow as pa  # type: ignore[import-untyped]
        import pyarrow.parquet as pq  # type: ignore[import-untyped]
    except ImportError as exc:  # pragma: no cover - depends on the install
        raise ParseFailure(
            "unsupported-type", "Parquet needs pyarrow: pip install pyarrow"
        ) from exc
    try:
        table = pq.read_table(pa.BufferReader(data))
    except (pa.ArrowException, OSError, ValueError) as exc:
        raise ParseFailure("corrupt", "the Parquet file could not be read") from exc
    wanted = marking_column(ctx)
    if wanted is not None and wanted not in table.schema.names:
        raise ParseFailure(
            "corrupt", f"the Parquet file has no marking column {wanted!r} (--marking-column)"
        )
    elements: list[ParsedElement] = []
    row_no = 0
    for batch in table.to_batches(max_chunksize=10_000):
        for row in batch.to_pylist():
            row_no += 1
            fields = {str(k): _plain(v) for k, v in row.items()}
            declared = None
            if wanted is not None:
                value = fields.pop(wanted)
                declared = _declared(None if value is None else str(value))
            elements.append(
                ParsedElement(
                    type=ElementType.RECORD,
                    text=_record_text(fields),
                    fields=fields,
                    locator={"row": row_no},
                    declared_marking=declared,
                )
            )
    return ParsedDocument(
        media_type="application/vnd.apache.parquet",
        elements=tuple(elements),
        metadata={"columns": list(table.schema.names), "rows": table.num_rows},
        extraction=Extraction(
            method="parquet", parser="garrison.tabular", parser_version=pa.__version__
        ),
    )
