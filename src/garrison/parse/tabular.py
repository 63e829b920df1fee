"""Delimited text (CSV/TSV) and Parquet parsers: one Record element per row.

CSV: the encoding and delimiter are detected; a title row above the real header (one
non-empty cell, followed by a row with more) becomes a Title element. Values are typed
(int, float, bool, None, else str); a decimal comma is understood when the delimiter is ``;``.
"""

from __future__ import annotations

import csv
import io
import re
from datetime import date, datetime, time
from decimal import Decimal
from typing import Any

from garrison.core.records import ElementType, Extraction, ParsedDocument, ParsedElement
from garrison.parse._registry import ParseContext, ParseFailure, register_parser
from garrison.parse._text import decode_text, sniff_delimiter

__all__ = ["parse_delimited", "parse_parquet", "typed_value"]

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


@register_parser("text/csv", "text/tab-separated-values")
def parse_delimited(data: bytes, ctx: ParseContext) -> ParsedDocument:
    """Parse CSV/TSV into Record elements (locator ``row``, 1-based as in a spreadsheet)."""
    text, encoding = decode_text(data, max_line_chars=0)
    sniffed = sniff_delimiter(text)
    if sniffed is not None:
        delimiter = sniffed[0]
    else:
        delimiter = "\t" if ctx.media_type == "text/tab-separated-values" else ","
    try:
        rows = list(csv.reader(io.StringIO(text), delimiter=delimiter))
    except csv.Error as exc:
        raise ParseFailure("corrupt", f"the delimited text could not be read: {exc}") from exc
    numbered = [(n, row) for n, row in enumerate(rows, start=1) if _non_empty(row)]
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
    decimal_comma = delimiter == ";"
    for row_no, row in numbered:
        fields = {
            names[i]: typed_value(row[i], decimal_comma=decimal_comma) if i < len(row) else None
            for i in range(width)
        }
        elements.append(
            ParsedElement(
                type=ElementType.RECORD,
                text=_record_text(fields),
                fields=fields,
                section_path=section,
                locator={"row": row_no},
            )
        )
    return ParsedDocument(
        media_type="text/tab-separated-values" if delimiter == "\t" else "text/csv",
        elements=tuple(elements),
        title=title,
        metadata={
            "encoding": encoding,
            "delimiter": delimiter,
            "columns": names,
            "header_row": header_no,
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


@register_parser("application/vnd.apache.parquet")
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
    elements: list[ParsedElement] = []
    row_no = 0
    for batch in table.to_batches(max_chunksize=10_000):
        for row in batch.to_pylist():
            row_no += 1
            fields = {str(k): _plain(v) for k, v in row.items()}
            elements.append(
                ParsedElement(
                    type=ElementType.RECORD,
                    text=_record_text(fields),
                    fields=fields,
                    locator={"row": row_no},
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
