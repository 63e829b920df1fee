"""Plain text and Markdown parsers.

Plain text: blocks separated by blank lines become paragraphs; a short all-caps or title-like
first line is the Title; bulleted or numbered lines are list items. A line that starts with a
portion mark starts a new paragraph (each portion is its own element). Form feeds separate
pages (elements then carry their page); banner lines at the top and bottom of each page, and
banner-looking lines (``SECRET//NOFORN``) anywhere, go to the document's banners, never into
content. Markdown is parsed with
``markdown-it-py`` (CommonMark plus tables): headings carry their level and section path,
tables carry their cells, fenced and indented code become Code elements.
"""

from __future__ import annotations

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
from garrison.parse._banner import is_banner_line, split_banner_lines
from garrison.parse._registry import ParseContext, library_version, register_parser
from garrison.parse._text import decode_text
from garrison.security.markings import find_portion_mark, is_banner_candidate

__all__ = ["parse_markdown", "parse_text"]

_BULLET = re.compile(r"^\s*(?:[-*•◦▪‣·]|\d{1,3}[.)]|[a-zA-Z][.)])\s+")
_TITLE_MAX = 80
#: Line breaks other than LF (CR is already LF after decoding; form feed separates pages).
_OTHER_BREAKS = re.compile(r"[\v\x1c\x1d\x1e\x85\u2028\u2029]")
_SOFT_BREAK = "\x00softbreak\x00"
_SMALL_WORDS = frozenset(
    [
        "a",
        "an",
        "and",
        "as",
        "at",
        "but",
        "by",
        "for",
        "from",
        "in",
        "of",
        "on",
        "or",
        "the",
        "to",
        "with",
        "vs",
        "via",
    ]
)


def _is_title_like(line: str, *, first: bool) -> bool:
    s = line.strip()
    if not s or len(s) > _TITLE_MAX or s[-1] in ".,;:!?" or _BULLET.match(s):
        return False
    if is_banner_line(s):  # "SECRET//NOFORN" is a banner, never a heading or a section name
        return False
    letters = [c for c in s if c.isalpha()]
    if len(letters) < 2:
        return False
    if all(not c.islower() for c in letters):
        return True
    if not first:
        return False
    words = [w for w in re.split(r"\s+", s) if any(c.isalpha() for c in w)]
    if not words or len(words) > 12:
        return False
    capitalized = sum(
        1 for w in words if w[0].isupper() or not w[0].isalpha() or w.lower() in _SMALL_WORDS
    )
    return capitalized == len(words) and words[0][0].isupper()


_Line = tuple[int, int, str]  # line number, page, text
_Segment = tuple[int, int, str, list[str]]  # first line, page, "para" | "item", lines


def _pages(text: str) -> tuple[list[_Line], list[str], int]:
    """Number the lines across form-feed pages and take out banner lines: ``(lines, banners,
    pages)``. A banner line leaves a blank line behind, so it ends the paragraph it was in."""
    lines: list[_Line] = []
    banners: list[str] = []
    pages = text.split("\f")
    lineno = 1
    for page_no, page in enumerate(pages, start=1):
        page_lines = page.split("\n")
        top, _ = split_banner_lines(page)
        bottom, _ = split_banner_lines(page, from_end=True)
        nonblank = [i for i, line in enumerate(page_lines) if line.strip()]
        edge = set(nonblank[: len(top)]) | set(nonblank[len(nonblank) - len(bottom) :])
        for i, line in enumerate(page_lines):
            if i in edge or (line.strip() and is_banner_candidate(line)):
                banners.append(line.strip())
                line = ""
            lines.append((lineno + i, page_no, line))
        lineno += len(page_lines) - 1
        lines.append((lineno, page_no, ""))  # a page break ends the paragraph
    return lines, banners, len(pages)


def _segments(lines: list[_Line]) -> list[_Segment]:
    """Split lines into ``(start line, page, "para" | "item", lines)`` segments.

    Blank lines end a paragraph. In a long block without blank lines (text copied from a web
    page or a PDF), a line much shorter than the block's width also ends the paragraph, since
    wrapped prose fills its lines. A line that starts with a portion mark starts a new one.
    """
    blocks: list[list[_Line]] = []
    current: list[_Line] = []
    for lineno, page, raw in lines:
        line = raw.rstrip()
        if line.strip():
            current.append((lineno, page, line))
        elif current:
            blocks.append(current)
            current = []
    if current:
        blocks.append(current)

    segments: list[_Segment] = []
    for block in blocks:
        width = max(len(line) for _, _, line in block)
        wrap_aware = len(block) > 3 and width >= 40
        open_para = False
        for lineno, page, line in block:
            if _BULLET.match(line):
                segments.append((lineno, page, "item", [_BULLET.sub("", line, count=1).strip()]))
            elif open_para and segments and find_portion_mark(line) is None:
                segments[-1][3].append(line.strip())
            else:
                segments.append((lineno, page, "para", [line.strip()]))
            open_para = not (wrap_aware and len(line) < 0.6 * width)
    return segments


def _bounded(segments: list[_Segment], limit: int) -> list[_Segment]:
    """Split segments whose text would exceed ``limit`` characters: no element is unbounded."""
    if limit <= 0:
        return segments
    out: list[_Segment] = []
    for lineno, page, kind, seg_lines in segments:
        body = " ".join(seg_lines)
        if len(body) <= limit:
            out.append((lineno, page, kind, seg_lines))
            continue
        out.extend(
            (lineno, page, "para", [body[start : start + limit]])
            for start in range(0, len(body), limit)
        )
    return out


@register_parser("text/plain")
def parse_text(data: bytes, ctx: ParseContext) -> ParsedDocument:
    """Parse plain text into Title / NarrativeText / ListItem elements (locator ``line``)."""
    text, encoding = decode_text(data, ctx.max_line_chars)
    lines, banners, pages = _pages(_OTHER_BREAKS.sub("\n", text))
    elements: list[ParsedElement] = []
    title: str | None = None
    section: tuple[str, ...] = ()

    segments = _bounded(_segments(lines), ctx.max_line_chars)

    for index, (lineno, page_no, kind, seg_lines) in enumerate(segments):
        body = " ".join(seg_lines)
        page = page_no if pages > 1 else None
        locator: dict[str, Any] = {"line": lineno, "page": page_no} if page else {"line": lineno}
        if kind == "item":
            elements.append(
                ParsedElement(
                    type=ElementType.LIST_ITEM,
                    text=body,
                    section_path=section,
                    page=page,
                    locator=locator,
                )
            )
            continue
        if len(seg_lines) == 1 and _is_title_like(body, first=index == 0):
            if title is None and index == 0:
                title = body
            section = (body,)
            elements.append(
                ParsedElement(type=ElementType.TITLE, text=body, page=page, locator=locator)
            )
            continue
        elements.append(
            ParsedElement(
                type=ElementType.NARRATIVE_TEXT,
                text=body,
                section_path=section,
                page=page,
                locator=locator,
            )
        )

    return ParsedDocument(
        media_type="text/plain",
        elements=tuple(elements),
        title=title,
        banners=tuple(banners),
        metadata={"encoding": encoding},
        extraction=Extraction(method="text", parser="garrison.text", parser_version="1"),
    )


def _inline_text(token: Any, links: list[str]) -> str:
    parts: list[str] = []
    for child in token.children or ():
        kind = child.type
        if kind in ("text", "code_inline", "html_inline"):
            parts.append(child.content)
        elif kind == "softbreak":
            parts.append(_SOFT_BREAK)
        elif kind == "hardbreak":
            parts.append("\n")
        elif kind == "image":
            parts.append(child.content)
        elif kind == "link_open":
            href = child.attrs.get("href")
            if isinstance(href, str) and href:
                links.append(href)
    # A soft line break reads as a space, unless the next line starts with a portion mark: then
    # it stays a line break, so that the marking rules split the paragraph there.
    first, *rest = "".join(parts).split(_SOFT_BREAK)
    text = first
    for piece in rest:
        text += ("\n" if find_portion_mark(piece) is not None else " ") + piece
    return text.strip()


def _table_element(
    tokens: list[Any], start: int, section: tuple[str, ...]
) -> tuple[ParsedElement, int]:
    cells: list[TableCell] = []
    links: list[str] = []
    row = -1
    col = 0
    header = False
    i = start + 1
    while i < len(tokens) and tokens[i].type != "table_close":
        tok = tokens[i]
        if tok.type == "tr_open":
            row += 1
            col = 0
        elif tok.type in ("th_open", "td_open"):
            header = tok.type == "th_open"
        elif tok.type == "inline":
            cells.append(
                TableCell(row=row, col=col, text=_inline_text(tok, links), is_header=header)
            )
            col += 1
        i += 1
    rows: dict[int, list[TableCell]] = {}
    for cell in cells:
        rows.setdefault(cell.row, []).append(cell)
    text = "\n".join(" | ".join(c.text for c in rows[r]) for r in sorted(rows))
    html_rows = []
    for r in sorted(rows):
        tags = "".join(
            f"<{'th' if c.is_header else 'td'}>{html_lib.escape(c.text)}"
            f"</{'th' if c.is_header else 'td'}>"
            for c in rows[r]
        )
        html_rows.append(f"<tr>{tags}</tr>")
    line = tokens[start].map[0] + 1 if tokens[start].map else None
    element = ParsedElement(
        type=ElementType.TABLE,
        text=text,
        text_html=f"<table>{''.join(html_rows)}</table>",
        table_cells=tuple(cells),
        section_path=section,
        locator={"line": line} if line else {},
        links=tuple(links),
    )
    return element, i


@register_parser("text/markdown", libraries=("markdown_it",))
def parse_markdown(data: bytes, ctx: ParseContext) -> ParsedDocument:
    """Parse Markdown (CommonMark + tables) into typed elements (locator ``line``)."""
    from markdown_it import MarkdownIt

    text, encoding = decode_text(data, ctx.max_line_chars)
    md = MarkdownIt("commonmark", {"html": False}).enable("table")
    tokens = md.parse(text)

    elements: list[ParsedElement] = []
    headings: list[tuple[int, str]] = []
    title: str | None = None
    list_depth = 0
    item_has_text: list[bool] = []

    def section() -> tuple[str, ...]:
        return tuple(h for _, h in headings)

    i = 0
    while i < len(tokens):
        tok = tokens[i]
        line = tok.map[0] + 1 if tok.map else None
        locator: dict[str, Any] = {"line": line} if line else {}
        kind = tok.type
        if kind == "heading_open":
            level = int(tok.tag[1])
            links: list[str] = []
            heading_text = _inline_text(tokens[i + 1], links)
            while headings and headings[-1][0] >= level:
                headings.pop()
            if heading_text:
                headings.append((level, heading_text))
                if title is None and level == 1:
                    title = heading_text
                elements.append(
                    ParsedElement(
                        type=ElementType.TITLE,
                        text=heading_text,
                        heading_level=level,
                        section_path=section()[:-1],
                        locator=locator,
                        links=tuple(links),
                    )
                )
            i += 3
            continue
        if kind in ("bullet_list_open", "ordered_list_open"):
            list_depth += 1
        elif kind in ("bullet_list_close", "ordered_list_close"):
            list_depth -= 1
        elif kind == "list_item_open":
            item_has_text.append(False)
        elif kind == "list_item_close":
            if item_has_text:
                item_has_text.pop()
        elif kind == "inline":
            links = []
            content = _inline_text(tok, links)
            if content:
                in_item = list_depth > 0 and bool(item_has_text)
                element_type = ElementType.NARRATIVE_TEXT
                if in_item and not item_has_text[-1]:
                    element_type = ElementType.LIST_ITEM
                    item_has_text[-1] = True
                elements.append(
                    ParsedElement(
                        type=element_type,
                        text=content,
                        section_path=section(),
                        locator=locator,
                        links=tuple(links),
                    )
                )
        elif kind in ("fence", "code_block"):
            code = tok.content.rstrip("\n")
            if code.strip():
                info = tok.info.strip().split(" ")[0] if tok.info else ""
                elements.append(
                    ParsedElement(
                        type=ElementType.CODE,
                        text=code,
                        section_path=section(),
                        locator=locator,
                        fields={"language": info} if info else {},
                    )
                )
        elif kind == "table_open":
            element, i = _table_element(tokens, i, section())
            elements.append(element)
        i += 1

    return ParsedDocument(
        media_type="text/markdown",
        elements=tuple(elements),
        title=title,
        metadata={"encoding": encoding},
        extraction=Extraction(
            method="markdown",
            parser="garrison.text",
            parser_version=library_version("markdown-it-py"),
        ),
    )
