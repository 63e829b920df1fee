"""XML parser (``defusedxml``): hostile constructs are refused, never expanded.

Entity declarations (billion laughs, external entities) and external references make the
file ``hostile-content``. Each element holding text becomes a NarrativeText element located
by an XPath; an element with mixed content (text around child elements) is kept whole.

IC-ISM marking attributes (namespace ``urn:us:gov:ic:ism``: ``classification``,
``SCIcontrols``, ``SARIdentifier``, ``atomicEnergyMarkings``, ``disseminationControls``,
``releasableTo``, ``displayOnlyTo``, ``nonICmarkings``, ``ownerProducer``) mark the element
that carries them and its children: each element gets a ``declared_marking`` in portion
spelling built from the nearest such attributes (:func:`ism_marking`). An element kept whole
over children with their own attributes declares the join of them all.
"""

from __future__ import annotations

from typing import Any

from garrison.core.records import ElementType, Extraction, ParsedDocument, ParsedElement
from garrison.parse._registry import ParseContext, ParseFailure, register_parser
from garrison.parse._text import split_long_lines

__all__ = ["ISM_NAMESPACE", "ism_marking", "parse_xml"]

ISM_NAMESPACE = "urn:us:gov:ic:ism"
_ISM_ATTRIBUTES = (
    "classification",
    "SCIcontrols",
    "SARIdentifier",
    "atomicEnergyMarkings",
    "disseminationControls",
    "releasableTo",
    "displayOnlyTo",
    "nonICmarkings",
    "ownerProducer",
    "FGIsourceOpen",
    "FGIsourceProtected",
)
_ISM_LEVELS = {"U": "U", "C": "C", "S": "S", "TS": "TS", "R": "R"}
#: A NATO-owned level (``ownerProducer="NATO"``) as its portion writes it.
_ISM_NATO_LEVELS = {"TS": "CTS", "S": "NS", "C": "NC", "R": "NR", "U": "NU"}
#: Non-IC tokens the marking grammar reads in the dissemination category.
_ISM_NONIC_AS_DISSEM = frozenset({"DSEN"})
#: ISM dissemination control tokens in the order a portion writes them (MARKINGS.md section 1).
_ISM_DISSEM_ORDER = (
    "FOUO", "OC", "OC-USGOV", "IMC", "NF", "PR", "REL", "RELIDO", "FISA", "DISPLAYONLY",
)  # fmt: skip


def _ism_attrs(el: Any) -> dict[str, str]:
    found: dict[str, str] = {}
    for key, value in el.attrib.items():
        if not isinstance(key, str) or not key.startswith("{" + ISM_NAMESPACE + "}"):
            continue
        name = key.rsplit("}", 1)[-1]
        if name in _ISM_ATTRIBUTES:
            found[name] = " ".join(str(value).split())
    return found


def _countries(value: str) -> str:
    codes = value.split()
    trigraphs = sorted(c for c in codes if len(c) == 3 and c != "USA")
    others = sorted(c for c in codes if len(c) != 3)
    return ", ".join((["USA"] if "USA" in codes else []) + trigraphs + others)


def ism_marking(attrs: dict[str, str]) -> str:
    """The portion spelling of IC-ISM attribute values (``{"classification": "TS", ...}``).

    ``SCIcontrols="SI TK"`` -> ``SI/TK``; ``SARIdentifier="BP"`` -> ``SAR-BP``;
    ``disseminationControls="REL" releasableTo="USA GBR"`` -> ``REL TO USA, GBR``. Values
    outside the ISM vocabulary are written as they are, so the marking rules reject them
    (``invalid-marking``) rather than Garrison reading them as nothing. An ``ownerProducer``
    other than ``USA`` is a foreign or joint marking, written in its non-US spelling
    (``(//GBR S)``, ``(//JOINT S GBR USA)``, ``ownerProducer="NATO"`` as ``(//NS)``) that the
    marking rules of MARKINGS.md section 7 validate, keeping its other categories (SCI, SAP,
    dissemination); it is never read as a US marking. ``FGIsourceOpen="DEU GBR"`` is
    ``FGI DEU GBR``, ``FGIsourceProtected`` bare ``FGI``; ``nonICmarkings`` form the non-IC
    category (``DSEN`` sits with the dissemination controls).
    """
    level = attrs.get("classification", "")
    level = _ISM_LEVELS.get(level.upper(), level)
    parts = [_ism_class(level, attrs.get("ownerProducer", "USA").split() or ["USA"])]
    sci = attrs.get("SCIcontrols", "").split()
    if sci:
        parts.append("/".join(sci))
    sar = [s.removeprefix("SAR-") for s in attrs.get("SARIdentifier", "").split()]
    if sar:
        parts.append("SAR-" + "/".join(sar))
    aea = attrs.get("atomicEnergyMarkings", "").split()
    if aea:
        parts.append("/".join(aea))
    if "FGIsourceProtected" in attrs:
        parts.append("FGI")  # concealed: a code given as well is for the rules to reject
        if attrs["FGIsourceProtected"].strip():
            parts[-1] += " " + attrs["FGIsourceProtected"].strip()
    elif attrs.get("FGIsourceOpen", "").strip():
        parts.append("FGI " + " ".join(sorted(attrs["FGIsourceOpen"].split())))
    nonic = attrs.get("nonICmarkings", "").split()
    dissem = attrs.get("disseminationControls", "").split()
    dissem += [t for t in nonic if t in _ISM_NONIC_AS_DISSEM]
    nonic = [t for t in nonic if t not in _ISM_NONIC_AS_DISSEM]
    if dissem:
        rank = {token: i for i, token in enumerate(_ISM_DISSEM_ORDER)}
        written: list[str] = []
        for control in sorted(dict.fromkeys(dissem), key=lambda t: rank.get(t, len(rank))):
            if control == "REL":
                written.append("REL TO " + _countries(attrs.get("releasableTo", "")))
            elif control == "DISPLAYONLY":
                written.append("DISPLAY ONLY " + _countries(attrs.get("displayOnlyTo", "")))
            else:
                written.append(control)
        parts.append("/".join(written))
    if nonic:
        parts.append("/".join(dict.fromkeys(nonic)))
    return "(" + "//".join(parts) + ")"


def _ism_class(level: str, owners: list[str]) -> str:
    """The classification of a portion: US, NATO (``//NS``), one or several non-US owners
    (``//GBR S``, ``//CAN GBR S``) or JOINT (``//JOINT S GBR USA``)."""
    if owners == ["USA"]:
        return level
    if owners == ["NATO"] and level.upper() in _ISM_NATO_LEVELS:
        return "//" + _ISM_NATO_LEVELS[level.upper()]
    if "USA" in owners:
        return f"//JOINT {level} " + " ".join(sorted(owners))
    return "//" + " ".join(sorted(owners)) + f" {level}"


def _joined(spellings: list[str]) -> str:
    """One declared marking for several (an element kept whole over marked children)."""
    unique = list(dict.fromkeys(spellings))
    if len(unique) == 1:
        return unique[0]
    from garrison.core.errors import MarkingError
    from garrison.security.markings import join, parse_marking

    try:
        return join(*(parse_marking(s) for s in unique)).banner()
    except MarkingError:
        # One of them does not validate: hand that one over, so the document is quarantined.
        for spelling in unique:
            try:
                parse_marking(spelling)
            except MarkingError:
                return spelling
        raise


_TITLE_TAGS = frozenset({"title", "heading", "head", "h1", "h2", "h3", "h4", "h5", "h6"})


def _local(tag: Any) -> str:
    if not isinstance(tag, str):
        return ""
    return tag.rsplit("}", 1)[-1]


def _clean(text: str) -> str:
    return " ".join(text.split())


class _Collector:
    def __init__(self, max_line_chars: int) -> None:
        self.elements: list[ParsedElement] = []
        self.title: str | None = None
        self.max_line_chars = max_line_chars

    def emit(self, el: Any, xpath: str, text: str, declared: str | None = None) -> None:
        text = split_long_lines(text, self.max_line_chars)
        name = _local(el.tag).lower()
        is_title = name in _TITLE_TAGS
        if is_title and self.title is None:
            self.title = text
        fields = {_local(k): v for k, v in el.attrib.items()}
        self.elements.append(
            ParsedElement(
                type=ElementType.TITLE if is_title else ElementType.NARRATIVE_TEXT,
                text=text,
                locator={"xpath": xpath},
                fields=fields,
                declared_marking=declared,
            )
        )

    def walk(self, el: Any, xpath: str, inherited: str | None = None) -> None:
        attrs = _ism_attrs(el)
        declared = ism_marking(attrs) if attrs else inherited
        children = list(el)
        own = (el.text or "").strip()
        tails = any((c.tail or "").strip() for c in children)
        if not children or (own and children) or tails:
            text = _clean("".join(el.itertext()))
            if text:
                inner = [ism_marking(a) for d in el.iter() if (a := _ism_attrs(d)) and d is not el]
                if inner:
                    declared = _joined([*([declared] if declared else []), *inner])
                self.emit(el, xpath, text, declared)
            return
        counts: dict[str, int] = {}
        for child in children:
            name = _local(child.tag)
            counts[name] = counts.get(name, 0) + 1
        seen: dict[str, int] = {}
        for child in children:
            name = _local(child.tag)
            if not name:
                continue
            seen[name] = seen.get(name, 0) + 1
            step = f"{name}[{seen[name]}]" if counts[name] > 1 else name
            self.walk(child, f"{xpath}/{step}", declared)


@register_parser("application/xml", "text/xml", libraries=("defusedxml.ElementTree",))
def parse_xml(data: bytes, ctx: ParseContext) -> ParsedDocument:
    """Parse XML safely into text elements (locator ``xpath``)."""
    from xml.etree.ElementTree import ParseError

    import defusedxml  # type: ignore[import-untyped]
    import defusedxml.ElementTree as safe_et  # type: ignore[import-untyped]

    try:
        root = safe_et.fromstring(
            data, forbid_dtd=False, forbid_entities=True, forbid_external=True
        )
    except defusedxml.DefusedXmlException as exc:
        raise ParseFailure(
            "hostile-content", "the XML declares entities or external references"
        ) from exc
    except ParseError as exc:
        raise ParseFailure("corrupt", "the XML is not well-formed") from exc
    except RecursionError as exc:
        raise ParseFailure("hostile-content", "the XML is nested too deeply") from exc

    collector = _Collector(ctx.max_line_chars)
    try:
        collector.walk(root, "/" + _local(root.tag))
    except RecursionError as exc:
        raise ParseFailure("hostile-content", "the XML is nested too deeply") from exc
    return ParsedDocument(
        media_type=ctx.media_type if ctx.media_type.endswith("xml") else "application/xml",
        elements=tuple(collector.elements),
        title=collector.title,
        metadata={"root": _local(root.tag)},
        extraction=Extraction(
            method="xml", parser="garrison.xml", parser_version=defusedxml.__version__
        ),
    )
