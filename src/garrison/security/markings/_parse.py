"""Reading marking lines: banner and portion spellings, with common case/space variations.

The parser classifies every token by its form, checks that each ``//`` segment holds one
category only, resolves tokens against the registry (unknown is an error), and hands the result
to :class:`Marking`, which applies the section 2 rules and writes the canonical form.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

from garrison.core.errors import MarkingError
from garrison.security.markings._level import Level
from garrison.security.markings._model import Marking, check_known
from garrison.security.markings._registry import BUILTIN_REGISTRY, CUI_CONTROLS, MarkingRegistry
from garrison.security.markings._rules import fail
from garrison.security.markings._sci import parse_sci_token
from garrison.security.markings._text import normalize_marking_text

__all__ = ["parse_marking"]

# Banner and portion spellings of the dissemination flags.
_DISSEM: dict[str, str] = {
    "FOUO": "fouo",
    "ORCON": "orcon",
    "OC": "orcon",
    "ORCON-USGOV": "orcon_usgov",
    "OC-USGOV": "orcon_usgov",
    "IMCON": "imcon",
    "IMC": "imcon",
    "NOFORN": "noforn",
    "NF": "noforn",
    "PROPIN": "propin",
    "PR": "propin",
    "RELIDO": "relido",
    "FISA": "fisa",
}
_SAP = re.compile(r"SAR-([A-Z0-9][A-Z0-9-]*)")
_LIST_SPLIT = re.compile(r"[,\s]+")
# Non-US classification words: phase 2, rejected as unsupported rather than misread.
_FOREIGN = re.compile(
    r"^(JOINT\b|FGI\b|COSMIC\b|NATO (UNCLASSIFIED|RESTRICTED|CONFIDENTIAL|SECRET)\b"
    r"|(CTS|NS|NC|NR|NU)(-[A-Z]+)?$)"
)

BannerList = Marking | Iterable[str]


def _normalize(text: str) -> str:
    """Upper-case, collapse white space, and drop spaces around slashes (``S // NF``)."""
    text = re.sub(r"\s+", " ", normalize_marking_text(text)).strip().upper()
    return re.sub(r" ?/ ?", "/", text)


def _strip_parens(text: str, raw: str) -> str:
    opened, closed = text.startswith("("), text.endswith(")")
    if opened != closed:
        fail("syntax", text=raw, detail="the parentheses are unbalanced")
    if opened:
        text = text[1:-1].strip()
    if "(" in text or ")" in text:
        fail("syntax", text=raw, detail="the parentheses are unbalanced")
    return text


class _Builder:
    """Collects parsed tokens into the keyword arguments of :class:`Marking`."""

    def __init__(self, raw: str, registry: MarkingRegistry, banner_rel_to: BannerList | None):
        self.raw = raw
        self.registry = registry
        self.banner_rel_to = banner_rel_to
        self.flags: set[str] = set()
        self.sci: set[str] = set()
        self.sap: set[str] = set()
        self.cui: set[str] = set()
        self.rel_to: set[str] | None = None
        self.display_only: set[str] | None = None
        self.groups: dict[str, frozenset[str]] = {}

    def codes(self, text: str, what: str) -> set[str]:
        codes = {c for c in _LIST_SPLIT.split(text) if c}
        if not codes:
            fail("syntax", text=self.raw, detail=f"{what} needs a list of countries")
        registered = self.registry.group_map()
        for code in codes:
            if not self.registry.is_release_code(code):
                fail(
                    "unknown-token", text=self.raw, detail=f"{code} is not a known country or group"
                )
            members = registered.get(code)
            if members is not None:
                self.groups[code] = members
        return codes

    def set_list(self, attr: str, codes: set[str], what: str) -> None:
        if getattr(self, attr) is not None:
            fail("syntax", text=self.raw, detail=f"{what} appears twice")
        setattr(self, attr, codes)

    def banner_list(self) -> set[str]:
        source = self.banner_rel_to
        if isinstance(source, Marking):
            self.groups.update(source.group_members)
            codes = set(source.rel_to)
        elif isinstance(source, str):  # "USA, GBR": a list written out, not characters
            codes = {c for c in _LIST_SPLIT.split(_normalize(source)) if c}
        else:
            codes = set() if source is None else {_normalize(c) for c in source}
        if not codes:
            fail("rel-needs-banner-list", text=self.raw)
        return self.codes(", ".join(sorted(codes)), "REL")

    def token(self, token: str, level: Level) -> str:
        """Record one token; return its category (``sci``, ``sap``, ``dissem``, ``cui``)."""
        if level == Level.CUI and token in self.registry.cui_categories:
            # At the CUI level, PROPIN is the CUI category (the PROPIN dissemination control
            # needs a classified level, rule propin-requires-classified).
            self.cui.add(token)
            return "cui"
        if token in _DISSEM:
            self.flags.add(_DISSEM[token])
            return "dissem"
        if token == "REL":  # noqa: S105 -- a marking token, not a secret
            self.set_list("rel_to", self.banner_list(), "REL TO")
            return "dissem"
        if token.startswith("REL TO"):
            self.set_list("rel_to", self.codes(token[6:], "REL TO"), "REL TO")
            return "dissem"
        if token.startswith("DISPLAY ONLY"):
            codes = self.codes(token[12:], "DISPLAY ONLY")
            self.set_list("display_only", codes, "DISPLAY ONLY")
            return "dissem"
        if token in CUI_CONTROLS:
            self.cui.add(token)
            return "dissem"
        if token in self.registry.cui_categories:
            self.cui.add(token)
            return "cui"
        sap = _SAP.fullmatch(token)
        if sap:
            self.sap.add(sap.group(1))
            return "sap"
        system = token.split("-", 1)[0]
        if system in self.registry.sci_systems:
            _, paths = parse_sci_token(token)
            self.sci.update(paths)
            return "sci"
        if token == "CUI":  # noqa: S105 -- a marking token, not a secret
            fail("unclassified-cui" if level == Level.U else "cui-in-classified", text=self.raw)
        if _FOREIGN.match(token):
            fail("unsupported-marking", text=self.raw, detail=f"{token} is not a US marking")
        fail("unknown-token", text=self.raw, detail=f"{token!r} is not a known marking token")

    def build(self, level: Level) -> Marking:
        if self.cui and level == Level.U:
            fail("unclassified-cui", text=self.raw)
        if self.cui and level.is_classified:
            fail("cui-in-classified", text=self.raw)
        kwargs: dict[str, Any] = {flag: True for flag in self.flags}
        marking = Marking(
            level,
            sci=frozenset(self.sci),
            sap=frozenset(self.sap),
            rel_to=frozenset(self.rel_to or ()),
            display_only=frozenset(self.display_only or ()),
            cui=frozenset(self.cui),
            groups=tuple(sorted(self.groups.items())),
            **kwargs,
        )
        check_known(marking, self.registry)
        return marking


def parse_marking(
    text: str,
    *,
    registry: MarkingRegistry = BUILTIN_REGISTRY,
    banner_rel_to: BannerList | None = None,
) -> Marking:
    """Parse a banner line or portion mark into a canonical :class:`Marking`.

    Accepts both spellings with or without parentheses, in any case and spacing
    (``Secret//NoForn``, ``S // NF``, ``(s//nf)``), categories in any order, and the legacy
    ``(FOUO)`` (read as ``(U//FOUO)``). ``banner_rel_to`` is the banner's REL TO list (codes,
    or the banner's :class:`Marking`) that a ``(S//REL)`` portion refers to; without one such a
    portion is invalid. Raises :class:`MarkingError` naming the broken rule, or
    :class:`UnsupportedMarking` for NATO, JOINT and FGI markings (never read as UNCLASSIFIED).
    """
    if not isinstance(text, str):
        fail("syntax", detail=f"a marking is text, not {type(text).__name__}")
    raw = text
    body = _strip_parens(_normalize(text), raw)
    if not body:
        fail("syntax", text=raw, detail="the marking is empty")
    if body.startswith("/") or _FOREIGN.match(body):
        fail("unsupported-marking", text=raw)
    segments = body.split("//")
    if any(not s.strip() for s in segments):
        fail("syntax", text=raw, detail="a category between '//' separators is empty")
    head = segments[0]
    if head == "FOUO" and len(segments) == 1:
        head, segments = "U", ["U", "FOUO"]  # legacy (FOUO) means (U//FOUO)
    level = Level.from_text(head)
    if level is None:
        if "/" in head and Level.from_text(head.split("/", 1)[0]) is not None:
            fail("syntax", text=raw, detail="categories are separated by '//', not '/'")
        if _FOREIGN.match(head):
            fail("unsupported-marking", text=raw)
        fail("syntax", text=raw, detail="a marking starts with its classification")
    builder = _Builder(raw, registry, banner_rel_to)
    seen: set[str] = set()
    try:
        for segment in segments[1:]:
            tokens = segment.split("/")
            if not all(tokens):
                fail("syntax", text=raw, detail="a token between '/' separators is empty")
            kinds = {builder.token(token, level) for token in tokens}
            if len(kinds) > 1:
                fail("syntax", text=raw, detail=f"{segment!r} mixes tokens of different categories")
            kind = kinds.pop()
            if kind in seen:
                fail("syntax", text=raw, detail=f"the {kind} category appears twice")
            seen.add(kind)
        return builder.build(level)
    except MarkingError as exc:
        if exc.text is not None:
            raise
        # Errors raised by Marking itself do not know the input; attach it for the finding.
        raise type(exc)(exc.message, rule=exc.rule, text=raw) from None
