"""HTML parser (``lxml.html``, no network, no external resources).

Main content only: scripts, styles, templates, embedded objects and obvious navigation/footer
boilerplate are dropped. Headings become Titles with their level and section path; short
paragraphs that are entirely bold or all caps count as Titles too (filings and exported
documents often have no ``<h1>``). Tables become one Table element with cells and a clean,
rebuilt ``text_html``; links are collected per element.
"""

from __future__ import annotations

import codecs
import html as html_lib
import re
from typing import Any

from garrison.core.records import (
    ElementType,
    Extraction,
    ParsedDocument,
    ParsedElement,
    TableCell,
)
from garrison.parse._registry import ParseContext, ParseFailure, register_parser
from garrison.parse._text import decode_text, split_long_lines

__all__ = ["parse_html"]

_DROP = frozenset(
    [
        "script",
        "style",
        "noscript",
        "template",
        "iframe",
        "object",
        "embed",
        "svg",
        "math",
        "canvas",
        "nav",
        "footer",
        "button",
        "select",
        "option",
        "input",
        "textarea",
        "head",
        "frameset",
        "frame",
        "applet",
        "audio",
        "video",
    ]
)
_HEADINGS = {f"h{n}": n for n in range(1, 7)}
_BLOCKS = frozenset(
    [
        "p",
        "div",
        "section",
        "article",
        "main",
        "header",
        "aside",
        "blockquote",
        "form",
        "fieldset",
        "figure",
        "figcaption",
        "address",
        "dl",
        "dt",
        "dd",
        "center",
        "body",
        "html",
        "details",
        "summary",
        "hr",
    ]
)
_LISTS = frozenset({"ul", "ol", "menu"})
_WS = re.compile(r"[ \t\r\n\f\v\u00a0\u200b]+")
_META_CHARSET = re.compile(rb"""<meta[^>]+charset\s*=\s*["']?\s*([A-Za-z0-9_.:-]+)""", re.I)
_XML_DECL = re.compile(r"^\s*<\?xml[^>]*\?>", re.I)
_BOLD_STYLE = re.compile(r"font-weight\s*:\s*(bold|[6-9]00)", re.I)
_TITLE_MAX = 200
_BLANK_LINES = re.compile(r"\n\s*\n")


def _decode(data: bytes, max_line_chars: int) -> str:
    m = _META_CHARSET.search(data[:4096])
    if m is not None and not data.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        name = m.group(1).decode("ascii", "replace")
        try:
            codecs.lookup(name)
            text = data.decode(name)
        except (LookupError, UnicodeDecodeError):
            pass
        else:
            text = text.replace("\r\n", "\n").replace("\r", "\n")
            return split_long_lines(text, max_line_chars)
    return decode_text(data, max_line_chars)[0]


def _tag(el: Any) -> str:
    tag = el.tag
    if not isinstance(tag, str):
        return ""  # comment or processing instruction
    return tag.rsplit("}", 1)[-1].split(":")[-1].lower()


def _dropped(el: Any) -> bool:
    tag = _tag(el)
    if tag in _DROP:
        return True
    if el.get("hidden") is not None or el.get("aria-hidden") == "true":
        return True
    role = (el.get("role") or "").lower()
    if role in ("navigation", "contentinfo", "banner", "search"):
        return True
    style = (el.get("style") or "").replace(" ", "").lower()
    return "display:none" in style


def _clean(text: str) -> str:
    return "\n".join(_WS.sub(" ", part).strip() for part in text.split("\n")).strip()


class _Walker:
    def __init__(self) -> None:
        self.elements: list[ParsedElement] = []
        self.headings: list[tuple[int, str]] = []
        self.buffer: list[str] = []
        self.buffer_links: list[str] = []
        self.buffer_bold: list[bool] = []

    def section(self) -> tuple[str, ...]:
        return tuple(h for _, h in self.headings)

    # -- inline text -------------------------------------------------------------------------
    def inline(self, el: Any, out: list[str], links: list[str], bold: list[bool], b: bool) -> None:
        """Collect the text of ``el`` (and its tail is the caller's business)."""
        tag = _tag(el)
        if tag == "br":
            out.append("\n")
            return
        if not tag or _dropped(el):
            return
        if tag == "a" and el.get("href"):
            links.append(el.get("href"))
        is_bold = b or tag in ("b", "strong") or bool(_BOLD_STYLE.search(el.get("style") or ""))
        if el.text:
            out.append(el.text)
            if el.text.strip():
                bold.append(is_bold)
        for child in el:
            self.inline(child, out, links, bold, is_bold)
            if child.tail:
                out.append(child.tail)
                if child.tail.strip():
                    bold.append(is_bold)

    # -- flushing ------------------------------------------------------------------------------
    def flush(self) -> None:
        text = _clean("".join(self.buffer))
        bold = self.buffer_bold
        links = tuple(dict.fromkeys(self.buffer_links))
        self.buffer, self.buffer_links, self.buffer_bold = [], [], []
        if not text:
            return
        paragraphs = [p.strip() for p in _BLANK_LINES.split(text) if p.strip()]
        for paragraph in paragraphs:
            self.emit(paragraph, bold, links)

    def emit(self, text: str, bold: list[bool], links: tuple[str, ...]) -> None:
        letters = [c for c in text if c.isalpha()]
        short = len(text) <= _TITLE_MAX and "\n" not in text and text[-1] not in ".,;:"
        all_bold = bool(bold) and all(bold)
        all_caps = len(letters) >= 3 and all(not c.islower() for c in letters)
        if short and letters and (all_bold or all_caps):
            self.elements.append(
                ParsedElement(
                    type=ElementType.TITLE, text=text, section_path=self.section(), links=links
                )
            )
            return
        self.elements.append(
            ParsedElement(
                type=ElementType.NARRATIVE_TEXT,
                text=text,
                section_path=self.section(),
                links=links,
            )
        )

    def add_text(self, text: str | None, bold: bool) -> None:
        if text:
            self.buffer.append(text)
            if text.strip():
                self.buffer_bold.append(bold)

    # -- block walk ------------------------------------------------------------------------------
    def walk(self, el: Any, bold: bool = False) -> None:
        tag = _tag(el)
        if not tag or _dropped(el):
            return
        if tag in _HEADINGS:
            self.flush()
            self.heading(el, _HEADINGS[tag])
        elif tag in _LISTS:
            self.flush()
            for child in el:
                if _tag(child) == "li":
                    self.list_item(child)
                else:
                    self.walk(child)
                    self.flush()
        elif tag == "li":
            self.flush()
            self.list_item(el)
        elif tag == "table" and _is_layout_table(el):
            # A table used for page layout: its cells are containers, not data.
            self.flush()
            for cell in el.iter("td", "th"):
                if _nearest_table(cell) is el:
                    self.walk_container(cell, bold)
        elif tag == "table":
            self.flush()
            self.table(el)
        elif tag == "pre":
            self.flush()
            out: list[str] = []
            self.inline(el, out, [], [], False)
            code = "".join(out).strip("\n")
            if code.strip():
                self.elements.append(
                    ParsedElement(type=ElementType.CODE, text=code, section_path=self.section())
                )
        elif tag in _BLOCKS:
            self.walk_container(el, bold)
        else:
            # Inline element: its text joins the current paragraph, unless it holds blocks.
            if any(_tag(d) in _BLOCKS or _tag(d) in _HEADINGS or _tag(d) == "table" for d in el):
                self.add_text(el.text, bold)
                for child in el:
                    self.walk(child, bold)
                    self.add_text(child.tail, bold)
                return
            out = []
            bolds: list[bool] = []
            self.inline(el, out, self.buffer_links, bolds, bold)
            self.buffer.extend(out)
            self.buffer_bold.extend(bolds)

    def walk_container(self, el: Any, bold: bool) -> None:
        self.flush()
        is_bold = bold or bool(_BOLD_STYLE.search(el.get("style") or ""))
        self.add_text(el.text, is_bold)
        for child in el:
            self.walk(child, is_bold)
            self.add_text(child.tail, is_bold)
        self.flush()

    def heading(self, el: Any, level: int) -> None:
        out: list[str] = []
        links: list[str] = []
        self.inline(el, out, links, [], True)
        text = _clean("".join(out))
        if not text:
            return
        while self.headings and self.headings[-1][0] >= level:
            self.headings.pop()
        self.elements.append(
            ParsedElement(
                type=ElementType.TITLE,
                text=text,
                heading_level=level,
                section_path=self.section(),
                links=tuple(dict.fromkeys(links)),
            )
        )
        self.headings.append((level, text))

    def list_item(self, el: Any) -> None:
        out: list[str] = []
        links: list[str] = []
        nested: list[Any] = []
        if el.text:
            out.append(el.text)
        for child in el:
            if _tag(child) in _LISTS or _tag(child) == "table":
                nested.append(child)
            else:
                self.inline(child, out, links, [], False)
            if child.tail:
                out.append(child.tail)
        text = _clean("".join(out))
        if text:
            self.elements.append(
                ParsedElement(
                    type=ElementType.LIST_ITEM,
                    text=text,
                    section_path=self.section(),
                    links=tuple(dict.fromkeys(links)),
                )
            )
        for child in nested:
            self.walk(child)

    def table(self, el: Any) -> None:
        rows = [r for r in el.iter("tr") if _nearest_table(r) is el]
        cells: list[TableCell] = []
        links: list[str] = []
        occupied: set[tuple[int, int]] = set()
        for r, row in enumerate(rows):
            c = 0
            for cell in row:
                ctag = _tag(cell)
                if ctag not in ("td", "th"):
                    continue
                while (r, c) in occupied:
                    c += 1
                out: list[str] = []
                self.inline(cell, out, links, [], False)
                text = _clean("".join(out))
                row_span = _span(cell.get("rowspan"))
                col_span = _span(cell.get("colspan"))
                for dr in range(row_span):
                    for dc in range(col_span):
                        occupied.add((r + dr, c + dc))
                cells.append(
                    TableCell(
                        row=r,
                        col=c,
                        text=text,
                        row_span=row_span,
                        col_span=col_span,
                        is_header=ctag == "th",
                    )
                )
                c += col_span
        if not any(cell.text for cell in cells):
            return
        by_row: dict[int, list[TableCell]] = {}
        for cell in cells:
            by_row.setdefault(cell.row, []).append(cell)
        text = "\n".join(
            " | ".join(c.text for c in by_row[r] if c.text)
            for r in sorted(by_row)
            if any(c.text for c in by_row[r])
        )
        html_rows = []
        for r in sorted(by_row):
            parts = []
            for tc in by_row[r]:
                name = "th" if tc.is_header else "td"
                spans = (f' rowspan="{tc.row_span}"' if tc.row_span > 1 else "") + (
                    f' colspan="{tc.col_span}"' if tc.col_span > 1 else ""
                )
                parts.append(f"<{name}{spans}>{html_lib.escape(tc.text)}</{name}>")
            html_rows.append(f"<tr>{''.join(parts)}</tr>")
        self.elements.append(
            ParsedElement(
                type=ElementType.TABLE,
                text=text,
                text_html=f"<table>{''.join(html_rows)}</table>",
                table_cells=tuple(cells),
                section_path=self.section(),
                links=tuple(dict.fromkeys(links)),
            )
        )


def _nearest_table(el: Any) -> Any:
    parent = el.getparent()
    while parent is not None and _tag(parent) != "table":
        parent = parent.getparent()
    return parent


_LAYOUT_MARKERS = frozenset({"table", "ul", "ol", "h1", "h2", "h3", "h4", "h5", "h6", "pre"})
_LAYOUT_CELL_CHARS = 1000


def _is_layout_table(table: Any) -> bool:
    """A table holding headings, lists, nested tables or long prose lays out a page."""
    cells = [cell for cell in table.iter("td", "th") if _nearest_table(cell) is table]
    if len(cells) == 1:
        return True
    for cell in cells:
        if any(_tag(d) in _LAYOUT_MARKERS for d in cell.iterdescendants()):
            return True
        if len(cell.text_content()) > _LAYOUT_CELL_CHARS:
            return True
    return False


def _span(value: str | None) -> int:
    try:
        n = int((value or "1").strip())
    except ValueError:
        return 1
    return min(max(n, 1), 1000)


@register_parser("text/html", "application/xhtml+xml", libraries=("lxml.html",))
def parse_html(data: bytes, ctx: ParseContext) -> ParsedDocument:
    """Parse HTML into Title / NarrativeText / ListItem / Table / Code elements."""
    import lxml  # type: ignore[import-untyped]
    import lxml.etree  # type: ignore[import-untyped]
    import lxml.html  # type: ignore[import-untyped]

    text = _XML_DECL.sub("", _decode(data, ctx.max_line_chars), count=1)
    if not text.strip():
        raise ParseFailure("corrupt", "the HTML document is empty")
    parser = lxml.html.HTMLParser(
        remove_comments=True,
        remove_pis=True,
        no_network=True,
        default_doctype=False,
        huge_tree=False,
    )
    try:
        root = lxml.html.document_fromstring(text, parser=parser)
    except (lxml.etree.ParserError, lxml.etree.XMLSyntaxError, ValueError) as exc:
        raise ParseFailure("corrupt", "the HTML could not be parsed") from exc

    title_el = root.find(".//title")
    title = _clean(title_el.text_content()) if title_el is not None else ""
    lang = root.get("lang")

    walker = _Walker()
    body = root.find("body")
    walker.walk(body if body is not None else root)
    walker.flush()

    metadata: dict[str, Any] = {}
    if lang:
        metadata["language"] = lang
    return ParsedDocument(
        media_type="text/html",
        elements=tuple(walker.elements),
        title=title or None,
        metadata=metadata,
        extraction=Extraction(
            method="html", parser="garrison.html", parser_version=lxml.__version__
        ),
    )
