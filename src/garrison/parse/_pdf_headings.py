"""PDF headings: which blocks of lines are section heads, and at what level.

A PDF says nothing of its structure in its text, so heads are recognised from how they look
and read, against the document's own body text:

- **the outline** (bookmarks), when it is used: a line (or two or three consecutive lines) of a
  page whose text is an outline entry pointing to that page is a head, at the entry's depth.
  Numbering is ignored on both sides (the outline says ``Foo``, the page ``1 Foo``).
- **size and weight**: the body size is the size most characters of the document are set in;
  a short block at least 1.2 times that size is a head, and so is a short bold line without
  terminal punctuation that starts in upper case and is not split into table cells (a
  numbered label such as ``Definition 3`` or ``Figure 2`` is not). Such styles are ranked,
  larger first and bold before regular at the same size, and the rank is the level.
- **numbering**: a short line in body style that opens with a section number (``2.3``,
  ``2.3.4``, ``Chapter 3``, ``Section IV``, ``Annex B``) and has no terminal punctuation is a
  head, ranked after the styled heads by the depth of its number. A single ``1.`` in body
  style stays a list item.

Heads must read as words (a large ``∑`` or an equation in a display font is no head). A
portion mark at the start of a head stays in its text: ingest reads it as the head's mark.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass

from garrison.parse._pdf_layout import _cells, _Line, _Page

#: Longest block (in characters) that may be a head, and most lines.
_MAX_CHARS = 200
_MAX_LINES = 3
#: A head in body size or weight is shorter than this.
_MAX_PLAIN_CHARS = 120
_MAX_PLAIN_WORDS = 16
#: Outline entries matched against one page's lines at most (and page-less entries in all).
_MAX_ENTRIES_PER_PAGE = 200
#: How much larger than body text a head is set.
_LARGER = 1.2

_PORTION = re.compile(r"^\s*\((?:U|C|S|TS|CUI|FOUO|//)[^)]{0,60}\)\s*", re.IGNORECASE)
_KEYWORD = r"(?:chapter|section|part|annex|appendix|article|kapitel|abschnitt|anhang)"
#: A section number before the words of a head: ``2.3``, ``2.3.4.``, ``A.1``, ``IV.``.
_MULTI = re.compile(r"(?:\d{1,3}|[A-Z])(?:\.\d{1,3})+\.?(?=\s+\S)")
_SINGLE = re.compile(r"(?:\d{1,3}|[A-Z]|[IVXLC]{1,6})\.?(?=\s+\S)")
_NAMED = re.compile(
    rf"{_KEYWORD}\s+(?:\d{{1,3}}(?:\.\d{{1,3}})*|[IVXLC]{{1,6}}|[A-Z])\b\.?(?::|\s|$)",
    re.IGNORECASE,
)
#: What ends a sentence or a clause rather than a head.
_TERMINAL = tuple(".,;:!?")
#: A line that ends in a page number or leader dots: a table of contents entry.
_TOC_ENTRY = re.compile(r"(?:\.\s*){3,}\d*$|\s\d{1,4}$")
_WORD = re.compile(r"[^\W\d_]{3,}")
#: A numbered label that opens a statement or a caption (``Definition 3``, ``Satz 1.1 (Name)``,
#: ``Figure 2``), set in bold like a head but no section of its own.
_LABEL = re.compile(r"[^\W\d_]+\s+\d{1,4}(?:\.\d{1,4})*[a-z]?\b(?!\.\d)\s*(?:\(.*\))?\s*[.:]?$")


@dataclass(frozen=True, slots=True)
class OutlineEntry:
    """One outline (bookmark) entry: its title, depth (1 = top) and page (1-based, or None)."""

    title: str
    level: int
    page: int | None


def _norm(text: str) -> str:
    """Letters and digits only, case-folded: spacing, hyphens and punctuation differ by tool."""
    return re.sub(r"[\W_]+", "", text.casefold())


def _strip_number(text: str) -> str:
    """``text`` without a leading portion mark and section number (``1.2``, ``Chapter 3``)."""
    text = _PORTION.sub("", text, count=1).strip()
    for pattern in (_NAMED, _MULTI, _SINGLE):
        m = pattern.match(text)
        if m:
            return text[m.end() :].lstrip(" :.-–—")
    return text


def _core(text: str) -> str:
    return _norm(_strip_number(text)) or _norm(text)


def numbering_depth(text: str) -> int | None:
    """The depth of the section number ``text`` opens with (``2.3.4 Scope`` -> 3), or None.

    Only numbers a list never uses count: several levels (``2.3``) or a keyword
    (``Annex B``, depth 1). A portion mark before the number is skipped.
    """
    text = _PORTION.sub("", text, count=1).strip()
    if _NAMED.match(text):
        return 1
    m = _MULTI.match(text)
    if m:
        return m.group().rstrip(".").count(".") + 1
    return None


def _reads_as_words(text: str) -> bool:
    """Mostly letters, with at least one real word: not an equation or a symbol."""
    visible = [c for c in text if not c.isspace()]
    if not visible or _WORD.search(text) is None:
        return False
    letters = sum(1 for c in visible if c.isalpha())
    return letters >= 0.6 * len(visible)


def body_size(pages: list[_Page]) -> float:
    """The size most characters of the document are set in (half-point steps)."""
    weights: Counter[float] = Counter()
    for page in pages:
        for ln in page.lines:
            for run in ln.runs:
                n = len(run.text.strip())
                if n:
                    weights[round(run.size * 2) / 2] += n
    return weights.most_common(1)[0][0] if weights else 0.0


#: A head's style: (size, bold, numbering depth) -- the depth only for body-style numbered heads.
Style = tuple[float, bool, int]


class Headings:
    """Decides heads for one document: outline matches first, then style and numbering."""

    def __init__(self, pages: list[_Page], outline: list[OutlineEntry]) -> None:
        self.body = body_size(pages)
        self._outline: dict[int | None, list[OutlineEntry]] = {}
        for entry in outline:
            entries = self._outline.setdefault(entry.page, [])
            # More entries than that for one page (or for none) are no outline of its heads,
            # and matching them all against every line would cost more than the page.
            if _norm(entry.title) and len(entries) < _MAX_ENTRIES_PER_PAGE:
                entries.append(entry)
        #: Page -> {first line index: (last line index + 1, level)} of outline heads found.
        self.spans: dict[int, dict[int, tuple[int, int]]] = {}

    def find_outline(self, page: int, lines: list[_Line]) -> dict[int, tuple[int, int]]:
        """Outline heads among a page's content lines: first index -> (end, level)."""
        entries = self._outline.get(page, []) + self._outline.get(None, [])
        found: dict[int, tuple[int, int]] = {}
        if not entries:
            return found
        norms = [_norm(ln.text) for ln in lines]
        cores = [_core(ln.text) for ln in lines]
        taken: set[int] = set()
        for entry in entries:
            want = _core(entry.title)
            for i in range(len(lines)):
                if i in taken or not cores[i] or not want.startswith(cores[i]):
                    continue
                got = cores[i]
                end = i + 1
                while got != want and end < min(len(lines), i + _MAX_LINES) and end not in taken:
                    got += norms[end]
                    end += 1
                if got == want:
                    found[i] = (end, entry.level)
                    taken.update(range(i, end))
                    if entry.page is None:  # a page-less entry marks its first occurrence only
                        self._outline[None].remove(entry)
                    break
        self.spans[page] = found
        return found

    def look(self, block: list[_Line]) -> Style:
        """The style a block is set in, written as :meth:`style` writes a head's."""
        size = round(block[0].size * 2) / 2
        bold = all(ln.bold for ln in block)
        return (max(size, self.body) if bold else size, bold, 0)

    def style(self, block: list[_Line], text: str) -> Style | None:
        """The head style of a block of lines, or None when it is body text."""
        if len(block) > _MAX_LINES or len(text) > _MAX_CHARS or text.endswith((",", ";")):
            return None
        bare = _PORTION.sub("", text, count=1).strip()
        if not bare or not (bare[0].isalnum() or bare[0] in "\"'“‘«") or not _reads_as_words(bare):
            return None
        size = round(block[0].size * 2) / 2
        bold = all(ln.bold for ln in block)
        if self.body and size >= self.body * _LARGER:
            return (size, bold, 0)
        # In body size a head is one phrase: not a table's header row (cells apart), not a term
        # of a glossary (lower case) -- a larger size says more than weight does.
        plain = (
            len(block) <= 2
            and not bare[0].islower()
            and all(len(_cells(ln)) == 1 for ln in block)
            and len(text) <= _MAX_PLAIN_CHARS
            and len(text.split()) <= _MAX_PLAIN_WORDS
            and not text.endswith(_TERMINAL)
        )
        if not plain:
            return None
        if bold and (_LABEL.match(bare) is None or _NAMED.match(bare) is not None):
            return (max(size, self.body), True, 0)
        depth = numbering_depth(bare)
        if depth is not None and len(block) == 1 and _TOC_ENTRY.search(bare) is None:
            return (self.body, False, depth)
        return None


def rank_levels(styles: set[Style], named: dict[Style, int] | None = None) -> dict[Style, int]:
    """Heading level of each style: larger first, bold before regular, then by number depth.

    ``named`` holds the styles of heads the outline named, with the level it gave them; a
    style ranked below one of those comes one level below it.
    """
    named = named or {}
    order = sorted(styles | set(named), key=lambda s: (s[2] > 0, s[2], -s[0], not s[1]))
    levels: dict[Style, int] = {}
    current = 0
    for style in order:
        current = named[style] if style in named else min(6, current + 1)
        levels[style] = current
    return levels
