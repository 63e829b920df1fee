"""Office Open XML parsers: DOCX (python-docx), PPTX (python-pptx), XLSX (openpyxl).

Every OOXML file is a zip; before a library opens it the central directory is checked against
zip bombs (:func:`check_zip`). The zip readers these libraries use stop a member at its declared
size, so the declared sizes bound what is inflated. A password-protected OOXML file is not a zip
but an OLE2 container holding an ``EncryptionInfo`` stream (:func:`is_encrypted_ooxml`); it is
quarantined as ``encrypted``.

Banner lines (``SECRET//NOFORN``) found in headers/footers, and at the top and bottom of a
document body, go to :attr:`ParsedDocument.banners` (:func:`is_banner_line`). Portion marks stay
at the start of element text (and of each table cell's text); ingest strips them. The parts the
libraries skip -- DOCX text boxes, comments, footnotes and endnotes, XLSX headers, footers,
comments and drawing text -- are read from the package (:mod:`garrison.parse._ooxml_parts`);
an embedded object gives the warning ``unreadable-content: <part>``.
"""

from __future__ import annotations

import html
import io
import zipfile
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time
from typing import Any

from garrison.core.records import (
    ElementType,
    Extraction,
    ParsedDocument,
    ParsedElement,
    TableCell,
)
from garrison.parse._banner import is_banner_line, split_banner_lines
from garrison.parse._ooxml_parts import (
    OoxmlExtras,
    docx_blocks,
    docx_cell_text,
    docx_extras,
    docx_text,
    pptx_extras,
    xlsx_extras,
)
from garrison.parse._registry import ParseContext, ParseFailure, library_version, register_parser

__all__ = [
    "DOCX",
    "ENCRYPTED_OOXML",
    "MAX_RATIO",
    "MAX_UNCOMPRESSED",
    "MAX_XLSX_CELLS",
    "PPTX",
    "XLSX",
    "check_zip",
    "is_banner_line",
    "is_encrypted_ooxml",
    "parse_docx",
    "parse_encrypted_ooxml",
    "parse_pptx",
    "parse_xlsx",
    "sniff_office",
    "split_banner_lines",
]

DOCX = "application/vnd.openxmlformats-officedocument.wordprocessingml.document"
PPTX = "application/vnd.openxmlformats-officedocument.presentationml.presentation"
XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
ENCRYPTED_OOXML = "application/x-ooxml-encrypted"
OUTLOOK_MSG = "application/vnd.ms-outlook"

#: Total declared uncompressed size of a zip's members above which it is refused.
MAX_UNCOMPRESSED = 500 * 1024 * 1024
#: Uncompressed/compressed ratio above which a zip is a bomb (checked past ``_RATIO_FLOOR``).
MAX_RATIO = 200
_RATIO_FLOOR = 10 * 1024 * 1024
_MAX_MEMBERS = 20_000
#: Cells (Table cells) one workbook may yield before it is refused as ``too-large``.
MAX_XLSX_CELLS = 200_000
#: Values scanned (empty ones included) before a sparse, huge workbook is refused.
_MAX_XLSX_SCANNED = 5_000_000

_OLE2_MAGIC = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"
_ENCRYPTION_INFO = "EncryptionInfo".encode("utf-16-le")
_MSG_STREAM = "__substg1.0_".encode("utf-16-le")
_ZIP_MAGIC = b"PK\x03\x04"


# -- banners -------------------------------------------------------------------------------------


# -- containers ----------------------------------------------------------------------------------


def is_encrypted_ooxml(data: bytes) -> bool:
    """Whether ``data`` is a password-protected OOXML file (OLE2 with ``EncryptionInfo``)."""
    return data.startswith(_OLE2_MAGIC) and _ENCRYPTION_INFO in data


def sniff_office(data: bytes) -> str | None:
    """The media type of an Office container, or None: DOCX/PPTX/XLSX from the zip's members,
    ``application/x-ooxml-encrypted`` or ``application/vnd.ms-outlook`` for OLE2 files."""
    if data.startswith(_OLE2_MAGIC):
        if is_encrypted_ooxml(data):
            return ENCRYPTED_OOXML
        return OUTLOOK_MSG if _MSG_STREAM in data else None
    if not data.startswith(_ZIP_MAGIC):
        return None
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as zf:
            names = set(zf.namelist())
    except (zipfile.BadZipFile, ValueError, OSError, EOFError):
        return None
    for member, media_type in (
        ("word/document.xml", DOCX),
        ("ppt/presentation.xml", PPTX),
        ("xl/workbook.xml", XLSX),
    ):
        if member in names:
            return media_type
    return None


def check_zip(data: bytes) -> None:
    """Raise :class:`ParseFailure` unless ``data`` is a zip that is safe to inflate.

    ``encrypted`` for password-protected OOXML, ``corrupt`` for anything not a readable zip,
    ``hostile-content`` for too many members or declared sizes past the bomb limits.
    """
    if is_encrypted_ooxml(data):
        raise ParseFailure("encrypted", "The Office file is password-protected.")
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as zf:
            infos = zf.infolist()
    except (zipfile.BadZipFile, ValueError, OSError, EOFError) as exc:
        raise ParseFailure("corrupt", "The Office file is not a readable zip container.") from exc
    if len(infos) > _MAX_MEMBERS:
        raise ParseFailure("hostile-content", "The Office zip has too many members.")
    total = sum(info.file_size for info in infos)
    if total > MAX_UNCOMPRESSED:
        raise ParseFailure("hostile-content", "The Office zip inflates past the size limit.")
    if total > _RATIO_FLOOR and total > MAX_RATIO * max(len(data), 1):
        raise ParseFailure("hostile-content", "The Office zip has a zip-bomb compression ratio.")


def _dt(value: object) -> datetime | None:
    """A core-properties date; OOXML stores them in UTC, some readers return them naive."""
    if not isinstance(value, datetime):
        return None
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


@dataclass
class _Out:
    """Elements and banners collected by one parse, with the heading stack for section paths."""

    elements: list[ParsedElement] = field(default_factory=list)
    banners: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    stack: list[tuple[int, str, int]] = field(default_factory=list)  # level, text, index

    def add(self, element: ParsedElement) -> int:
        self.elements.append(element)
        return len(self.elements) - 1

    def heading(self, text: str, level: int, locator: dict[str, Any] | None = None) -> None:
        while self.stack and self.stack[-1][0] >= level:
            self.stack.pop()
        index = self.add(
            ParsedElement(
                type=ElementType.TITLE,
                text=text,
                heading_level=level,
                section_path=self.path(),
                locator=locator or {},
                parent=self.stack[-1][2] if self.stack else None,
            )
        )
        self.stack.append((level, text, index))

    def path(self) -> tuple[str, ...]:
        return tuple(text for _, text, _ in self.stack)

    def parent(self) -> int | None:
        return self.stack[-1][2] if self.stack else None

    def take(self, extras: OoxmlExtras) -> None:
        """Add what the extra parts yielded (their banner lines to ``banners``)."""
        self.banner_text("\n".join(extras.header_lines))
        for element in extras.elements:
            self.add(element)
        self.warnings.extend(w for w in extras.warnings if w not in self.warnings)

    def banner_text(self, text: str) -> None:
        """Record the banner lines of header/footer text (the element keeps the text too)."""
        for line in text.splitlines():
            if is_banner_line(line) and line.strip() not in self.banners:
                self.banners.append(line.strip())


def _table_text(cells: Iterable[TableCell]) -> tuple[str, str]:
    """Plain text (a line per row, `` | `` between cells) and HTML of a table's cells."""
    rows: dict[int, list[TableCell]] = {}
    for cell in cells:
        rows.setdefault(cell.row, []).append(cell)
    lines: list[str] = []
    parts = ["<table>"]
    for r in sorted(rows):
        row = sorted(rows[r], key=lambda c: c.col)
        lines.append(" | ".join(c.text.replace("\n", " ") for c in row))
        parts.append("<tr>")
        for c in row:
            tag = "th" if c.is_header else "td"
            attrs = ""
            if c.row_span > 1:
                attrs += f' rowspan="{c.row_span}"'
            if c.col_span > 1:
                attrs += f' colspan="{c.col_span}"'
            body = html.escape(c.text).replace("\n", "<br>")
            parts.append(f"<{tag}{attrs}>{body}</{tag}>")
        parts.append("</tr>")
    parts.append("</table>")
    return "\n".join(lines), "".join(parts)


def _table_element(
    cells: list[TableCell], locator: dict[str, Any], out: _Out
) -> ParsedElement | None:
    text, text_html = _table_text(cells)
    if not text.strip(" |\n"):
        return None
    return ParsedElement(
        type=ElementType.TABLE,
        text=text,
        text_html=text_html,
        table_cells=tuple(cells),
        section_path=out.path(),
        locator=locator,
        parent=out.parent(),
    )


def _fail_from(exc: Exception, what: str) -> ParseFailure:
    return ParseFailure("corrupt", f"The {what} file could not be read ({type(exc).__name__}).")


# -- DOCX ----------------------------------------------------------------------------------------

_W_NS = "http://schemas.openxmlformats.org/wordprocessingml/2006/main"
_W_P = f"{{{_W_NS}}}p"
_W_TC = f"{{{_W_NS}}}tc"


def _docx_heading_level(style_name: str) -> int | None:
    if style_name == "Title":
        return 1
    if style_name.startswith("Heading "):
        tail = style_name.removeprefix("Heading ").strip()
        if tail.isdigit():
            return max(1, min(int(tail), 9))
    return None


def _docx_is_list(paragraph: Any) -> bool:
    ppr = paragraph._p.pPr
    if ppr is not None and ppr.numPr is not None:
        return True
    style = paragraph.style
    if style is None:
        return False
    if str(style.name or "").startswith("List"):
        return True
    sppr = style.element.pPr
    return sppr is not None and sppr.numPr is not None


def _docx_table_cells(tbl: Any, parent: Any) -> list[TableCell]:
    """Cells of a ``w:tbl`` with grid spans and vertical merges resolved to spans."""
    from docx.oxml.ns import qn

    cells: list[TableCell] = []
    origin: dict[int, int] = {}  # grid column -> index in cells of the cell a vMerge continues
    for r, tr in enumerate(tbl.tr_lst):
        header = tr.trPr is not None and tr.trPr.find(qn("w:tblHeader")) is not None
        col = tr.grid_before
        for tc in tr.tc_lst:
            span = tc.grid_span
            if tc.vMerge == "continue" and col in origin:
                i = origin[col]
                cells[i] = cells[i].model_copy(update={"row_span": cells[i].row_span + 1})
            else:
                text = docx_cell_text(tc).strip()
                cells.append(TableCell(row=r, col=col, text=text, col_span=span, is_header=header))
                if tc.vMerge == "restart":
                    origin[col] = len(cells) - 1
                else:
                    origin.pop(col, None)
            col += span
    return cells


def _docx_header_footers(doc: Any, out: _Out, *, footer: bool) -> None:
    seen: set[str] = set()
    kind = ElementType.FOOTER if footer else ElementType.HEADER
    for number, section in enumerate(doc.sections, 1):
        if footer:
            parts = [section.footer, section.first_page_footer, section.even_page_footer]
        else:
            parts = [section.header, section.first_page_header, section.even_page_header]
        for part in parts:
            if part.is_linked_to_previous:
                continue
            lines = [docx_text(p) for p in docx_blocks(part._element) if p.tag == _W_P]
            for tbl in (b for b in docx_blocks(part._element) if b.tag != _W_P):
                lines.extend(docx_cell_text(tc) for tc in tbl.iter(_W_TC))
            text = "\n".join(line.strip() for line in lines if line.strip())
            if not text or text in seen:
                continue
            seen.add(text)
            out.banner_text(text)
            out.add(ParsedElement(type=kind, text=text, locator={"section": number}))


def _docx_body(doc: Any, out: _Out) -> None:
    from docx.oxml.ns import qn
    from docx.text.paragraph import Paragraph

    items: list[tuple[str, Any]] = []
    texts: dict[int, str] = {}
    for child in docx_blocks(doc.element.body):
        if child.tag == qn("w:p"):
            paragraph = Paragraph(child, doc)
            text = docx_text(child)
            if text.strip():
                texts[len(items)] = text
                items.append(("p", paragraph))
        elif child.tag == qn("w:tbl"):
            items.append(("t", child))

    # Banner lines at the very top and bottom of the body are the document's banners.
    first_text: dict[int, str] = {}
    if items and items[0][0] == "p":
        banners, rest = split_banner_lines(texts[0])
        out.banners.extend(b for b in banners if b not in out.banners)
        first_text[0] = rest
    if items and items[-1][0] == "p":
        last = len(items) - 1
        banners, rest = split_banner_lines(first_text.get(last, texts[last]), from_end=True)
        out.banners.extend(b for b in banners if b not in out.banners)
        first_text[last] = rest

    for i, (kind, item) in enumerate(items):
        if kind == "t":
            element = _docx_table_element(item, doc, out)
            if element is not None:
                out.add(element)
            continue
        text = first_text.get(i, texts[i]).strip()
        if not text:
            continue
        style_name = str(item.style.name or "") if item.style is not None else ""
        level = _docx_heading_level(style_name)
        if level is not None:
            out.heading(text, level)
            continue
        links = tuple(h.address for h in item.hyperlinks if h.address)
        out.add(
            ParsedElement(
                type=ElementType.LIST_ITEM if _docx_is_list(item) else ElementType.NARRATIVE_TEXT,
                text=text,
                section_path=out.path(),
                parent=out.parent(),
                links=links,
            )
        )


def _docx_table_element(tbl: Any, doc: Any, out: _Out) -> ParsedElement | None:
    return _table_element(_docx_table_cells(tbl, doc), {}, out)


@register_parser(DOCX, libraries=("docx",))
def parse_docx(data: bytes, ctx: ParseContext) -> ParsedDocument:
    """DOCX: body in reading order, headings with section paths, lists, tables, headers/footers."""
    check_zip(data)
    import docx

    try:
        doc = docx.Document(io.BytesIO(data))
        out = _Out()
        _docx_header_footers(doc, out, footer=False)
        _docx_body(doc, out)
        _docx_header_footers(doc, out, footer=True)
        out.take(docx_extras(data))
        props = doc.core_properties
        title, author = props.title or None, props.author or None
        created, modified = _dt(props.created), _dt(props.modified)
    except ParseFailure:
        raise
    except Exception as exc:  # python-docx raises KeyError, ValueError, lxml errors...
        raise _fail_from(exc, "DOCX") from exc
    return ParsedDocument(
        media_type=DOCX,
        elements=tuple(out.elements),
        title=title,
        author=author,
        created=created,
        modified=modified,
        banners=tuple(out.banners),
        extraction=Extraction(
            method="native", parser="garrison.office", parser_version=library_version("python-docx")
        ),
        warnings=tuple(out.warnings),
    )


# -- PPTX ----------------------------------------------------------------------------------------


def _pptx_shapes(shapes: Iterable[Any]) -> Iterator[Any]:
    from pptx.enum.shapes import MSO_SHAPE_TYPE

    for shape in shapes:
        if shape.shape_type == MSO_SHAPE_TYPE.GROUP:
            yield from _pptx_shapes(shape.shapes)
        else:
            yield shape


def _pptx_is_title(shape: Any) -> bool:
    from pptx.enum.shapes import PP_PLACEHOLDER

    if not shape.is_placeholder:
        return False
    kind = shape.placeholder_format.type
    return kind in (PP_PLACEHOLDER.TITLE, PP_PLACEHOLDER.CENTER_TITLE)


def _pptx_is_body(shape: Any) -> bool:
    from pptx.enum.shapes import PP_PLACEHOLDER

    if not shape.is_placeholder:
        return False
    return shape.placeholder_format.type in (PP_PLACEHOLDER.BODY, PP_PLACEHOLDER.OBJECT)


def _pptx_bullet(paragraph: Any, body: bool) -> bool:
    """Body placeholders are bulleted unless ``a:buNone``; other text only with a bullet."""
    ppr = paragraph._p.pPr
    tags = {child.tag.rsplit("}", 1)[-1] for child in ppr} if ppr is not None else set()
    if "buNone" in tags:
        return False
    return body or bool(tags & {"buChar", "buAutoNum"}) or paragraph.level > 0


def _pptx_table_cells(table: Any) -> list[TableCell]:
    cells: list[TableCell] = []
    header = bool(table.first_row)
    for r, row in enumerate(table.rows):
        for c, cell in enumerate(row.cells):
            if cell.is_spanned:
                continue
            cells.append(
                TableCell(
                    row=r,
                    col=c,
                    text=cell.text.strip(),
                    row_span=cell.span_height if cell.is_merge_origin else 1,
                    col_span=cell.span_width if cell.is_merge_origin else 1,
                    is_header=header and r == 0,
                )
            )
    return cells


def _pptx_slide(slide: Any, n: int, out: _Out) -> None:
    loc = {"slide": n}
    for shape in _pptx_shapes(slide.shapes):
        if getattr(shape, "has_table", False) and shape.has_table:
            element = _table_element(_pptx_table_cells(shape.table), dict(loc), out)
            if element is not None:
                out.add(element)
            continue
        if not getattr(shape, "has_text_frame", False) or not shape.has_text_frame:
            continue
        if _pptx_is_title(shape):
            text = shape.text_frame.text.strip()
            if text:
                out.heading(" ".join(text.split()), 1, dict(loc))
            continue
        body = _pptx_is_body(shape)
        for paragraph in shape.text_frame.paragraphs:
            text = paragraph.text.strip()
            if not text:
                continue
            if is_banner_line(text):
                if text not in out.banners:
                    out.banners.append(text)
                continue
            kind = ElementType.LIST_ITEM if _pptx_bullet(paragraph, body) else None
            out.add(
                ParsedElement(
                    type=kind or ElementType.NARRATIVE_TEXT,
                    text=text,
                    section_path=out.path(),
                    parent=out.parent(),
                    locator=dict(loc),
                )
            )
    if slide.has_notes_slide:
        notes = slide.notes_slide.notes_text_frame
        text = notes.text.strip() if notes is not None else ""
        if text:
            out.add(
                ParsedElement(
                    type=ElementType.NARRATIVE_TEXT,
                    text=text,
                    section_path=out.path(),
                    parent=out.parent(),
                    locator={"slide": n, "part": "notes"},
                )
            )


@register_parser(PPTX, libraries=("pptx",))
def parse_pptx(data: bytes, ctx: ParseContext) -> ParsedDocument:
    """PPTX: per slide, title -> Title, text -> NarrativeText/ListItem, tables, speaker notes."""
    check_zip(data)
    from pptx import Presentation

    try:
        prs = Presentation(io.BytesIO(data))
        out = _Out()
        for n, slide in enumerate(prs.slides, 1):
            out.stack.clear()  # a slide's title does not head the next slide
            _pptx_slide(slide, n, out)
        out.take(pptx_extras(data))
        props = prs.core_properties
        title, author = props.title or None, props.author or None
        created, modified = _dt(props.created), _dt(props.modified)
    except ParseFailure:
        raise
    except Exception as exc:  # python-pptx raises KeyError, ValueError, lxml errors...
        raise _fail_from(exc, "PPTX") from exc
    return ParsedDocument(
        media_type=PPTX,
        elements=tuple(out.elements),
        title=title,
        author=author,
        created=created,
        modified=modified,
        banners=tuple(out.banners),
        extraction=Extraction(
            method="native", parser="garrison.office", parser_version=library_version("python-pptx")
        ),
        warnings=tuple(out.warnings),
    )


# -- XLSX ----------------------------------------------------------------------------------------


def _cell_text(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, datetime | date | time):
        return value.isoformat()
    if isinstance(value, float) and value.is_integer() and abs(value) < 1e15:
        return str(int(value))
    return str(value).strip()


def _column_letter(index: int) -> str:
    letters = ""
    index += 1
    while index:
        index, rem = divmod(index - 1, 26)
        letters = chr(65 + rem) + letters
    return letters


def _header_keys(row: list[object]) -> list[str] | None:
    """Record keys from a header row: all cells non-empty text, none a number or date."""
    if not row or any(not isinstance(v, str) or not v.strip() for v in row):
        return None
    keys: list[str] = []
    for v in row:
        key = str(v).strip()
        base, n = key, 2
        while key in keys:
            key, n = f"{base}_{n}", n + 1
        keys.append(key)
    return keys


class _Budget:
    def __init__(self) -> None:
        self.cells = 0
        self.scanned = 0

    def scan(self, n: int) -> None:
        self.scanned += n
        if self.scanned > _MAX_XLSX_SCANNED:
            raise ParseFailure("too-large", "The workbook's sheets are too large to read.")

    def take(self, n: int) -> None:
        self.cells += n
        if self.cells > MAX_XLSX_CELLS:
            raise ParseFailure("too-large", "The workbook has more cells than the parse limit.")


def _xlsx_regions(ws: Any, budget: _Budget) -> Iterator[list[tuple[int, list[object]]]]:
    """Runs of non-empty rows (1-based row number, values), separated by empty rows."""
    region: list[tuple[int, list[object]]] = []
    for r, values in enumerate(ws.iter_rows(values_only=True), 1):
        budget.scan(len(values))
        row = list(values)
        if any(v is not None and _cell_text(v) for v in row):
            region.append((r, row))
        elif region:
            yield region
            region = []
    if region:
        yield region


def _row_banner(row: list[object]) -> str | None:
    texts = [_cell_text(v) for v in row if v is not None and _cell_text(v)]
    if len(texts) == 1 and is_banner_line(texts[0]):
        return texts[0]
    return None


def _peel_banner_rows(
    region: list[tuple[int, list[object]]], out: _Out
) -> list[tuple[int, list[object]]]:
    rows = list(region)
    found: list[str] = []
    while rows and (banner := _row_banner(rows[0][1])) is not None:
        found.append(banner)
        rows.pop(0)
    while rows and (banner := _row_banner(rows[-1][1])) is not None:
        found.append(banner)
        rows.pop()
    for banner in found:
        if banner not in out.banners:
            out.banners.append(banner)
    return rows


def _xlsx_region(
    sheet: str,
    region: list[tuple[int, list[object]]],
    out: _Out,
    budget: _Budget,
    mark_column: str | None = None,
) -> bool:
    """Add a region's Table and Records; whether its header holds ``mark_column``.

    Banner rows (one non-empty cell holding a banner line) at the top or bottom of the region
    are the sheet's banners, not data."""
    region = _peel_banner_rows(region, out)
    if not region:
        return False
    used = [i for _, row in region for i, v in enumerate(row) if v is not None and _cell_text(v)]
    lo, hi = min(used), max(used) + 1
    rows = [(r, (row + [None] * hi)[lo:hi]) for r, row in region]
    budget.take(len(rows) * (hi - lo))
    keys = _header_keys(rows[0][1]) if len(rows) > 1 else None
    mark_at = keys.index(mark_column) if keys and mark_column in keys else None
    first, last = rows[0][0], rows[-1][0]
    parent: int | None = None
    if mark_at is None:
        cells = [
            TableCell(
                row=r - 1, col=lo + c, text=_cell_text(v), is_header=keys is not None and i == 0
            )
            for i, (r, row) in enumerate(rows)
            for c, v in enumerate(row)
            if v is not None and _cell_text(v)
        ]
        ref = f"{_column_letter(lo)}{first}:{_column_letter(hi - 1)}{last}"
        table = _table_element(cells, {"sheet": sheet, "range": ref}, out)
        if table is None:
            return False
        parent = out.add(table)
    # With a marking column each row is marked on its own: no Table element joins the rows.
    names = keys or [_column_letter(lo + c) for c in range(hi - lo)]
    for r, row in rows[1:] if keys else rows:
        fields = {
            name: v
            for i, (name, v) in enumerate(zip(names, row, strict=True))
            if v is not None and i != mark_at
        }
        declared = None
        if mark_at is not None:
            declared = " ".join(_cell_text(row[mark_at]).split())
        if not fields and mark_at is None:
            continue
        text = " | ".join(f"{k}: {_cell_text(v)}" for k, v in fields.items())
        row_cells = tuple(
            TableCell(row=r - 1, col=lo + c, text=_cell_text(v))
            for c, v in enumerate(row)
            if c != mark_at and v is not None and _cell_text(v)
        )
        out.add(
            ParsedElement(
                type=ElementType.RECORD,
                text=text,
                fields=fields,
                table_cells=row_cells if mark_at is not None else (),
                locator={"sheet": sheet, "row": r},
                parent=parent,
                declared_marking=declared,
            )
        )
    return mark_at is not None


@register_parser(XLSX, libraries=("openpyxl",))
def parse_xlsx(data: bytes, ctx: ParseContext) -> ParsedDocument:
    """XLSX: per sheet, a Table per block of rows, and a Record per row keyed by its header;
    headers, footers, comments and drawing text as their own elements."""
    check_zip(data)
    import openpyxl  # type: ignore[import-untyped]

    mark_column = ctx.options.get("marking_column") or None
    out = _Out()
    budget = _Budget()
    found_column = False
    try:
        wb = openpyxl.load_workbook(io.BytesIO(data), read_only=True, data_only=True)
        try:
            for ws in wb.worksheets:
                for region in _xlsx_regions(ws, budget):
                    found_column |= _xlsx_region(
                        str(ws.title),
                        region,
                        out,
                        budget,
                        str(mark_column) if mark_column else None,
                    )
            props = wb.properties
            title, author = props.title or None, props.creator or None
            created, modified = _dt(props.created), _dt(props.modified)
        finally:
            wb.close()
        out.take(xlsx_extras(data))
    except ParseFailure:
        raise
    except Exception as exc:  # openpyxl raises KeyError, ValueError, TypeError, lxml errors...
        raise _fail_from(exc, "XLSX") from exc
    if mark_column and not found_column:
        raise ParseFailure(
            "corrupt",
            f"no sheet has a header with marking column {mark_column!r} (--marking-column)",
        )
    return ParsedDocument(
        media_type=XLSX,
        elements=tuple(out.elements),
        title=title,
        author=author,
        created=created,
        modified=modified,
        banners=tuple(out.banners),
        extraction=Extraction(
            method="native", parser="garrison.office", parser_version=library_version("openpyxl")
        ),
        warnings=tuple(out.warnings),
    )


@register_parser(ENCRYPTED_OOXML)
def parse_encrypted_ooxml(data: bytes, ctx: ParseContext) -> ParsedDocument:
    """Password-protected OOXML cannot be read: always ``ParseFailure("encrypted")``."""
    raise ParseFailure("encrypted", "The Office file is password-protected; supply it unlocked.")
