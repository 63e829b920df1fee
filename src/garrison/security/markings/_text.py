"""One normalization of marking text, and which whole lines are banner candidates.

``garrison marking check``, banner detection and portion detection all read text through
:func:`normalize_marking_text`: Unicode NFKC, zero-width characters and byte-order marks removed,
every space character (no-break space, tab, em space...) read as one space and runs collapsed.
Line breaks (CR, LF, U+2028, U+2029, vertical tab, form feed...) are kept: marks are found at the
start of lines and banners are whole lines.
"""

from __future__ import annotations

import re
import unicodedata

from garrison.security.markings._countries import ISO_3166_ALPHA3

__all__ = [
    "INVISIBLE",
    "LINE_BREAKS",
    "is_banner_candidate",
    "map_normalized",
    "normalize_marking_text",
]

#: Characters a reader does not see: removed before a mark is read.
INVISIBLE = frozenset("\u200b\u200c\u200d\u2060\ufeff\u00ad")
#: Characters that end a line (``str.splitlines`` breaks on exactly these).
LINE_BREAKS = frozenset("\n\r\v\f\x1c\x1d\x1e\x85\u2028\u2029")
#: A banner line is short; a longer line is prose that happens to hold ``//``.
MAX_BANNER = 200

_LEVEL_WORDS = frozenset({"TOP SECRET", "SECRET", "CONFIDENTIAL", "UNCLASSIFIED", "CUI"})
_LEVEL_ABBREVIATIONS = frozenset({"TS", "S", "C", "U"})
_FOREIGN_WORDS = frozenset({"NATO", "COSMIC", "JOINT", "FGI"})
_FIRST_WORD = re.compile(r" ?([A-Za-z]+)(?![A-Za-z])")
# After a mixed-case owner word: a level (``Top Secret``, ``Restricted``) or, for JOINT and
# several owners, more codes before it (``//Joint Secret Can Usa``, ``//Can Gbr Secret``).
_FOREIGN_LEVEL = re.compile(
    r"(?: [A-Z]{3,4})* (?:TOP SECRET|SECRET|CONFIDENTIAL|RESTRICTED|UNCLASSIFIED)(?![A-Z])"
)


#: ASCII that normalization changes: space characters other than the space (tab, unit
#: separator) become one, and a run of spaces collapses.
_ASCII_CHANGES = re.compile(r"[\t\x1f]|  ")


def _piece(char: str) -> str:
    if char in INVISIBLE:
        return ""
    if char in LINE_BREAKS:
        return char
    if char.isspace():
        return " "
    piece = unicodedata.normalize("NFKC", char)
    return "".join(
        "" if c in INVISIBLE else (" " if c.isspace() and c not in LINE_BREAKS else c)
        for c in piece
    )


def map_normalized(text: str) -> tuple[str, list[int]]:
    """``text`` normalized, and for each normalized character the offset in ``text`` just past
    the character it came from (so a match in the normalized text maps back to the original)."""
    if text.isascii() and _ASCII_CHANGES.search(text) is None:
        # Nothing for NFKC to change and no space run to collapse: the text maps to itself.
        # Ingest reads the first line of every paragraph this way; the loop below costs
        # microseconds a character.
        return text, list(range(1, len(text) + 1))
    out: list[str] = []
    ends: list[int] = []
    for index, char in enumerate(text):
        for c in _piece(char):
            if c == " " and out and out[-1] == " ":
                ends[-1] = index + 1
                continue
            out.append(c)
            ends.append(index + 1)
    return "".join(out), ends


def normalize_marking_text(text: str) -> str:
    """NFKC, invisible characters removed, space characters read as one space (line breaks kept).

    The one normalization every reader of marks uses: ``(TOP\\u00a0 SECRET//SI//NF)`` reads as
    ``(TOP SECRET//SI//NF)``.
    """
    if text.isascii() and "  " not in text and "\t" not in text:
        return text
    normalized = unicodedata.normalize("NFKC", text)
    chars: list[str] = []
    for c in normalized:
        if c in INVISIBLE:
            continue
        if c not in LINE_BREAKS and c.isspace():
            if chars and chars[-1] == " ":
                continue
            c = " "
        chars.append(c)
    return "".join(chars)


def is_banner_candidate(line: str) -> bool:
    """Whether a whole line looks like a banner, in any case (MARKINGS.md section 1).

    A candidate either holds ``//`` with a classification word before the first one
    (``Top Secret//SI//NoForn``, ``SECRET//RD//NOFORN``, ``CUI//SP-PRVCY``; never ``://`` as in a
    URL), or starts with ``//`` followed by an upper-case level word, a country owner code,
    ``NATO``, ``COSMIC``, ``JOINT`` or ``FGI`` (``//NATO SECRET``; never a ``// comment`` such as
    ``//ACCORDION BUTTON ACTION``). A candidate still has to validate: one that does not is an
    invalid marking, never text. Upper-case lines without ``//`` (``SECRET``) are decided by
    parsing them (see ``garrison.parse._banner.is_banner_line``).
    """
    text = normalize_marking_text(line).strip()
    if not text or len(text) > MAX_BANNER or text.startswith("("):
        return False
    if any(c in LINE_BREAKS for c in text):
        return False
    cut = text.find("//")
    if cut < 0:
        return False
    if cut == 0:
        word = _FIRST_WORD.match(text, 2)
        if word is None:
            return False
        token = word.group(1)
        if token != token.upper():
            # Mixed case (``//Nato Secret//Atomal``, ``//Deu Secret``): an owner word followed
            # by a level word, which a ``// comment`` hardly is.
            upper = token.upper()
            if upper not in _FOREIGN_WORDS and upper not in ISO_3166_ALPHA3:
                return False
            return _FOREIGN_LEVEL.match(text[word.end(1) :].upper()) is not None
        if token in _FOREIGN_WORDS or token in ISO_3166_ALPHA3:
            return True
        rest = text[word.start(1) :].upper()
        return any(re.match(re.escape(w) + r"(?![A-Z])", rest) for w in _LEVEL_WORDS)
    if text[cut - 1] == ":":
        return False
    head = re.sub(r" ?/ ?$", "", text[:cut]).strip()
    return head.upper() in _LEVEL_WORDS or head in _LEVEL_ABBREVIATIONS
