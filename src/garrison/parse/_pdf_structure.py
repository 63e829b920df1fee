"""PDF structure: ordered lines become elements (headers, footers, titles, tables, lists,
paragraphs); banner lines at the top or bottom of every page go to the document's banners.
Which blocks are heads, and their levels, is :mod:`garrison.parse._pdf_headings`' call.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from garrison.core.records import ElementType, ParsedElement, TableCell
from garrison.parse._pdf_headings import Headings, OutlineEntry, Style, rank_levels
from garrison.parse._pdf_layout import (
    _bbox,
    _continues,
    _find_tables,
    _is_list_start,
    _join,
    _Line,
    _Page,
    _table_text,
)
from garrison.parse.office import is_banner_line

#: Top and bottom lines of a page examined as banner/header/footer candidates.
_MARGIN_LINES = 3
#: Share of the page height, at the top and at the bottom, where running lines are found.
_BAND = 0.15
_PAGE_NUMBER = re.compile(r"(?:page\s*)?\d{1,4}(?:\s*(?:of|/)\s*\d{1,4})?", re.IGNORECASE)
#: Front matter is numbered in lower-case Roman numerals (``iii``), only ever in the band.
_ROMAN_PAGE = re.compile(r"[ivxlc]{1,7}")


@dataclass
class _Doc:
    elements: list[ParsedElement] = field(default_factory=list)
    banners: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    stack: list[tuple[int, str, int]] = field(default_factory=list)  # level, text, index

    def add(self, element: ParsedElement) -> None:
        self.elements.append(element)

    def path(self) -> tuple[str, ...]:
        return tuple(text for _, text, _ in self.stack)

    def parent(self) -> int | None:
        return self.stack[-1][2] if self.stack else None

    def banner(self, text: str) -> None:
        if text not in self.banners:
            self.banners.append(text)


def _norm_margin(text: str) -> str:
    return re.sub(r"\d+", "#", text.lower()).strip()


def _margins(pages: list[_Page], doc: _Doc) -> dict[int, dict[int, ElementType]]:
    """Header and footer lines of each page: page number -> {line index: Header/Footer}.

    The top and bottom few lines of a page qualify, from the edge inwards, when they are
    banner lines, bare page numbers, or running lines: in the outer band of the page
    (:data:`_BAND` of its height) and repeating there, digits ignored (page numbers), on most
    pages -- or, set apart from the body by a gap, on at least two (a book's running head
    names the chapter, which changes). Banner lines are recorded on ``doc`` and their text
    blanked, so that they are never emitted.

    Banners are looked for first, on a walk of their own that steps over any line repeating
    at that end of another page: which lines are banners never depends on the header rules.
    """
    top: Counter[str] = Counter()
    bottom: Counter[str] = Counter()
    for page in pages:
        body = [ln for ln in page.lines if ln.text]
        top.update({_norm_margin(ln.text) for ln in body[:_MARGIN_LINES]})
        bottom.update({_norm_margin(ln.text) for ln in body[-_MARGIN_LINES:]})
    several = len(pages) >= 2
    most = max(2, (len(pages) + 1) // 2)
    out: dict[int, dict[int, ElementType]] = {}
    for page in pages:
        marks: dict[int, ElementType] = {}
        indices = [i for i, ln in enumerate(page.lines) if ln.text]
        ends = (
            (indices[:_MARGIN_LINES], ElementType.HEADER, top),
            (list(reversed(indices[-_MARGIN_LINES:])), ElementType.FOOTER, bottom),
        )
        banners: set[int] = set()
        for seq, kind, counter in ends:
            for i in seq:
                text = page.lines[i].text
                if i in banners:  # blanked by the walk from the other end
                    break
                if is_banner_line(text):
                    doc.banner(text.strip())
                    banners.add(i)
                    marks[i] = kind
                elif not (
                    (several and counter[_norm_margin(text)] >= 2) or _PAGE_NUMBER.fullmatch(text)
                ):
                    break
        for i in banners:
            page.lines[i].text = ""  # a banner is a marking, not content
        for seq, kind, counter in ends:
            for k, i in enumerate(seq):
                line = page.lines[i]
                if i in banners:
                    continue
                if _running(page, seq, k, kind, counter[_norm_margin(line.text)], most):
                    marks[i] = kind
                    continue
                break
        out[page.number] = marks
    return out


def _running(page: _Page, seq: list[int], k: int, kind: ElementType, count: int, most: int) -> bool:
    """Whether the ``k``-th line from the page's edge (``seq``) is a running header/footer."""
    line = page.lines[seq[k]]
    band = _BAND * page.height
    centre = (line.y0 + line.y1) / 2
    in_band = centre >= page.height - band if kind is ElementType.HEADER else centre <= band
    if _PAGE_NUMBER.fullmatch(line.text) or (in_band and _ROMAN_PAGE.fullmatch(line.text)):
        return True
    inner = page.lines[seq[k + 1]] if k + 1 < len(seq) else None
    apart = k == 0 and inner is not None and _gap(line, inner) > 0.8 * line.size
    return in_band and (count >= most or (count >= 2 and apart))


def _gap(a: _Line, b: _Line) -> float:
    """Vertical white space between two lines."""
    return max(b.y0 - a.y1, a.y0 - b.y1)


@dataclass(slots=True)
class _Item:
    """One element to be, with what its kind and level depend on."""

    page: _Page
    lines: list[_Line]
    text: str
    cells: list[TableCell] | None = None
    kind: ElementType = ElementType.NARRATIVE_TEXT
    level: int | None = None  # from the outline
    style: Style | None = None  # a head's style (of an outline head: how it looks)


def _blocks(page: _Page, content: list[_Line], heads: Headings) -> list[_Item]:
    """A page's content lines as tables and blocks; outline heads always stand alone."""
    tables = _find_tables(content)
    outline = heads.find_outline(page.number, content)
    starts = set(outline) | {end for end, _ in outline.values()}
    items: list[_Item] = []
    i = 0
    while i < len(content):
        if i in tables and not any(i <= s < tables[i][0] for s in outline):
            end, cells = tables[i]
            text, _ = _table_text(cells)
            items.append(_Item(page, content[i:end], text, cells, ElementType.TABLE))
            i = end
            continue
        start = i
        if start in outline:  # the lines the outline names, whatever their style
            end, level = outline[start]
            block = content[start:end]
            text = _join(block).strip()
            look = heads.look(block)
            items.append(_Item(page, block, text, None, ElementType.TITLE, level, look))
            i = end
            continue
        block = [content[i]]
        i += 1
        while (
            i < len(content)
            and i not in tables
            and i not in starts
            and _continues(block[-1], content[i])
        ):
            block.append(content[i])
            i += 1
        text = _join(block).strip()
        if not text:
            continue
        item = _Item(page, block, text, style=heads.style(block, text))
        if item.style is not None:
            item.kind = ElementType.TITLE
        elif _is_list_start(text):
            item.kind = ElementType.LIST_ITEM
        items.append(item)
    return items


def _emit(pages: list[_Page], doc: _Doc, outline: Sequence[OutlineEntry] = ()) -> None:
    """Turn ordered lines into elements: headers, titles, tables, list items, paragraphs.

    ``outline`` (the PDF's bookmarks, when they are used) marks the heads it names; other heads
    come from size, weight and numbering (:mod:`garrison.parse._pdf_headings`).
    """
    margins = _margins(pages, doc)
    heads = Headings(pages, list(outline))
    per_page: list[tuple[_Page, list[_Item]]] = []
    for page in pages:
        marks = margins[page.number]
        edge = [
            _Item(page, [page.lines[i]], page.lines[i].text, kind=kind)
            for i, kind in sorted(marks.items())
            if page.lines[i].text
        ]
        content = [ln for i, ln in enumerate(page.lines) if i not in marks and ln.text]
        per_page.append((page, edge + _blocks(page, content, heads)))
    # Heads the outline named give their level to heads in the same style it missed, and
    # place the other styles below them.
    named: dict[Style, Counter[int]] = {}
    styles: set[Style] = set()
    for _, items in per_page:
        for it in items:
            if it.style is not None and it.level is not None:
                named.setdefault(it.style, Counter())[it.level] += 1
            elif it.style is not None:
                styles.add(it.style)
    levels = rank_levels(styles, {style: got.most_common(1)[0][0] for style, got in named.items()})

    for page, items in per_page:
        loc: dict[str, Any] = {"page": page.number}
        if page.method != "text":
            loc["method"] = page.method
        for it in items:
            box = _bbox(it.lines)
            if it.kind in (ElementType.HEADER, ElementType.FOOTER):
                doc.add(
                    ParsedElement(
                        type=it.kind, text=it.text, page=page.number, bbox=box, locator=loc
                    )
                )
                continue
            if it.kind is ElementType.TABLE and it.cells is not None:
                text, text_html = _table_text(it.cells)
                doc.add(
                    ParsedElement(
                        type=ElementType.TABLE,
                        text=text,
                        text_html=text_html,
                        table_cells=tuple(it.cells),
                        page=page.number,
                        bbox=box,
                        locator=loc,
                        section_path=doc.path(),
                        parent=doc.parent(),
                    )
                )
                continue
            if it.kind is ElementType.TITLE:
                level = it.level if it.level is not None else levels[it.style] if it.style else 1
                while doc.stack and doc.stack[-1][0] >= level:
                    doc.stack.pop()
                doc.add(
                    ParsedElement(
                        type=ElementType.TITLE,
                        text=it.text,
                        heading_level=level,
                        section_path=doc.path(),
                        page=page.number,
                        bbox=box,
                        locator=loc,
                        parent=doc.parent(),
                    )
                )
                doc.stack.append((level, it.text, len(doc.elements) - 1))
                continue
            doc.add(
                ParsedElement(
                    type=it.kind,
                    text=it.text,
                    section_path=doc.path(),
                    page=page.number,
                    bbox=box,
                    locator=loc,
                    parent=doc.parent(),
                )
            )


# -- annotations and form fields -----------------------------------------------------------------

#: Annotation kinds whose ``/Contents`` a reader sees as a note (widgets are form fields, read
#: from the form; links and the like carry no text of their own).
_NOTE_KINDS = {
    "TEXT": "Text",
    "FREETEXT": "FreeText",
    "POPUP": "Popup",
    "HIGHLIGHT": "Highlight",
    "UNDERLINE": "Underline",
    "SQUIGGLY": "Squiggly",
    "STRIKEOUT": "StrikeOut",
    "SQUARE": "Square",
    "CIRCLE": "Circle",
    "LINE": "Line",
    "POLYGON": "Polygon",
    "POLYLINE": "PolyLine",
    "INK": "Ink",
    "STAMP": "Stamp",
    "CARET": "Caret",
    "FILEATTACHMENT": "FileAttachment",
    "SOUND": "Sound",
    "REDACT": "Redact",
}
#: Annotations read per page at most (a hostile file may hold millions).
_MAX_ANNOTS = 10_000


def _annot_string(raw: Any, annot: Any, key: bytes) -> str:
    import ctypes

    size = raw.FPDFAnnot_GetStringValue(annot, key, None, 0)
    if size <= 2:
        return ""
    buf = ctypes.create_string_buffer(size)
    raw.FPDFAnnot_GetStringValue(annot, key, ctypes.cast(buf, ctypes.POINTER(raw.FPDF_WCHAR)), size)
    return buf.raw[: size - 2].decode("utf-16-le", errors="replace").strip()


def page_annotations(page: Any, raw: Any, number: int) -> tuple[list[ParsedElement], bool]:
    """Note annotations of a page as elements, and whether the page has form widgets."""
    kinds = {
        getattr(raw, f"FPDF_ANNOT_{name}"): label
        for name, label in _NOTE_KINDS.items()
        if hasattr(raw, f"FPDF_ANNOT_{name}")
    }
    widget = getattr(raw, "FPDF_ANNOT_WIDGET", 20)
    found: list[ParsedElement] = []
    seen: set[str] = set()
    has_widgets = False
    for i in range(min(raw.FPDFPage_GetAnnotCount(page.raw), _MAX_ANNOTS)):
        annot = raw.FPDFPage_GetAnnot(page.raw, i)
        if not annot:
            continue
        try:
            subtype = raw.FPDFAnnot_GetSubtype(annot)
            if subtype == widget:
                # A field merged with its widget holds its value here; a field whose value
                # sits in a parent node is read from the form (:func:`form_fields`).
                has_widgets = True
                value = _annot_string(raw, annot, b"V")
                name = _annot_string(raw, annot, b"T")
                if value and value not in seen:
                    seen.add(value)
                    found.append(_field_element(name, value, number))
                continue
            text = _annot_string(raw, annot, b"Contents")
        finally:
            raw.FPDFPage_CloseAnnot(annot)
        if not text or text in seen:
            continue
        seen.add(text)
        label = kinds.get(subtype, "Other")
        found.append(
            ParsedElement(
                type=ElementType.NARRATIVE_TEXT,
                text=text,
                page=number,
                locator={"page": number, "part": "annotation", "subtype": label},
            )
        )
    return found, has_widgets


def _field_element(name: str, value: str, page: int | None = None) -> ParsedElement:
    locator: dict[str, Any] = {"part": "form-field", "field": name}
    if page is not None:
        locator["page"] = page
    return ParsedElement(
        type=ElementType.KEY_VALUE,
        text=value,
        page=page,
        fields={"field": name, "value": value},
        locator=locator,
    )


def _field_values(value: Any) -> list[str]:
    from pypdf.generic import ArrayObject, NameObject

    if isinstance(value, NameObject):  # a check box or radio state (/Yes, /Off): no text
        return []
    if isinstance(value, ArrayObject | list | tuple):
        return [v for item in value for v in _field_values(item)]
    text = str(value).strip() if value is not None else ""
    return [text] if text else []


def form_fields(data: bytes, known: set[str]) -> tuple[list[ParsedElement], list[str]]:
    """Each filled-in form field value not in ``known`` as a KeyValue element; warnings for
    what cannot be read."""
    import io
    import warnings

    from pypdf import PdfReader

    elements: list[ParsedElement] = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            reader = PdfReader(io.BytesIO(data), strict=False)
            if reader.is_encrypted:
                reader.decrypt("")
            fields = reader.get_fields() or {}
            for name, field_ in fields.items():
                for value in _field_values(field_.get("/V")):
                    if value not in known:
                        known.add(value)
                        elements.append(_field_element(str(name), value))
        except RecursionError:
            return elements, ["unreadable-content: form fields (nested without end)"]
        except Exception as exc:  # pypdf raises many types on broken forms
            return elements, [f"unreadable-content: form fields ({type(exc).__name__})"]
    return elements, []
