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
