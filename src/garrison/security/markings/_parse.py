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
from garrison.security.markings._parse_register import (
    RegisterTokens,
    parse_foreign_head,
    register_token,
)
from garrison.security.markings._register import CURRENT_SIGMAS, US, check_part
from garrison.security.markings._registry import BUILTIN_REGISTRY, CUI_CONTROLS, MarkingRegistry
from garrison.security.markings._rules import fail
from garrison.security.markings._sci import parse_sci_token
from garrison.security.markings._text import normalize_marking_text

__all__ = ["parse_marking", "parse_with_findings"]

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
_SAP = re.compile(r"(?:SAR|SPECIAL ACCESS REQUIRED)-([A-Z0-9][A-Z0-9-]*(?: [A-Z0-9][A-Z0-9-]*)*)")
_SAP_CONTINUATION = re.compile(r"[A-Z0-9][A-Z0-9-]*(?: [A-Z0-9][A-Z0-9-]*)*")
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
        self.reg = RegisterTokens()

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
            if sap.group(1) == "MULTIPLE PROGRAMS":
                self.reg.sap_multiple = True
            else:
                # A registered nickname is written as its PID (7.1).
                self.sap.add(self.registry.sap_pid(sap.group(1)))
            return "sap"
        kind = register_token(self.reg, token, self)
        if kind is not None:
            return kind
        system = token.split("-", 1)[0]
        if system in self.registry.sci_systems:
            _, paths = parse_sci_token(token)
            self.sci.update(paths)
            return "sci"
        if token == "CUI":  # noqa: S105 -- a marking token, not a secret
            fail("unclassified-cui" if level == Level.U else "cui-in-classified", text=self.raw)
        if Level.from_text(token) is not None or parse_foreign_head(token, strict=False):
            fail("class-exclusive", text=self.raw, detail=f"{token} is a second classification")
        fail("unknown-token", text=self.raw, detail=f"{token!r} is not a known marking token")

    def known(self, token: str, level: Level) -> bool:
        """Whether ``token`` means something on its own (so it is not a SAP continuation)."""
        try:
            _Builder(self.raw, self.registry, self.banner_rel_to).token(token, level)
        except MarkingError as exc:
            return exc.rule not in ("unknown-token", "class-exclusive")
        return True

    def build(self, level: Level, head: dict[str, Any], *, portion: bool) -> Marking:
        reg = self.reg
        if reg.concealed and reg.nato_controls:
            # Concealed FGI hides which sources; a NATO control says NATO is among them.
            reg.fgi.add("NATO")
        check_part(
            level=level,
            kind=head["kind"],
            fgi=frozenset(reg.fgi),
            concealed=head["concealed"] or reg.concealed,
            relido="relido" in self.flags,
            display_only=bool(self.display_only),
            aea=frozenset(reg.aea),
            hvsaco=reg.hvsaco,
            sap=frozenset(self.sap),
            sap_multiple=reg.sap_multiple,
            portion=portion,
            nonic=frozenset(reg.nonic),
        )
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
            kind=head["kind"],
            owners=frozenset(head["owners"]),
            restricted=head["restricted"],
            nato=head["nato"],
            concealed=head["concealed"] or reg.concealed,
            fgi=frozenset(reg.fgi),
            nato_controls=frozenset(reg.nato_controls | head["controls"]),
            aea=frozenset(reg.aea),
            sigma=frozenset(reg.sigma),
            hvsaco=reg.hvsaco,
            sap_multiple=reg.sap_multiple,
            nonic=frozenset(reg.nonic),
            accm=frozenset(reg.accm),
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
    ``(FOUO)`` (read as ``(U//FOUO)``). Non-US, NATO and JOINT markings start with ``//``
    (``//NATO SECRET``, ``(//DEU S)``). ``banner_rel_to`` is the banner's REL TO list (codes,
    or the banner's :class:`Marking`) that a ``(S//REL)`` portion refers to; without one such a
    portion is invalid. Text in parentheses is a portion, other text a banner line.
    Raises :class:`MarkingError` naming the broken rule (see :func:`parse_with_findings` for
    the findings a valid marking may carry).
    """
    return parse_with_findings(text, registry=registry, banner_rel_to=banner_rel_to)[0]


def parse_with_findings(
    text: str,
    *,
    registry: MarkingRegistry = BUILTIN_REGISTRY,
    banner_rel_to: BannerList | None = None,
) -> tuple[Marking, tuple[str, ...]]:
    """Like :func:`parse_marking`, also returning the findings of a valid marking, in order:
    ``legacy-marking`` (a legacy spelling such as COMINT was read) and ``legacy-sigma``."""
    if not isinstance(text, str):
        fail("syntax", detail=f"a marking is text, not {type(text).__name__}")
    raw = text
    normalized = _normalize(text)
    body = _strip_parens(normalized, raw)
    portion = normalized.startswith("(")
    if not body:
        fail("syntax", text=raw, detail="the marking is empty")
    foreign = body.startswith("//")
    if foreign:
        body = body[2:]
    elif body.startswith("/") or _FOREIGN.match(body):
        fail("unsupported-marking", text=raw)
    segments = body.split("//")
    if any(not s.strip() for s in segments):
        fail("syntax", text=raw, detail="a category between '//' separators is empty")
    head = segments[0]
    if head == "FOUO" and len(segments) == 1 and not foreign:
        head, segments = "U", ["U", "FOUO"]  # legacy (FOUO) means (U//FOUO)
    builder = _Builder(raw, registry, banner_rel_to)
    try:
        if foreign:
            parsed = parse_foreign_head(head, strict=True)
            assert parsed is not None
            level, info = parsed
            if info.pop("banner_lists", False):
                _banner_lists(builder, info)
        else:
            found = Level.from_text(head)
            if found is None:
                if "/" in head and Level.from_text(head.split("/", 1)[0]) is not None:
                    fail("syntax", text=raw, detail="categories are separated by '//', not '/'")
                if _FOREIGN.match(head):
                    fail("unsupported-marking", text=raw)
                fail("syntax", text=raw, detail="a marking starts with its classification")
            level = found
            info = {
                "kind": US, "owners": (), "restricted": False, "nato": "",
                "concealed": False, "controls": frozenset(),
            }  # fmt: skip
        seen: set[str] = set()
        for segment in segments[1:]:
            kind = _segment(builder, segment, level)
            if kind in seen:
                fail("syntax", text=raw, detail=f"the {kind} category appears twice")
            seen.add(kind)
        marking = builder.build(level, info, portion=portion)
    except MarkingError as exc:
        if exc.text is not None:
            raise
        # Errors raised by Marking itself do not know the input; attach it for the finding.
        raise type(exc)(exc.message, rule=exc.rule, text=raw) from None
    findings = []
    if builder.reg.legacy:
        findings.append("legacy-marking")
    if marking.sigma - CURRENT_SIGMAS:
        findings.append("legacy-sigma")
    return marking, tuple(findings)


def _segment(builder: _Builder, segment: str, level: Level) -> str:
    """Read one ``//`` category; return its kind. After ``SAR-`` (or ``ACCM-``) in a category,
    the names that follow are further programs (or nicknames) under the one prefix."""
    tokens = segment.split("/")
    if not all(tokens):
        fail("syntax", text=builder.raw, detail="a token between '/' separators is empty")
    kinds: set[str] = set()
    mode: str | None = None
    for token in tokens:
        continuation = (
            mode is not None
            and _SAP_CONTINUATION.fullmatch(token) is not None
            and not builder.known(token, level)
        )
        if mode == "sap" and continuation:
            builder.token(f"SAR-{token}", level)
            continue
        if mode == "accm" and continuation:
            builder.reg.accm.add(token)
            continue
        kind = builder.token(token, level)
        kinds.add(kind)
        if kind == "sap" and _SAP.fullmatch(token):
            mode = "sap"
        elif token.startswith("ACCM-"):
            mode = "accm"
    if len(kinds) > 1:
        fail("syntax", text=builder.raw, detail=f"{segment!r} mixes tokens of different categories")
    return kinds.pop()


def _banner_lists(builder: _Builder, info: dict[str, Any]) -> None:
    """``(//JOINT S//REL)``: the JOINT owners (and REL TO list) of the banner."""
    source = builder.banner_rel_to
    if not isinstance(source, Marking) or source.kind != "JOINT":
        fail("rel-needs-banner-list", text=builder.raw, detail="the banner is not a JOINT marking")
    info["owners"] = tuple(source.owners)
