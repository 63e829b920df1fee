"""Recognizing portion marks at the start of text (MARKINGS.md section 1).

A paragraph, heading, list item, table cell, caption or e-mail subject may start with a portion
mark. Deciding that ``(C)`` is a mark and not an enumerator or a copyright sign is a question of
text, not of marking rules: this module only finds *candidates*; the caller parses them, and a
candidate that does not parse is an invalid marking (fail closed), never plain text.

Enumerated runs need context: ``(C)`` after an item that started ``(B)`` continues a list. Pass
the enumerator of the previous item (see :func:`leading_enumerator`) as ``previous_enumerator``;
the caller resets it to ``None`` whenever the run is broken (a new list, a heading...).
"""

from __future__ import annotations

import re

from garrison.security.markings._text import map_normalized

__all__ = ["find_portion_mark", "is_portion_candidate", "leading_enumerator"]

# A classification word, read as its abbreviation, then ")" or "/" (spaces allowed before "/").
_LEVEL_START = re.compile(
    r"(TOP SECRET|UNCLASSIFIED|CONFIDENTIAL|SECRET|CUI|TS|U|C|S)\s*(/|$)", re.IGNORECASE
)
_COPYRIGHT_AFTER = re.compile(r"\s*(\d|copyright\b|copr\.?(\s|$))", re.IGNORECASE)
_ENUMERATOR = re.compile(r"\s*\(([A-Za-z]|\d{1,3}|[ivxlcdm]{1,6}|[IVXLCDM]{1,6})\)")
# A mark is short; a parenthesized aside running past this is not a mark we could read anyway.
_MAX_MARK = 400
#: How far into a line the formatting before a mark may reach.
_MAX_PREFIX = 400
# An opening parenthesis, or a form NFKC reads as one (full-width, small).
_OPENING = re.compile("[(\uff08\ufe59]")
_FIRST_LINE = re.compile(r"[^\n\r\v\f\x1c\x1d\x1e\x85\u2028\u2029]*")
# What a reader looks through before a mark: spaces, a block quote, a bullet, a Markdown heading,
# emphasis, HTML tags (``> - **<b>(S//NF)</b>** ...``).
_PREFIX = re.compile(
    r"(?:\s+|>|[-+•◦▪‣·–—](?=\s)|\*{1,3}|_{1,3}|~~|`|\#{1,6}(?=\s)|<[A-Za-z/][^<>]{0,200}>)+"
)
# ... and after it: closing emphasis or tags (``**(S//NF)** text``).
_SUFFIX = re.compile(r"(?:\*{1,3}|_{1,3}|~~|`|</?[A-Za-z][^<>]{0,200}>)+")


def leading_enumerator(text: str) -> str | None:
    """Return the enumerator a text starts with (``A`` for ``(A) ...``), or ``None``.

    Feed the result for one list item to :func:`find_portion_mark` for the next one.
    """
    match = _ENUMERATOR.match(text)
    return match.group(1) if match else None


def _continues_run(letter: str, previous: str | None) -> bool:
    return (
        previous is not None
        and len(previous) == 1
        and previous.isupper()
        and ord(letter) == ord(previous) + 1
    )


def find_portion_mark(
    text: str, *, previous_enumerator: str | None = None
) -> tuple[str, int] | None:
    """Return ``(mark, end)`` for a portion-mark candidate at the start of ``text``, else ``None``.

    ``mark`` is the candidate with its parentheses, normalized (pass it to :func:`parse_marking`);
    ``end`` is the offset in ``text`` just after the closing parenthesis and any closing emphasis
    or tag. Leading white space, invisible characters (zero-width, byte-order mark) and formatting
    a reader looks through (a Markdown block quote ``>``, a list bullet, ``**`` or ``*`` emphasis,
    HTML tags) are skipped. The mark is read through :func:`normalize_marking_text`, so
    ``(TOP\u00a0 SECRET//SI//NF)`` is a mark. Plain text such as ``(a)``, ``(c) 2024``,
    ``(C) Copyright``, ``(c/o ...)`` or ``(s/he)`` gives ``None``; ``(S/NF)`` is a candidate (an
    invalid one). ``previous_enumerator`` is the enumerator of the previous item in the same run,
    so that ``(C)`` after ``(B)`` is read as a list enumerator. A strong candidate (containing
    ``//``) whose closing parenthesis is missing on its line is returned up to the end of the
    line, so that parsing it fails rather than the mark being silently skipped.
    """
    opening = _OPENING.search(text, 0, _MAX_PREFIX)
    if opening is None:  # the common case, decided without normalizing anything
        return None
    first = _FIRST_LINE.match(text, 0, opening.start() + _MAX_MARK + 64)
    assert first is not None
    norm, ends = map_normalized(first.group(0))
    prefix = _PREFIX.match(norm)
    start = prefix.end() if prefix else 0
    if not norm.startswith("(", start):
        return None
    line = norm[start : start + _MAX_MARK + 2]
    close = line.find(")")
    inner = line[1:close] if close >= 0 else line[1:]
    content = inner.strip()
    strong = "//" in content
    if close < 0:
        if not (strong and _is_mark(content)):
            return None
        mark = line.rstrip()
        return mark, ends[start + len(mark) - 1]
    mark = line[: close + 1]
    stop = start + close + 1
    after = _SUFFIX.match(norm, stop)
    end = ends[(after.end() if after else stop) - 1]
    if content == "FOUO":
        return mark, end
    if not _is_mark(content):
        return None
    if not strong:
        if content != content.upper():
            return None  # lower- or mixed-case without "//": (c/o ...), (s/he), (Secret)
        if content in ("C", "S", "U") and _continues_run(content, previous_enumerator):
            return None
        if content == "C" and _COPYRIGHT_AFTER.match(norm, stop):
            return None
    return mark, end


def _is_mark(content: str) -> bool:
    """Starts with a classification followed by ``/`` or the end, or is a non-US ``//`` mark."""
    return content.startswith("//") or _LEVEL_START.match(content) is not None


def is_portion_candidate(text: str, *, previous_enumerator: str | None = None) -> bool:
    """True when ``text`` starts with a portion-mark candidate (see :func:`find_portion_mark`)."""
    return find_portion_mark(text, previous_enumerator=previous_enumerator) is not None
