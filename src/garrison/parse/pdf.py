"""PDF parser: pypdfium2 for text and layout, pypdf only for the active-content scan.

Text comes from PDFium's text page at the level of its *rects* (runs of characters on one line
in one style), never character by character, so a page costs a few hundred library calls. Runs
are grouped into lines, columns are found from a vertical whitespace band that no run crosses
(:func:`_gutters`), and lines become titles (by font size), list items, tables (runs aligned on
the same x-positions over several lines) and paragraphs, in reading order: left column first.

Banner lines (``SECRET//NOFORN``) at the top or bottom of a page go to
:attr:`ParsedDocument.banners` and are not emitted; other lines repeating at the top or bottom of
pages become Header/Footer elements. Portion marks stay at the start of element text; ingest
strips them. Pages without a text layer are OCRed when Tesseract is installed
(:mod:`garrison.parse.ocr`). JavaScript, launch and automatic actions are recorded as
``active-content`` warnings, never run.
"""

from __future__ import annotations

import html
import io
import re
import statistics
import warnings
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

from garrison.core.records import (
    BBox,
    ElementType,
    Extraction,
    ParsedAttachment,
    ParsedDocument,
    ParsedElement,
    TableCell,
)
from garrison.parse._registry import ParseContext, ParseFailure, library_version, register_parser
from garrison.parse.office import is_banner_line

__all__ = ["DEFAULT_MAX_PAGES", "PDF", "parse_pdf"]

PDF = "application/pdf"
#: Pages above which a PDF is refused as ``too-large`` (``ctx.options["max_pages"]``).
DEFAULT_MAX_PAGES = 10_000
#: A page with fewer non-blank characters than this has no usable text layer.
_MIN_TEXT_CHARS = 10
#: Render resolution for OCR (Tesseract reads best near 300 dpi), capped in pixels per side.
_OCR_SCALE = 300 / 72
_OCR_MAX_SIDE = 4000
#: Top and bottom lines of a page examined as banner/header/footer candidates.
_MARGIN_LINES = 3
#: Depth bound for walking pypdf objects (a hostile file can nest or loop forever).
_MAX_WALK = 64

_BULLETS = "•◦▪▫‣⁃●○■□–—-*·"
_ENUM = re.compile(r"(?:\d{1,3}[.)]|[a-zA-Z][.)]|\([a-z0-9]{1,3}\)|[ivxIVX]{1,4}[.)])(?=\s|$)")
# A portion mark always starts a new paragraph, even without vertical space before it.
_PORTION_START = re.compile(r"\((?:U|C|S|TS|CUI|FOUO)(?:\)|/)", re.IGNORECASE)
_PDF_DATE = re.compile(
    r"(?:D:)?(\d{4})(\d{2})?(\d{2})?(\d{2})?(\d{2})?(\d{2})?\s*([Zz+\-])?(\d{2})?'?(\d{2})?"
)
_CONTROL = str.maketrans({"\r": " ", "\n": " ", "\x00": None, "\ufffe": None, "\uffff": None})


# -- geometry records ----------------------------------------------------------------------------


@dataclass(slots=True)
class _Run:
    """A run of text on one line (a PDFium rect), in PDF points, origin bottom-left."""

    x0: float
    y0: float
    x1: float
    y1: float
    text: str
    size: float


@dataclass(slots=True)
class _Line:
    runs: list[_Run]
    x0: float
    y0: float
    x1: float
    y1: float
    lane: int = 0  # column (or full-width band) the line belongs to; blocks never cross lanes
    text: str = ""
    size: float = 0.0

    def finish(self) -> _Line:
        """Sort runs left to right, join their text and take the dominant font size."""
        self.runs.sort(key=lambda r: r.x0)
        parts: list[str] = []
        prev: _Run | None = None
        for run in self.runs:
            piece = run.text.strip()
            if not piece:
                continue
            if prev is not None and parts:
                gap = run.x0 - prev.x1
                # Runs split mid-word (a font change inside a word) abut; words have space.
                if gap > 0.15 * max(run.size, 1.0) or prev.text.endswith(" "):
                    parts.append(" ")
            parts.append(piece)
            prev = run
        self.text = "".join(parts).replace("\x02 ", "-").strip()
        longest = max(self.runs, key=lambda r: len(r.text))
        self.size = longest.size
        return self


@dataclass(slots=True)
class _Page:
    number: int
    width: float
    height: float
    lines: list[_Line]  # in reading order
    method: str = "text"
    confidence: float | None = None


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


# -- small helpers -------------------------------------------------------------------------------


def _pdf_date(value: str | None) -> datetime | None:
    """A PDF date string (``D:20240102030405+01'00'``) as an aware datetime, or None."""
    if not value:
        return None
    m = _PDF_DATE.match(value.strip())
    if not m:
        return None
    year, month, day, hour, minute, second, sign, tzh, tzm = m.groups()
    tz: timezone = UTC
    if sign in ("+", "-") and tzh:
        offset = timedelta(hours=int(tzh), minutes=int(tzm or 0))
        tz = timezone(offset if sign == "+" else -offset)
    try:
        return datetime(
            int(year),
            int(month or 1),
            int(day or 1),
            int(hour or 0),
            int(minute or 0),
            int(second or 0),
            tzinfo=tz,
        )
    except ValueError:  # a malformed date is just absent metadata
        return None


def _bbox(lines: list[_Line]) -> BBox:
    return BBox(
        x0=round(min(ln.x0 for ln in lines), 2),
        y0=round(min(ln.y0 for ln in lines), 2),
        x1=round(max(ln.x1 for ln in lines), 2),
        y1=round(max(ln.y1 for ln in lines), 2),
    )


def _is_list_start(text: str) -> bool:
    if not text:
        return False
    if text[0] in _BULLETS and (len(text) == 1 or text[1].isspace()):
        return True
    return (text[0] not in "(" and _ENUM.match(text) is not None) or bool(
        text.startswith("(") and re.match(r"\([a-z0-9]{1,3}\)\s", text)
    )


def _is_marker(text: str) -> bool:
    """A cell that is only a bullet or an enumerator (it belongs with the text after it)."""
    t = text.strip()
    return bool(t) and (t in _BULLETS or _ENUM.fullmatch(t) is not None)


# -- text extraction -----------------------------------------------------------------------------


def _page_runs(textpage: Any, raw: Any) -> list[_Run]:
    """The page's text runs: PDFium rects with their text and font size (loose-box height).

    Calls ``pypdfium2.raw`` directly with buffers reused across rects: the helper methods
    allocate ctypes objects per call and ask PDFium for bounded text twice (length, then
    text), and each of those calls scans every character on the page.
    """
    import ctypes

    handle = textpage.raw
    runs: list[_Run] = []
    n = raw.FPDFText_CountRects(handle, 0, -1)
    if n <= 0:
        return runs
    # Bounded text is at most each char plus a separator ("\r\n" or " "), and a char beyond
    # the BMP takes two UTF-16 units: four units per char always suffices.
    cap = 4 * max(raw.FPDFText_CountChars(handle), 0) + 16
    buf = (ctypes.c_ushort * cap)()
    left_c, top_c, right_c, bottom_c = (ctypes.c_double() for _ in range(4))
    loose = raw.FS_RECTF()
    get_rect = raw.FPDFText_GetRect
    bounded = raw.FPDFText_GetBoundedText
    char_at = raw.FPDFText_GetCharIndexAtPos
    loose_box = raw.FPDFText_GetLooseCharBox
    string_at = ctypes.string_at
    control = _CONTROL
    for i in range(n):
        if not get_rect(handle, i, left_c, top_c, right_c, bottom_c):
            continue
        left, bottom, right, top = left_c.value, bottom_c.value, right_c.value, top_c.value
        got = bounded(handle, left, top, right, bottom, buf, cap)
        if got <= 0:
            continue
        text = string_at(buf, 2 * got).decode("utf-16-le", "ignore").translate(control)
        if not text.strip():
            continue
        size = top - bottom
        # The char under the rect's centre gives the run's font size; the loose box is the
        # font's ascent-to-descent height, which (unlike the nominal size) includes the CTM.
        idx = char_at(handle, (left + right) / 2, (bottom + top) / 2, (right - left) / 2, size / 2)
        if idx >= 0 and loose_box(handle, idx, loose):
            loose_h = loose.top - loose.bottom
            if 0 < loose_h < 4 * size + 4:
                size = loose_h
        runs.append(_Run(left, bottom, right, top, text, size))
    return runs


def _gutters(runs: list[_Run]) -> list[float]:
    """x-positions of column gutters: vertical bands (≥ 5 pt) that almost no run crosses.

    Coverage at each x is the summed height of the runs over it; a gutter is a band whose
    coverage is below 25 % of the typical coverage (titles and
    wide captions may cross it), with enough text on both sides that it
    separates columns rather than indents.
    """
    if len(runs) < 12:
        return []
    xmin = min(r.x0 for r in runs)
    xmax = max(r.x1 for r in runs)
    width = xmax - xmin
    if width < 150:
        return []
    bins = int(width) + 2
    diff = [0.0] * (bins + 1)
    for r in runs:
        h = r.y1 - r.y0
        diff[max(0, int(r.x0 - xmin))] += h
        diff[min(bins, int(r.x1 - xmin) + 1)] -= h
    cov: list[float] = []
    acc = 0.0
    for d in diff[:bins]:
        acc += d
        cov.append(acc)
    level = sorted(cov)[int(0.75 * len(cov))]
    if level <= 0:
        return []
    low = 0.25 * level
    total = sum(cov)
    out: list[float] = []
    start: int | None = None
    edge = int(0.15 * width)
    last = 0
    for x in range(edge, bins - edge):
        if cov[x] <= low:
            if start is None:
                start = x
            continue
        if start is not None:
            if x - start >= 5 and sum(cov[last:start]) >= 0.15 * total:
                out.append(xmin + (start + x) / 2)
                last = x
            start = None
    if out and sum(cov[last:]) < 0.15 * total:
        out.pop()
    return out


def _group_lines(runs: list[_Run]) -> list[_Line]:
    """Runs grouped into physical lines by vertical overlap, top to bottom."""
    runs = sorted(runs, key=lambda r: -(r.y0 + r.y1))
    lines: list[_Line] = []
    cur: _Line | None = None
    band = (0.0, 0.0)  # the tallest run's extent: a band never grows into the next line
    for r in runs:
        if cur is not None:
            overlap = min(band[1], r.y1) - max(band[0], r.y0)
            h = band[1] - band[0]
            centre = (r.y0 + r.y1) / 2
            # Punctuation and sub/superscripts have small boxes off the baseline.
            if overlap >= 0.5 * min(h, r.y1 - r.y0) or band[0] - 0.3 * h <= centre <= band[1]:
                if r.y1 - r.y0 > h:
                    band = (r.y0, r.y1)
                cur.runs.append(r)
                cur.x0, cur.x1 = min(cur.x0, r.x0), max(cur.x1, r.x1)
                cur.y0, cur.y1 = min(cur.y0, r.y0), max(cur.y1, r.y1)
                continue
        cur = _Line([r], r.x0, r.y0, r.x1, r.y1)
        band = (r.y0, r.y1)
        lines.append(cur)
    return lines


def _order(runs: list[_Run]) -> list[_Line]:
    """Lines in reading order: within each full-width band, each column top to bottom.

    A physical line with a run across a gutter spans the columns (a title, a wide figure
    caption); it closes the band above it, whose columns are emitted left to right.
    """
    # Vertical text (an arXiv stamp down the margin) would swallow every line beside it: it
    # is kept out of line grouping and column detection and read last, on its own.
    heights = sorted(r.y1 - r.y0 for r in runs)
    tall_limit = 4 * heights[len(heights) // 2] if heights else 0.0
    tall = [r for r in runs if r.y1 - r.y0 > tall_limit and r.y1 - r.y0 > r.x1 - r.x0]
    if tall:
        runs = [r for r in runs if not (r.y1 - r.y0 > tall_limit and r.y1 - r.y0 > r.x1 - r.x0)]
    side = [_Line([r], r.x0, r.y0, r.x1, r.y1, lane=-1 - k).finish() for k, r in enumerate(tall)]
    gutters = _gutters(runs)
    physical = _group_lines(runs)
    if not gutters:
        return [ln.finish() for ln in physical] + side
    ordered: list[_Line] = []
    columns: list[list[_Line]] = [[] for _ in range(len(gutters) + 1)]
    band = 0

    def flush() -> None:
        nonlocal band
        for k, col in enumerate(columns):
            for ln in col:
                ln.lane = band * 100 + k + 1
                ordered.append(ln.finish())
            col.clear()
        band += 1

    for ln in physical:
        if any(r.x0 < g - 2 and r.x1 > g + 2 for r in ln.runs for g in gutters):
            flush()
            ln.lane = band * 100
            ordered.append(ln.finish())
            continue
        parts: dict[int, list[_Run]] = {}
        for r in ln.runs:
            k = sum(1 for g in gutters if (r.x0 + r.x1) / 2 > g)
            parts.setdefault(k, []).append(r)
        for k, rs in parts.items():
            columns[k].append(
                _Line(
                    rs,
                    min(r.x0 for r in rs),
                    min(r.y0 for r in rs),
                    max(r.x1 for r in rs),
                    max(r.y1 for r in rs),
                )
            )
    flush()
    return ordered + side


# -- structure -----------------------------------------------------------------------------------


def _cells(line: _Line) -> list[tuple[float, float, str]]:
    """A line split into cells at wide gaps (far wider than a word space)."""
    out: list[list[Any]] = []
    for r in line.runs:
        piece = r.text.strip()
        if not piece:
            continue
        if out and r.x0 - out[-1][1] < max(1.5 * r.size, 8.0):
            out[-1][1] = max(out[-1][1], r.x1)
            out[-1][2].append(piece)
            continue
        out.append([r.x0, r.x1, [piece]])
    cells = [(c[0], c[1], " ".join(c[2]).replace("\x02", "-")) for c in out]
    # "• text" or "1. text" laid out as two runs is a list item, not two columns.
    if len(cells) >= 2 and _is_marker(cells[0][2]):
        cells[:2] = [(cells[0][0], cells[1][1], f"{cells[0][2]} {cells[1][2]}")]
    return cells


def _table(lines: list[_Line]) -> list[TableCell] | None:
    """Cells of ``lines`` as a table, or None unless it has ≥ 3 rows and ≥ 2 aligned columns."""
    rows = [_cells(ln) for ln in lines]
    xmin = min(c[0] for row in rows for c in row)
    xmax = max(c[1] for row in rows for c in row)
    bins = int(xmax - xmin) + 2
    diff = [0] * (bins + 1)
    for row in rows:
        for x0, x1, _ in row:
            diff[int(x0 - xmin)] += 1
            diff[int(x1 - xmin) + 1] -= 1
    # A band crossed by at most one row in five is still a column gap (a wide header cell).
    limit = len(rows) // 5
    spans: list[tuple[float, float]] = []
    acc = 0
    start: int | None = None
    for x in range(bins + 1):
        acc += diff[x] if x < len(diff) else 0
        if acc > limit and start is None:
            start = x
        elif acc <= limit and start is not None:
            spans.append((xmin + start, xmin + x))
            start = None
    if len(spans) < 2:
        return None
    # Two columns of prose side by side also align; table cells are short.
    if statistics.median(len(c[2]) for row in rows for c in row) > 30:
        return None
    cells: list[TableCell] = []
    full_rows = 0
    for r, row in enumerate(rows):
        by_col: dict[int, list[tuple[str, int]]] = {}
        for x0, x1, text in row:
            col = next((k for k, s in enumerate(spans) if x0 < s[1]), len(spans) - 1)
            span = sum(1 for s in spans[col:] if s[0] < x1)
            by_col.setdefault(col, []).append((text, max(1, span)))
        if len(by_col) >= 2:
            full_rows += 1
        for col in sorted(by_col):
            texts = by_col[col]
            cells.append(
                TableCell(
                    row=r,
                    col=col,
                    text=" ".join(t for t, _ in texts),
                    col_span=max(s for _, s in texts),
                )
            )
    return cells if full_rows >= 3 else None


def _table_text(cells: list[TableCell]) -> tuple[str, str]:
    rows: dict[int, list[TableCell]] = {}
    for cell in cells:
        rows.setdefault(cell.row, []).append(cell)
    lines: list[str] = []
    parts = ["<table>"]
    for r in sorted(rows):
        row = sorted(rows[r], key=lambda c: c.col)
        lines.append(" | ".join(c.text for c in row))
        parts.append("<tr>")
        for c in row:
            attrs = f' colspan="{c.col_span}"' if c.col_span > 1 else ""
            parts.append(f"<td{attrs}>{html.escape(c.text)}</td>")
        parts.append("</tr>")
    parts.append("</table>")
    return "\n".join(lines), "".join(parts)


def _find_tables(lines: list[_Line]) -> dict[int, tuple[int, list[TableCell]]]:
    """Tables among ``lines``: start index -> (end index, cells). Conservative by design."""
    found: dict[int, tuple[int, list[TableCell]]] = {}
    i = 0
    n = len(lines)
    while i < n:
        if lines[i].runs and len(_cells(lines[i])) >= 2:
            j = i + 1
            while (
                j < n
                and lines[j].lane == lines[i].lane
                and lines[j - 1].y0 - lines[j].y1 < 2.5 * max(lines[j].size, 4.0)
                and len(_cells(lines[j])) >= 2
            ):
                j += 1
            if j - i >= 3:
                cells = _table(lines[i:j])
                if cells is not None:
                    found[i] = (j, cells)
                    i = j
                    continue
            i = j
            continue
        i += 1
    return found


def _continues(prev: _Line, line: _Line) -> bool:
    """Whether ``line`` continues the paragraph whose last line is ``prev``."""
    if line.lane != prev.lane or not line.text:
        return False
    gap = prev.y0 - line.y1
    if gap < -0.5 * (line.y1 - line.y0) or gap > 0.8 * max(prev.size, line.size):
        return False
    if abs(prev.size - line.size) > 0.15 * max(prev.size, line.size):
        return False
    if line.x0 > prev.x1 or line.x1 < prev.x0:  # no horizontal overlap: another block
        return False
    return not (_is_list_start(line.text) or _PORTION_START.match(line.text))


def _join(lines: list[_Line]) -> str:
    out = ""
    for ln in lines:
        text = ln.text
        if out.endswith("\x02"):  # PDFium's mark for a hyphen that breaks a word at line end
            out = out[:-1] + text
        elif out:
            out = f"{out} {text}"
        else:
            out = text
    return out.replace("\x02", "-")


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


# -- OCR -----------------------------------------------------------------------------------------


def _has_images(page: Any, raw: Any) -> bool:
    for _ in page.get_objects(filter=(raw.FPDF_PAGEOBJ_IMAGE,), max_depth=2):
        return True
    return False


def _ocr_page(page: Any, number: int, width: float, height: float, lang: str) -> _Page | None:
    """OCR a rendered page; None when OCR is not installed."""
    try:
        from garrison.parse.ocr import ocr_available, ocr_image
    except ImportError:  # OCR is optional
        return None
    if not ocr_available(lang):
        return None
    scale = min(_OCR_SCALE, _OCR_MAX_SIDE / max(width, height, 1.0))
    bitmap = page.render(scale=scale)
    try:
        image = bitmap.to_pil()
    finally:
        bitmap.close()
    result = ocr_image(image, lang=lang)
    lines: list[_Line] = []
    confs: list[float] = []
    for ocr_line in result.lines:
        if not ocr_line.text.strip():
            continue
        left, top, right, bottom = ocr_line.bbox
        x0, x1 = left / scale, right / scale
        y0, y1 = height - bottom / scale, height - top / scale
        run = _Run(x0, y0, x1, y1, ocr_line.text, y1 - y0)
        lines.append(_Line([run], x0, y0, x1, y1).finish())
        confs.append(ocr_line.confidence)
    mean = sum(confs) / len(confs) if confs else None
    return _Page(number, width, height, lines, method="ocr", confidence=mean)


# -- pypdf: active content -----------------------------------------------------------------------


#: Names whose presence means pypdf must look. ``/OpenAction`` and ``/Next`` are not here: they
#: matter only when they lead to a JavaScript or launch action, and that action's dictionary
#: names ``/S /JavaScript``, ``/JS`` or ``/Launch`` itself.
_ACTIVE_NAMES = frozenset({b"JavaScript", b"JS", b"Launch", b"AA", b"XFA"})
_NAME_END = rb"(?=[\s/<>\[\]()%{}]|$)"
# A whole name (not a prefix: subset fonts are called /AAAAAB+Times) among the active ones.
_ACTIVE_NAME = re.compile(rb"/(?:JavaScript|JS|Launch|AA|XFA)" + _NAME_END)
_OBJSTM_NAME = re.compile(rb"/ObjStm" + _NAME_END)
# A name written with #xx escapes (/J#53 is /JS): decoded before comparing.
_ESCAPED_NAME = re.compile(rb"/([^\s/<>\[\]()%{}]*#[^\s/<>\[\]()%{}]*)")
_HEX_ESCAPE = re.compile(rb"#([0-9A-Fa-f]{2})")
_NAME = re.compile(rb"/[^\s/<>\[\]()%{}]*")
_FILTER = re.compile(rb"/Filter\s*(\[[^\]]*\]|/[^\s/<>\[\]()%{}]*)")
_STREAM_START = re.compile(rb"stream(?:\r\n|\n|\r)")
#: Decompressed object-stream bytes read at most; a bigger one goes to pypdf.
_MAX_OBJSTM = 64 * 1024 * 1024


def _names_active(text: bytes) -> bool:
    """Whether ``text`` names an active-content key, plainly or with ``#xx`` escapes."""
    if _ACTIVE_NAME.search(text):
        return True
    for m in _ESCAPED_NAME.finditer(text):
        name = _HEX_ESCAPE.sub(lambda h: bytes([int(h.group(1), 16)]), m.group(1))
        if name in _ACTIVE_NAMES or name == b"ObjStm":
            return True
    return False


def _may_hold_active_content(data: bytes) -> bool:
    """False only when no dictionary in the file can name JavaScript, launch or auto actions.

    Dictionaries are either plain bytes in the file or packed in Flate-compressed object
    streams (``/ObjStm``), which are inflated here; keys are never encrypted. Anything this
    cheap check cannot read (another filter, predictors, a broken or huge stream) is left to
    the pypdf scan, which costs far more than parsing a text page: most PDFs skip it.
    """
    import zlib

    if _names_active(data):
        return True
    view = memoryview(data)
    for m in _OBJSTM_NAME.finditer(data):
        start = _STREAM_START.search(data, m.end())
        if start is None:
            return True
        head = data[data.rfind(b"<<", 0, m.start()) : start.start()]
        filters = _FILTER.search(head)
        if filters is None or b"/DecodeParms" in head:
            return True
        if _NAME.findall(filters.group(1)) != [b"/FlateDecode"]:
            return True
        # Fed in chunks until the deflate stream ends: no /Length to trust, and no copy of
        # the rest of the file per object stream.
        inflate = zlib.decompressobj()
        body = bytearray()
        pos = start.end()
        try:
            while not inflate.eof and pos < len(view) and len(body) <= _MAX_OBJSTM:
                body += inflate.decompress(view[pos : pos + 65536], _MAX_OBJSTM)
                if inflate.unconsumed_tail:
                    return True
                pos += 65536
        except zlib.error:
            return True
        if not inflate.eof or len(body) > _MAX_OBJSTM or _names_active(bytes(body)):
            return True
    return False


def _active_content(data: bytes, max_pages: int) -> list[str]:
    """``active-content`` warnings for JavaScript, launch and automatic actions (never run)."""
    if not _may_hold_active_content(data):
        return []
    from pypdf import PdfReader
    from pypdf.generic import ArrayObject, DictionaryObject

    found: list[str] = []

    def note(what: str) -> None:
        if f"active-content: {what}" not in found:
            found.append(f"active-content: {what}")

    def action(obj: Any, where: str, depth: int = 0) -> None:
        obj = obj.get_object() if hasattr(obj, "get_object") else obj
        if depth > _MAX_WALK:
            return
        if isinstance(obj, ArrayObject):
            for item in obj:
                action(item, where, depth + 1)
            return
        if not isinstance(obj, DictionaryObject):
            return
        kind = obj.get("/S")
        if kind == "/JavaScript" or "/JS" in obj:
            note(f"a JavaScript action ({where})")
        elif kind == "/Launch":
            note(f"a launch action ({where})")
        if "/Next" in obj:
            action(obj["/Next"], where, depth + 1)

    def additional(obj: Any, where: str) -> None:
        aa = obj.get("/AA")
        if aa is not None:
            aa = aa.get_object()
            note(f"automatic actions ({where})")
            if isinstance(aa, DictionaryObject):
                for value in aa.values():
                    action(value, where)

    with warnings.catch_warnings():
        # pypdf warns about every repairable defect; the file already opened in PDFium.
        warnings.simplefilter("ignore")
        try:
            reader = PdfReader(io.BytesIO(data), strict=False)
            if reader.is_encrypted:
                reader.decrypt("")
            root: Any = reader.trailer["/Root"].get_object()
            if "/OpenAction" in root:
                action(root["/OpenAction"], "on open")
            additional(root, "document")
            names = root.get("/Names")
            if names is not None and "/JavaScript" in names.get_object():
                note("document-level JavaScript")
            if "/AcroForm" in root:
                form = root["/AcroForm"].get_object()
                if "/XFA" in form:
                    note("an XFA form (may hold scripts)")
            for n, page in enumerate(reader.pages, start=1):
                if n > max_pages:
                    break
                additional(page, f"page {n}")
                annots = page.get("/Annots")
                annots = annots.get_object() if annots is not None else None
                if isinstance(annots, ArrayObject):
                    for annot in annots:
                        annot = annot.get_object()
                        if isinstance(annot, DictionaryObject):
                            if "/A" in annot:
                                action(annot["/A"], f"page {n}")
                            additional(annot, f"page {n}")
        except RecursionError as exc:
            raise ParseFailure(
                "hostile-content", "The PDF's object structure nests without end."
            ) from exc
        except ParseFailure:
            raise
        except Exception as exc:  # PDFium read the file; pypdf choking is not fatal
            found.append(f"scan-incomplete: active-content scan stopped ({type(exc).__name__})")
    return found


# -- the parser ----------------------------------------------------------------------------------


def _open(data: bytes) -> Any:
    import pypdfium2 as pdfium  # type: ignore[import-untyped]

    try:
        # PDFium tries the empty user password itself; only a real password fails here.
        return pdfium.PdfDocument(data, password=None)
    except pdfium.PdfiumError as exc:
        if "password" in str(exc).lower():
            raise ParseFailure("encrypted", "The PDF is password-protected.") from exc
        raise ParseFailure("corrupt", "The PDF could not be read (PDFium load error).") from exc


def _text_page(page: Any, raw: Any, number: int) -> _Page:
    width, height = page.get_size()
    textpage = page.get_textpage()
    try:
        runs = _page_runs(textpage, raw)
    finally:
        textpage.close()
    return _Page(number, width, height, _order(runs))


@register_parser(PDF)
def parse_pdf(data: bytes, ctx: ParseContext) -> ParsedDocument:
    """Parse a PDF: text in reading order, titles, lists, tables, banners, attachments.

    Options (``ctx.options``): ``max_pages`` (default 10,000), ``ocr`` (False: never OCR)
    and ``ocr_lang`` (default ``eng``). Raises :class:`ParseFailure`: ``encrypted`` (a user
    password is needed), ``corrupt``, ``too-large`` (too many pages), ``hostile-content``
    (endless nesting).
    """
    import pypdfium2.raw as raw  # type: ignore[import-untyped]

    max_pages_opt = ctx.options.get("max_pages", DEFAULT_MAX_PAGES)
    max_pages = max_pages_opt if isinstance(max_pages_opt, int) else DEFAULT_MAX_PAGES
    lang_opt = ctx.options.get("ocr_lang", "eng")
    lang = lang_opt if isinstance(lang_opt, str) else "eng"
    use_ocr = ctx.options.get("ocr", True) is not False
    doc = _Doc()
    pdf = _open(data)
    try:
        count = len(pdf)
        if count > max_pages:
            raise ParseFailure("too-large", f"The PDF has {count} pages (limit {max_pages}).")
        meta = pdf.get_metadata_dict(skip_empty=True)
        encrypted = raw.FPDF_GetSecurityHandlerRevision(pdf.raw) != -1
        attachments: list[ParsedAttachment] = []
        for a in range(pdf.count_attachments()):
            att = pdf.get_attachment(a)
            name = att.get_name()
            try:
                payload = bytes(att.get_data())
            except Exception:  # a broken embedded file is skipped, not fatal
                doc.warnings.append(f"attachment-unreadable: {name}")
                continue
            attachments.append(
                ParsedAttachment(
                    filename=name or None,
                    data=payload,
                    locator={"part": "attachment", "name": name},
                )
            )
        pages: list[_Page] = []
        no_text: list[int] = []
        for index in range(count):
            page = pdf[index]
            try:
                parsed = _text_page(page, raw, index + 1)
                chars = sum(len(ln.text.strip()) for ln in parsed.lines)
                if chars < _MIN_TEXT_CHARS and _has_images(page, raw):
                    ocred = (
                        _ocr_page(page, index + 1, parsed.width, parsed.height, lang)
                        if use_ocr
                        else None
                    )
                    if ocred is None:
                        no_text.append(index + 1)
                    else:
                        parsed = ocred
                        if ocred.confidence is not None and ocred.confidence < 60:
                            doc.warnings.append(
                                f"ocr-low-confidence: page {index + 1} mean confidence "
                                f"{ocred.confidence:.0f}"
                            )
                pages.append(parsed)
            finally:
                page.close()
    except ParseFailure:
        raise
    except RecursionError as exc:
        raise ParseFailure("hostile-content", "The PDF nests without end.") from exc
    except Exception as exc:  # PDFium errors mid-document mean a broken file
        raise ParseFailure("corrupt", f"The PDF could not be read ({type(exc).__name__}).") from exc
    finally:
        pdf.close()
    for n in no_text:
        doc.warnings.append(f"no-text-layer: page {n} has no text layer and OCR is unavailable")
    doc.warnings.extend(_active_content(data, max_pages))
    _emit(pages, doc)
    ocr_pages = [p.number for p in pages if p.method == "ocr"]
    confs = [p.confidence for p in pages if p.confidence is not None]
    metadata: dict[str, Any] = {"pages": count, "encrypted": encrypted}
    for key in ("Subject", "Keywords", "Creator", "Producer"):
        if meta.get(key):
            metadata[key.lower()] = meta[key]
    if ocr_pages:
        metadata["ocr_pages"] = ocr_pages
    return ParsedDocument(
        media_type=PDF,
        elements=tuple(doc.elements),
        title=meta.get("Title") or None,
        author=meta.get("Author") or None,
        created=_pdf_date(meta.get("CreationDate")),
        modified=_pdf_date(meta.get("ModDate")),
        banners=tuple(doc.banners),
        attachments=tuple(attachments),
        metadata=metadata,
        extraction=Extraction(
            method="ocr"
            if ocr_pages and len(ocr_pages) == len(pages)
            else ("text+ocr" if ocr_pages else "native"),
            parser="garrison.pdf",
            parser_version=library_version("pypdfium2"),
            confidence=round(statistics.fmean(confs) / 100, 3) if confs else None,
        ),
        warnings=tuple(doc.warnings),
    )
