"""Each text run's characters from one pass over a page's character boxes.

For every run (PDFium rect), :func:`garrison.parse._pdf_layout._page_runs` needs its text
(``FPDFText_GetBoundedText``) and the char under its centre (``FPDFText_GetCharIndexAtPos``).
Each of those calls scans every character of the page, so a page of word-per-object text (TeX,
many publishers: hundreds of runs) costs hundreds of full scans. :func:`locate_runs` reads each
char's box once instead (one library call per char), finds which chars make each run the way
PDFium builds its rects, and answers both questions for a run from its own chars.

The answers are PDFium's own, not approximations: PDFium's rect for a run is the union of its
run's chars (consecutive chars of one text object, generated and sub-0.01 pt chars left out),
bounded text is every char whose box overlaps the rect, in page order, with a space after a
matched char where the next one is a space and a line break where a matched char follows
another char on a new baseline; the char at a point is the first whose box holds it. So a run
whose rect overlaps no other run's rect, and whose centre is on no zero-size box, is answered
from its own chars, exactly. Anything else -- overlapping runs, a char box that is neither valid
nor zero-size, chars that do not add up to PDFium's rects, text that does not map char for char
-- is left to PDFium (``None``: the caller asks the library, for that run or the whole page).
"""

from __future__ import annotations

import ctypes
import functools
import struct
from typing import Any

__all__ = ["MIN_RUNS", "c_function", "locate_runs"]

#: Pages with fewer runs than this are cheaper to ask PDFium run by run (a scan of the page costs
#: about 25 ns a char; a char read here about 1 us).
MIN_RUNS = 48
_F32 = struct.Struct("f")
#: A rect ``(left, top, right, bottom)``; a char box ``(ok, left, right, bottom, top)``.
_Rect = tuple[float, float, float, float]
_Box = tuple[int, float, float, float, float]
#: Side of the grid squares :func:`_overlapping` files boxes in, in points (about a line).
_CELL = 12.0
#: PDFium's ``kSizeEpsilon`` (a C float): a char box narrower or shorter than this is not part
#: of a rect. Box sides are floats, so their difference in doubles is exact; only a difference
#: just below the threshold could round up to it in floats.
_EPS = float(_F32.unpack(_F32.pack(0.01))[0])
_EPS_DOUBT = _EPS * (1 - 1e-6)


def _f32(value: float) -> float:
    """``value`` as PDFium sees a point it is given: rounded to a C float."""
    return float(_F32.unpack(_F32.pack(value))[0])


def c_function(fn: Any, restype: Any) -> Any:
    """``fn`` called without ctypes' per-argument conversion (half the cost of a call)."""
    address = ctypes.cast(fn, ctypes.c_void_p).value
    if not address:
        raise RuntimeError("PDFium function without an address")
    return _prototype(address, restype)


@functools.cache
def _prototype(address: int, restype: Any) -> Any:
    return ctypes.CFUNCTYPE(restype)(address)


def locate_runs(
    textpage: Any, raw: Any, rects: list[_Rect]
) -> list[tuple[str, int | None] | None] | None:
    """For each rect ``(left, top, right, bottom)``: its bounded text and the index of the char
    at its centre (``None`` when no char holds the centre), or ``None`` to ask PDFium for that
    rect. ``None`` for the whole page when its chars cannot be matched to ``rects``."""
    handle = ctypes.c_void_p(ctypes.cast(textpage.raw, ctypes.c_void_p).value)
    n = raw.FPDFText_CountChars(textpage.raw)
    if n <= 0 or not rects:
        return None
    chars = _chars(textpage.raw, handle, raw, n)
    if chars is None:
        return None
    text, boxes = chars
    groups = _groups(boxes, rects)
    if groups is None:
        return None
    gid, spans, points_x, points_y, strays = groups
    tainted = _overlapping(rects, strays)
    first_nonspace = next((i for i, ch in enumerate(text) if ch != " "), n)
    origin = c_function(raw.FPDFText_GetCharOrigin, ctypes.c_int)
    ox, oy = ctypes.c_double(), ctypes.c_double()
    pox, poy = ctypes.byref(ox), ctypes.byref(oy)
    out: list[tuple[str, int | None] | None] = []
    for k, (left, top, right, bottom) in enumerate(rects):
        cx, cy = _f32((left + right) / 2), _f32((bottom + top) / 2)
        if k in tainted or cx in points_x or cy in points_y:
            out.append(None)
            continue
        f, last, members = spans[k]
        # The char at the centre: the first of the run's chars whose box holds it (no other
        # char can: see the module docstring).
        idx: int | None = None
        for i in range(f, last + 1):
            if gid[i] == k:
                _, x0, x1, y0, y1 = boxes[i]
                if x0 <= cx <= x1 and y0 <= cy <= y1:
                    idx = i
                    break
        if members == last - f + 1:
            # Every char from the first to the last is the run's: no line break can be added
            # (that needs an unmatched char between two matched ones).
            after = " " if last + 1 < n and text[last + 1] == " " else ""
            out.append(("".join(text[f : last + 1]) + after, idx))
            continue
        # PDFium's GetTextByPredicate, over the only chars that can change its output.
        parts: list[str] = []
        has_pre = False
        add_lf = first_nonspace < f
        posy = 0.0
        for i in range(f, min(last + 1, n - 1) + 1):
            ch = text[i]
            if gid[i] == k:
                if add_lf and not has_pre:
                    origin(handle, i, pox, poy)
                    if abs(posy - oy.value) > 0:
                        posy = oy.value
                        if parts:
                            parts.append("\r\n")
                has_pre = True
                add_lf = False
                parts.append(ch)
            elif ch == " ":
                if has_pre:
                    parts.append(" ")
                    has_pre = False
                    add_lf = False
            else:
                has_pre = False
                add_lf = True
        out.append(("".join(parts), idx))
    return out


def _chars(typed: Any, handle: Any, raw: Any, n: int) -> tuple[list[str], list[_Box]] | None:
    """Each char's unicode ("" for none) and box ``(ok, left, right, bottom, top)``, as PDFium
    holds them; None when the page's text does not map char for char."""
    buf = (ctypes.c_ushort * (n + 1))()
    got = raw.FPDFText_GetText(typed, 0, n, buf)
    # The page's text holds one UTF-16 unit per char (plus the NUL) unless some char has no
    # text (control chars) or needs two units: then ask char by char.
    text: list[str]
    if got == n + 1:
        text = list(ctypes.string_at(buf, 2 * n).decode("utf-16-le", "surrogatepass"))
    else:
        text = [""] * n
    unicode = c_function(raw.FPDFText_GetUnicode, ctypes.c_uint)
    for i, ch in enumerate(text):
        # U+FFFE stands in the page's text for a char without unicode and for a soft hyphen
        # (U+0002 in bounded text).
        if got != n + 1 or ch == "\ufffe" or "\ud800" <= ch <= "\udfff":
            code = unicode(handle, i)
            if 0xD800 <= code <= 0xDFFF or code > 0x10FFFF:
                return None  # bounded text would drop or pair it: not worth copying
            text[i] = chr(code) if code else ""
    box = c_function(raw.FPDFText_GetCharBox, ctypes.c_int)
    left, right, bottom, top = (ctypes.c_double() for _ in range(4))
    refs = [ctypes.byref(v) for v in (left, right, bottom, top)]
    pl, pr, pb, pt = refs
    # (ok, left, right, bottom, top): the call runs before the values are read.
    boxes = [
        (box(handle, i, pl, pr, pb, pt), left.value, right.value, bottom.value, top.value)
        for i in range(n)
    ]
    return text, boxes


def _groups(
    boxes: list[_Box], rects: list[_Rect]
) -> tuple[list[int], list[tuple[int, int, int]], set[float], set[float], list[_Rect]] | None:
    """Which rect each char makes (-1: none); each rect's first and last char and how many chars
    make it; the x (y) of the vertical (horizontal) zero-size boxes; and the boxes outside rects
    that still have an area (a space 0.009 pt high, a flipped glyph) as rects. None unless the
    chars add up to ``rects``."""
    gid = [-1] * len(boxes)
    spans: list[tuple[int, int, int]] = []
    points_x: set[float] = set()
    points_y: set[float] = set()
    strays: list[_Rect] = []
    k = 0
    first = -1
    last = -1
    members = 0
    rl, rt, rr, rb = rects[0]
    ul = ur = ub = ut = 0.0
    for i, (_, x0, x1, y0, y1) in enumerate(boxes):
        w = x1 - x0
        h = y1 - y0
        if w < _EPS or h < _EPS:
            if _EPS_DOUBT <= w < _EPS or _EPS_DOUBT <= h < _EPS:
                return None  # too near the threshold to judge in doubles
            if x0 == x1:
                points_x.add(x0)
            elif y0 == y1:
                points_y.add(y0)
            else:
                strays.append((min(x0, x1), max(y0, y1), max(x0, x1), min(y0, y1)))
            continue
        if first < 0:
            first = i
            ul, ur, ub, ut = x0, x1, y0, y1
        elif rl <= x0 and x1 <= rr and rb <= y0 and y1 <= rt:
            if x0 < ul:
                ul = x0
            if x1 > ur:
                ur = x1
            if y0 < ub:
                ub = y0
            if y1 > ut:
                ut = y1
        else:
            # Outside the rect: the next rect starts here, once this one is complete.
            if ul != rl or ut != rt or ur != rr or ub != rb:
                return None
            spans.append((first, last, members))
            k += 1
            if k >= len(rects):
                return None
            rl, rt, rr, rb = rects[k]
            first = i
            members = 0
            ul, ur, ub, ut = x0, x1, y0, y1
        last = i
        members += 1
        gid[i] = k
    if first < 0 or (ul, ut, ur, ub) != (rl, rt, rr, rb) or k != len(rects) - 1:
        return None
    spans.append((first, last, members))
    return gid, spans, points_x, points_y, strays


def _overlapping(rects: list[_Rect], strays: list[_Rect]) -> set[int]:
    """Rects that share an area (not just an edge) with another rect or with a stray box.

    Boxes are filed in a grid of :data:`_CELL` pt squares and compared with the boxes filed
    before them in the cells they cover: a few comparisons a box, where comparing every pair
    of a line's runs would be quadratic (a page of one object per char has lines of 80 runs).
    """
    out: set[int] = set()
    boxes = rects + strays
    grid: dict[tuple[int, int], list[int]] = {}
    for k, (left, top, right, bottom) in enumerate(boxes):
        seen: set[int] = set()
        for cx in range(int(left // _CELL), int(right // _CELL) + 1):
            for cy in range(int(bottom // _CELL), int(top // _CELL) + 1):
                cell = grid.setdefault((cx, cy), [])
                for j in cell:
                    if j in seen:
                        continue
                    seen.add(j)
                    o_left, o_top, o_right, o_bottom = boxes[j]
                    if o_left < right and left < o_right and o_bottom < top and bottom < o_top:
                        out.add(j)
                        out.add(k)
                cell.append(k)
    m = len(rects)
    return {k for k in out if k < m}
