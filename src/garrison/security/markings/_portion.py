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

__all__ = ["find_portion_mark", "is_portion_candidate", "leading_enumerator"]

# A classification word, read as its abbreviation, then ")" or "/" (spaces allowed before "/").
_LEVEL_START = re.compile(
    r"(TOP SECRET|UNCLASSIFIED|CONFIDENTIAL|SECRET|CUI|TS|U|C|S)\s*(/|$)", re.IGNORECASE
)
_COPYRIGHT_AFTER = re.compile(r"\s*(\d|copyright\b|copr\.?(\s|$))", re.IGNORECASE)
_ENUMERATOR = re.compile(r"\s*\(([A-Za-z]|\d{1,3}|[ivxlcdm]{1,6}|[IVXLCDM]{1,6})\)")
# A mark is short; a parenthesized aside running past this is not a mark we could read anyway.
_MAX_MARK = 400


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

    ``mark`` is the candidate with its parentheses (pass it to :func:`parse_marking`); ``end`` is
    the offset just after the closing parenthesis. Leading white space is skipped. Plain text
    such as ``(a)``, ``(c) 2024``, ``(C) Copyright``, ``(c/o ...)`` or ``(s/he)`` gives ``None``;
    ``(S/NF)`` is a candidate (an invalid one). ``previous_enumerator`` is the enumerator of the
    previous item in the same run, so that ``(C)`` after ``(B)`` is read as a list enumerator.
    A strong candidate (containing ``//``) whose closing parenthesis is missing on its line is
    returned up to the end of the line, so that parsing it fails rather than the mark being
    silently skipped.
    """
    stripped = text.lstrip()
    start = len(text) - len(stripped)
    if not stripped.startswith("("):
        return None
    line = stripped.split("\n", 1)[0][: _MAX_MARK + 2]
    close = line.find(")")
    inner = line[1:close] if close >= 0 else line[1:]
    content = inner.strip()
    strong = "//" in content
    if close < 0:
        return (line.rstrip(), start + len(line.rstrip())) if strong and _is_mark(content) else None
    end = start + close + 1
    if content == "FOUO":
        return stripped[: close + 1], end
    if not _is_mark(content):
        return None
    if not strong:
        if content != content.upper():
            return None  # lower- or mixed-case without "//": (c/o ...), (s/he), (Secret)
        if content in ("C", "S", "U") and _continues_run(content, previous_enumerator):
            return None
        if content == "C" and _COPYRIGHT_AFTER.match(text, end):
            return None
    return stripped[: close + 1], end


def _is_mark(content: str) -> bool:
    """Starts with a classification followed by ``/`` or the end, or is a non-US ``//`` mark."""
    return content.startswith("//") or _LEVEL_START.match(content) is not None


def is_portion_candidate(text: str, *, previous_enumerator: str | None = None) -> bool:
    """True when ``text`` starts with a portion-mark candidate (see :func:`find_portion_mark`)."""
    return find_portion_mark(text, previous_enumerator=previous_enumerator) is not None
