"""Banner lines: a whole line that is a marking (``SECRET//NOFORN``), shared by the parsers."""

from __future__ import annotations

from garrison.core.errors import MarkingError

__all__ = ["is_banner_line", "split_banner_lines"]


def is_banner_line(line: str) -> bool:
    """Whether ``line`` is, whole, a banner line (``SECRET//NOFORN``, ``Top Secret//SI//NoForn``).

    A line holding ``//`` is a banner when it looks like one in any case
    (:func:`~garrison.security.markings.is_banner_candidate`): ``SECRET//RD//NOFORN`` counts even
    though ``RD`` is unknown, so that ingest quarantines it as an invalid marking instead of
    storing it as text. Without ``//``, only upper-case lines that parse (``SECRET``) qualify --
    a lone ``Secret`` in prose is a word. Portion marks (``(U)``) are not banners. Non-US,
    NATO and JOINT lines (``//NATO SECRET//ATOMAL``, ``//Deu Secret``) count as banners, and
    must then validate: ingest never reads such a document as unmarked.
    """
    from garrison.security.markings import (
        is_banner_candidate,
        normalize_marking_text,
        parse_marking,
    )

    if is_banner_candidate(line):
        return True
    text = normalize_marking_text(line).strip()
    if "//" in text:  # decided by the candidate rule: "//ACCORDION BUTTON ACTION" is code
        return False
    if len(text) < 3 or len(text) > 200 or text.startswith("("):
        return False
    if not any(c.isalpha() for c in text) or any(c.islower() for c in text):
        return False
    try:
        parse_marking(text)
    except MarkingError as exc:
        return exc.rule == "unsupported-marking"
    return True


def split_banner_lines(text: str, *, from_end: bool = False) -> tuple[list[str], str]:
    """Peel banner lines off the start (or end) of ``text``: ``(banners, rest)``."""
    lines = text.splitlines()  # every line break: LF, CR, U+2028/9, VT, FF
    order = range(len(lines) - 1, -1, -1) if from_end else range(len(lines))
    banners: list[str] = []
    consumed = 0
    for i in order:
        line = lines[i].strip()
        if line and not is_banner_line(line):
            break
        if line:
            banners.append(line)
        consumed += 1
    if not banners:
        return [], text
    if from_end:
        banners.reverse()
        rest = lines[: len(lines) - consumed]
    else:
        rest = lines[consumed:]
    return banners, "\n".join(rest).strip()
