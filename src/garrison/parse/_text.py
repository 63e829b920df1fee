"""Decoding bytes to text, shared by the text-like parsers and by detection.

``decode_text`` tries byte-order marks, then strict UTF-8, then charset detection
(``charset-normalizer``), and refuses data that is binary rather than text. Newlines are
normalized to ``\\n`` and lines longer than a limit are split, so one huge line cannot blow up
a parser downstream.
"""

from __future__ import annotations

import codecs
import csv
import io
from collections import Counter

from garrison.parse._registry import ParseFailure

__all__ = ["decode_text", "sniff_delimiter", "split_long_lines"]

_BOMS: tuple[tuple[bytes, str], ...] = (
    (codecs.BOM_UTF32_LE, "utf-32-le"),
    (codecs.BOM_UTF32_BE, "utf-32-be"),
    (codecs.BOM_UTF8, "utf-8"),
    (codecs.BOM_UTF16_LE, "utf-16-le"),
    (codecs.BOM_UTF16_BE, "utf-16-be"),
)

#: Control characters that never occur in real text (tab, newlines and form feed excluded).
_BINARY_CHARS = frozenset(chr(c) for c in range(32) if chr(c) not in "\t\n\r\f\v\x1b") | {"\x7f"}
_MAX_BINARY_RATIO = 0.01


def _looks_binary(text: str) -> bool:
    sample = text[:65536]
    if not sample:
        return False
    bad = sum(1 for ch in sample if ch in _BINARY_CHARS)
    return bad / len(sample) > _MAX_BINARY_RATIO


def _utf16_without_bom(data: bytes) -> str | None:
    """UTF-16 text without a BOM shows NULs in every other byte (for mostly-ASCII text)."""
    sample = data[:4096]
    if len(sample) < 4:
        return None
    even = sample[0::2].count(0) / len(sample[0::2])
    odd = sample[1::2].count(0) / len(sample[1::2])
    guess = None
    if odd > 0.4 and even < 0.05:
        guess = "utf-16-le"
    elif even > 0.4 and odd < 0.05:
        guess = "utf-16-be"
    if guess is None:
        return None
    # Only mostly-ASCII text shows the pattern reliably; anything else is binary by chance.
    decoded = sample[: len(sample) // 2 * 2].decode(guess, "replace")
    ascii_text = sum(1 for ch in decoded if ch.isascii() and (ch.isprintable() or ch in "\t\n\r"))
    return guess if ascii_text >= 0.8 * len(decoded) else None


def split_long_lines(text: str, max_line_chars: int) -> str:
    """Wrap any line longer than ``max_line_chars`` into pieces of at most that length."""
    if max_line_chars <= 0 or len(text) <= max_line_chars:
        return text
    out: list[str] = []
    for line in text.split("\n"):
        if len(line) <= max_line_chars:
            out.append(line)
            continue
        out.extend(line[i : i + max_line_chars] for i in range(0, len(line), max_line_chars))
    return "\n".join(out)


def _normalize(text: str, max_line_chars: int) -> str:
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    return split_long_lines(text, max_line_chars)


def decode_text(data: bytes, max_line_chars: int = 1_000_000) -> tuple[str, str]:
    """Decode ``data`` to ``(text, encoding)``; newlines normalized, huge lines split.

    Raises ``ParseFailure("unsupported-type", ...)`` for binary data and
    ``ParseFailure("corrupt", ...)`` when no encoding fits.
    """
    encoding: str | None = None
    text: str | None = None
    for bom, name in _BOMS:
        if data.startswith(bom):
            try:
                text = data[len(bom) :].decode(name)
            except UnicodeDecodeError as exc:
                raise ParseFailure("corrupt", f"the text is not valid {name}") from exc
            encoding = name
            break
    if text is None and b"\x00" in data[:4096]:
        guess = _utf16_without_bom(data)
        if guess is not None:
            try:
                text = data.decode(guess)
                encoding = guess
            except UnicodeDecodeError:
                text = None
    if text is None:
        try:
            text = data.decode("utf-8")
            encoding = "utf-8"
        except UnicodeDecodeError:
            text = None
    if text is None:
        if b"\x00" in data[:65536]:
            raise ParseFailure("unsupported-type", "the file is binary, not text")
        from charset_normalizer import from_bytes

        best = from_bytes(data).best()
        if best is None:
            raise ParseFailure("corrupt", "the file is not text in any known encoding")
        encoding = best.encoding
        text = str(best)
    if _looks_binary(text):
        raise ParseFailure("unsupported-type", "the file is binary, not text")
    assert encoding is not None
    return _normalize(text, max_line_chars), encoding


_DELIMITERS = (",", "\t", ";", "|")


def sniff_delimiter(text: str, max_rows: int = 200) -> tuple[str, int, int] | None:
    """Guess the delimiter of delimited text: ``(delimiter, rows, columns)`` or None.

    A delimiter qualifies when most rows (the first row may be a title row) split into the
    same number (>= 2) of fields. Among candidates the most consistent, then the widest, wins.
    """
    lines = [line for line in text.split("\n")[: max_rows * 4] if line.strip()]
    if len(lines) < 2:
        return None
    sample = "\n".join(lines[:max_rows])
    best: tuple[float, int, str, int] | None = None
    for delim in _DELIMITERS:
        if delim not in sample:
            continue
        try:
            rows = list(csv.reader(io.StringIO(sample), delimiter=delim))
        except csv.Error:
            continue
        counts = [len(r) for r in rows if any(cell.strip() for cell in r)]
        if len(counts) < 2:
            continue
        columns, hits = Counter(counts).most_common(1)[0]
        if columns < 2:
            continue
        consistency = hits / len(counts)
        if consistency < 0.8:
            continue
        key = (consistency, columns, delim, len(counts))
        if best is None or key[:2] > best[:2]:
            best = key
    if best is None:
        return None
    return best[2], best[3], best[1]
