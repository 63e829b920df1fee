"""PDF layout: text runs from PDFium, lines, columns, reading order, tables, and OCR'd pages.

Text comes from PDFium's text page at the level of its *rects* (runs of characters on one line
in one style), never character by character, so a page costs a few hundred library calls. Runs
are grouped into lines, columns are found from a vertical whitespace band that no run crosses
(:func:`_gutters`), and lines become blocks and tables (runs aligned on the same x-positions
over several lines) in reading order: left column first.
"""

from __future__ import annotations

import html
import re
import statistics
from dataclasses import dataclass
from typing import Any

from garrison.core.records import BBox, TableCell
from garrison.parse._pdf_chars import MIN_RUNS, c_function, locate_runs

#: Render resolution for OCR (Tesseract reads best near 300 dpi), capped in pixels per side.
_OCR_SCALE = 300 / 72
_OCR_MAX_SIDE = 4000

_BULLETS = "•◦▪▫‣⁃●○■□–—-*·"
_ENUM = re.compile(r"(?:\d{1,3}[.)]|[a-zA-Z][.)]|\([a-z0-9]{1,3}\)|[ivxIVX]{1,4}[.)])(?=\s|$)")
# A portion mark always starts a new paragraph, even without vertical space before it.
_PORTION_START = re.compile(r"\((?:U|C|S|TS|CUI|FOUO)(?:\)|/)", re.IGNORECASE)
_CONTROL = str.maketrans({"\r": " ", "\n": " ", "\x00": None, "\ufffe": None, "\uffff": None})
_HAS_CONTROL = re.compile("[\r\n\x00\ufffe\uffff]")
#: Font names of bold faces (``Helvetica-Bold``, ``ABCDEF+NimbusSanL-Bold``, TeX's ``CMBX12``,
#: ``SFBX1095``): PDFium's font weight is 0 for the standard fonts and often wrong for TeX's.
_BOLD_NAME = re.compile(
    rb"bold|black|heavy|demi|semib|[-,]bd\b|^(?:[A-Z]{6}\+)?(?:cm|sf|ec|lm)bx", re.I
)
#: The font-descriptor flag ForceBold (PDF 32000-1, table 123: bit 19).
_FORCE_BOLD = 1 << 18


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
    bold: bool = False


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
    heavy: float = 0.0  # share of the line's characters set in bold
    cells: list[tuple[float, float, str]] | None = None  # :func:`_cells`, once computed

    @property
    def bold(self) -> bool:
        """All but a stray character or two in bold: a run-in bold head followed by the
        paragraph's first words is not a bold line."""
        return self.heavy >= 0.95

    def finish(self) -> _Line:
        """Sort runs left to right, join their text, take the dominant font size and the share
        of characters in bold."""
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
        chars = sum(len(r.text.strip()) for r in self.runs)
        heavy = sum(len(r.text.strip()) for r in self.runs if r.bold)
        self.heavy = heavy / chars if chars else 0.0
        return self


@dataclass(slots=True)
class _Page:
    number: int
    width: float
    height: float
    lines: list[_Line]  # in reading order
    method: str = "text"
    confidence: float | None = None


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
    """The page's text runs: PDFium rects with their text, font size (loose-box height) and
    whether their font is bold (weight, ForceBold flag or a bold face's name).

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
    rect_refs = [ctypes.byref(c) for c in (left_c, top_c, right_c, bottom_c)]
    loose = raw.FS_RECTF()
    loose_ref = ctypes.byref(loose)
    font_name = ctypes.create_string_buffer(128)
    font_flags = ctypes.c_int()
    flags_ref = ctypes.byref(font_flags)
    # Calls that take no doubles go through bare prototypes, without ctypes' argument checks.
    void = ctypes.c_void_p(ctypes.cast(handle, ctypes.c_void_p).value)
    font_info = c_function(raw.FPDFText_GetFontInfo, ctypes.c_ulong)
    font_weight = c_function(raw.FPDFText_GetFontWeight, ctypes.c_int)
    get_rect = c_function(raw.FPDFText_GetRect, ctypes.c_int)
    loose_box = c_function(raw.FPDFText_GetLooseCharBox, ctypes.c_int)
    bounded = raw.FPDFText_GetBoundedText
    char_at = raw.FPDFText_GetCharIndexAtPos
    string_at = ctypes.string_at
    control = _CONTROL
    has_control = _HAS_CONTROL.search
    rects: list[tuple[float, float, float, float]] = []
    for i in range(n):
        if not get_rect(void, i, *rect_refs):
            continue
        rects.append((left_c.value, top_c.value, right_c.value, bottom_c.value))
    located = locate_runs(textpage, raw, rects) if len(rects) >= MIN_RUNS else None
    for k, (left, top, right, bottom) in enumerate(rects):
        found = located[k] if located is not None else None
        if found is None:
            got = bounded(handle, left, top, right, bottom, buf, cap)
            if got <= 0:
                continue
            text = string_at(buf, 2 * got).decode("utf-16-le", "ignore")
        else:
            text = found[0]
        if has_control(text):  # rarely: translate() costs as much as the rest of the rect
            text = text.translate(control)
        if not text.strip():
            continue
        size = top - bottom
        # The char under the rect's centre gives the run's font size; the loose box is the
        # font's ascent-to-descent height, which (unlike the nominal size) includes the CTM.
        # PDFium returns the first char whose box holds the point, and only when none does
        # the nearest within the tolerance; asked without one first, it skips that nearness
        # work on every char it passes (a scan of the page) and gives the same first char.
        cx, cy = (left + right) / 2, (bottom + top) / 2
        idx = found[1] if found is not None and found[1] is not None else -1
        if idx < 0 and found is None:
            idx = char_at(handle, cx, cy, 0.0, 0.0)
        if idx < 0:
            idx = char_at(handle, cx, cy, (right - left) / 2, size / 2)
        bold = False
        if idx >= 0:
            if loose_box(void, idx, loose_ref):
                loose_h = loose.top - loose.bottom
                if 0 < loose_h < 4 * size + 4:
                    size = loose_h
            bold = font_weight(void, idx) >= 600
            if not bold:
                got = font_info(void, idx, font_name, 128, flags_ref)
                bold = bool(font_flags.value & _FORCE_BOLD) or (
                    0 < got <= 128 and _BOLD_NAME.search(font_name.value) is not None
                )
        runs.append(_Run(left, bottom, right, top, text, size, bold))
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
    """A line split into cells at wide gaps (far wider than a word space).

    Computed once per line (table detection and head rules ask again); do not mutate it.
    """
    if line.cells is None:
        line.cells = _split_cells(line)
    return line.cells


def _split_cells(line: _Line) -> list[tuple[float, float, str]]:
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
    # A bold head above its paragraph, or a bold line after one (a partly bold line, such as
    # a head in two faces or a run-in head, goes with either).
    if (prev.bold and line.heavy < 0.05) or (line.bold and prev.heavy < 0.05):
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
