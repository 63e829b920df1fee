""" "Did you mean SECRET?": the nearest known token for a misspelt one in a marking typed by a
user.

A suggestion is made only when it fixes something: the token of the input that the parser
rejected (or the classification at its head) is replaced by its closest known token
(:func:`difflib.get_close_matches`), and the result must parse -- or at least fail on something
else. Known tokens come from the marking registry (classifications, dissemination controls, SCI
systems, CUI categories, countries and groups), the workspace's site additions included when a
workspace is open.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterable

from garrison.core.errors import MarkingError
from garrison.security.markings import (
    BUILTIN_REGISTRY,
    CUI_CONTROLS,
    ISO_3166_ALPHA3,
    MarkingRegistry,
    parse_marking,
)
from garrison.security.markings._model import DISSEM_FLAGS

__all__ = ["did_you_mean", "with_suggestion"]

_CLASSIFICATIONS = ("UNCLASSIFIED", "CONFIDENTIAL", "SECRET", "TOP SECRET", "CUI")
_SPELLINGS = ("NF", "OC", "IMC", "PR", "REL TO", "RELIDO", "DISPLAY ONLY", "HCS", "SI", "TK")
_TOKEN = re.compile(r"'([^']+)' is not a known marking token")
_CODE = re.compile(r"(\S+) is not a known country or group")
_SPLIT = re.compile(r"//|/|,|\(|\)")


def _vocabulary(registry: MarkingRegistry, *, countries: bool) -> list[str]:
    if countries:
        return sorted({*ISO_3166_ALPHA3, *registry.group_map()})
    words: set[str] = {*_CLASSIFICATIONS, *_SPELLINGS, *DISSEM_FLAGS.values(), *CUI_CONTROLS}
    words.update(registry.sci_systems)
    words.update(registry.cui_categories)
    return sorted(words)


def _suspects(exc: MarkingError, text: str) -> Iterable[tuple[str, bool]]:
    """(token, is_country) pairs the error points at, most likely first."""
    message = str(exc)
    if exc.rule == "unknown-token":
        for pattern, countries in ((_TOKEN, False), (_CODE, True)):
            found = pattern.search(message)
            if found:
                yield found.group(1), countries
    elif exc.rule == "syntax":
        # "a marking starts with its classification": the head may be a misspelt one.
        parts = [p.strip() for p in _SPLIT.split(text) if p.strip()]
        if parts:
            yield parts[0].upper(), False


def _closest(token: str, vocabulary: list[str], cutoff: float) -> list[str]:
    """Close matches, best first; on a tie the one sharing the longer start (GBX: GBR, not VGB)."""
    close = difflib.get_close_matches(token, vocabulary, n=10, cutoff=cutoff)

    def rank(word: str) -> tuple[float, int, str]:
        ratio = difflib.SequenceMatcher(None, token, word).ratio()
        start = len(_common_start(token, word))
        return (-ratio, -start, word)

    return sorted(close, key=rank)[:3]


def _common_start(a: str, b: str) -> str:
    n = 0
    while n < min(len(a), len(b)) and a[n] == b[n]:
        n += 1
    return a[:n]


def did_you_mean(
    text: str, exc: MarkingError, registry: MarkingRegistry | None = None
) -> str | None:
    """The known token the user probably meant in ``text`` (which raised ``exc``), or None."""
    registry = registry or BUILTIN_REGISTRY
    for token, countries in _suspects(exc, text):
        vocabulary = _vocabulary(registry, countries=countries)
        cutoff = 0.6 if len(token) > 3 else 0.5
        for candidate in _closest(token, vocabulary, cutoff):
            fixed = re.sub(re.escape(token), candidate, text, count=1, flags=re.IGNORECASE)
            if fixed == text:
                continue
            try:
                parse_marking(fixed, registry=registry)
            except MarkingError as again:
                if str(again) == str(exc):
                    continue
            return candidate
    return None


def with_suggestion(
    exc: MarkingError, text: str | None = None, registry: MarkingRegistry | None = None
) -> str:
    """``exc``'s message, with " Did you mean X?" when a near miss explains it."""
    message = exc.message if hasattr(exc, "message") else str(exc)
    source = text if text is not None else exc.text
    if not source or "Did you mean" in message:
        return message
    suggestion = did_you_mean(source, exc, registry)
    if suggestion is None:
        return message
    return f"{message} Did you mean {suggestion}?"
