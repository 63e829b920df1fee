"""PDF structure: ordered lines become elements (headers, footers, titles, tables, lists,
paragraphs); banner lines at the top or bottom of every page go to the document's banners.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from garrison.core.records import ElementType, ParsedElement
from garrison.parse._pdf_layout import (
    _bbox,
    _continues,
    _find_tables,
    _is_list_start,
    _join,
    _Page,
    _table_text,
)
from garrison.parse.office import is_banner_line

#: Top and bottom lines of a page examined as banner/header/footer candidates.
_MARGIN_LINES = 3


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


def _margins(pages: list[_Page], doc: _Doc) -> dict[int, dict[int, ElementType]]:
    """Header and footer lines of each page: page number -> {line index: Header/Footer}.

    The top and bottom few lines of a page qualify when they are banner lines, repeat at the
    same end of other pages (digits ignored: page numbers) or are a bare page number. Banner
    lines are recorded on ``doc`` and their text blanked, so that they are never emitted.
    """

    def norm(text: str) -> str:
        return re.sub(r"\d+", "#", text.lower()).strip()

    top: Counter[str] = Counter()
    bottom: Counter[str] = Counter()
    for page in pages:
        body = [ln for ln in page.lines if ln.text]
        top.update({norm(ln.text) for ln in body[:_MARGIN_LINES]})
        bottom.update({norm(ln.text) for ln in body[-_MARGIN_LINES:]})
    several = len(pages) >= 2
    out: dict[int, dict[int, ElementType]] = {}
    for page in pages:
        marks: dict[int, ElementType] = {}
        indices = [i for i, ln in enumerate(page.lines) if ln.text]
        for seq, kind, counter in (
            (indices[:_MARGIN_LINES], ElementType.HEADER, top),
            (list(reversed(indices[-_MARGIN_LINES:])), ElementType.FOOTER, bottom),
        ):
            for i in seq:
                text = page.lines[i].text
                if is_banner_line(text):
                    doc.banner(text.strip())
                    marks[i] = kind
                    page.lines[i].text = ""  # a banner is a marking, not content
                elif (several and counter[norm(text)] >= 2) or re.fullmatch(
                    r"(?:page\s*)?\d{1,4}(?:\s*(?:of|/)\s*\d{1,4})?", text, re.IGNORECASE
                ):
                    marks[i] = kind
                else:
                    break
        out[page.number] = marks
    return out


def _emit(pages: list[_Page], doc: _Doc) -> None:
    """Turn ordered lines into elements: headers, titles, tables, list items, paragraphs."""
    margins = _margins(pages, doc)
    weights: Counter[float] = Counter()
    for page in pages:
        for ln in page.lines:
            if ln.text:
                weights[round(ln.size * 2) / 2] += len(ln.text)
    body = weights.most_common(1)[0][0] if weights else 0.0
    heading_sizes: set[float] = set()
    for page in pages:
        for ln in page.lines:
            if ln.text and ln.size >= body * 1.2 and len(ln.text) <= 200:
                heading_sizes.add(round(ln.size * 2) / 2)
    levels = {s: min(6, k + 1) for k, s in enumerate(sorted(heading_sizes, reverse=True))}

    for page in pages:
        marks = margins[page.number]
        loc: dict[str, Any] = {"page": page.number}
        if page.method != "text":
            loc["method"] = page.method
        content = [ln for i, ln in enumerate(page.lines) if i not in marks and ln.text]
        for i, kind in sorted(marks.items()):
            ln = page.lines[i]
            if ln.text:
                doc.add(
                    ParsedElement(
                        type=kind, text=ln.text, page=page.number, bbox=_bbox([ln]), locator=loc
                    )
                )
        tables = _find_tables(content)
        i = 0
        while i < len(content):
            if i in tables:
                end, cells = tables[i]
                text, text_html = _table_text(cells)
                doc.add(
                    ParsedElement(
                        type=ElementType.TABLE,
                        text=text,
                        text_html=text_html,
                        table_cells=tuple(cells),
                        page=page.number,
                        bbox=_bbox(content[i:end]),
                        locator=loc,
                        section_path=doc.path(),
                        parent=doc.parent(),
                    )
                )
                i = end
                continue
            block = [content[i]]
            i += 1
            while i < len(content) and i not in tables and _continues(block[-1], content[i]):
                block.append(content[i])
                i += 1
            text = _join(block).strip()
            if not text:
                continue
            size = round(block[0].size * 2) / 2
            if size in levels and len(block) <= 3 and len(text) <= 200:
                level = levels[size]
                while doc.stack and doc.stack[-1][0] >= level:
                    doc.stack.pop()
                doc.add(
                    ParsedElement(
                        type=ElementType.TITLE,
                        text=text,
                        heading_level=level,
                        section_path=doc.path(),
                        page=page.number,
                        bbox=_bbox(block),
                        locator=loc,
                        parent=doc.parent(),
                    )
                )
                doc.stack.append((level, text, len(doc.elements) - 1))
                continue
            kind = ElementType.LIST_ITEM if _is_list_start(text) else ElementType.NARRATIVE_TEXT
            doc.add(
                ParsedElement(
                    type=kind,
                    text=text,
                    section_path=doc.path(),
                    page=page.number,
                    bbox=_bbox(block),
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
