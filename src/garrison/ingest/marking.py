"""The marking rules applied to one parsed document (pure; no I/O).

Given what a parser found, the source's default marking and the workspace's system high, decide
each element's marking and where it came from, the document's banner and marking, the findings,
and whether the document is parsed, quarantined (invalid marking) or a spill:

- a leading portion mark is stripped from an element's text into its marking;
- whole-line banners at the top or bottom of the document (and in headers and footers) are
  banners, not content; banners that disagree are joined (``banner-mismatch``);
- in a document with portion marks, an unmarked element inherits the banner, or the source
  default when there is none (``unmarked-portion``);
- the document's marking is the join of its banner and every element's marking; a banner that
  does not dominate its portions is ``under-marked``, one that strictly dominates them is
  ``over-marked`` (never lowered automatically);
- a mark that fails validation quarantines the whole document (``invalid-marking``): an
  unreadable mark may hide a higher classification;
- a document whose marking system high does not dominate is a ``spill``.

Findings never quote element text: a spill's report must not echo what it spilled.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field

from garrison.core.errors import MarkingError
from garrison.core.records import (
    DocumentStatus,
    ElementType,
    MarkingSource,
    ParsedDocument,
    ParsedElement,
)
from garrison.security.markings import (
    BUILTIN_REGISTRY,
    Marking,
    MarkingRegistry,
    dominates,
    find_portion_mark,
    join,
    leading_enumerator,
    parse_marking,
    system_high_dominates,
)

__all__ = [
    "Finding",
    "MarkedDocument",
    "MarkedElement",
    "apply_markings",
    "parse_banner_line",
]


@dataclass(frozen=True)
class Finding:
    """Something about a document's markings a steward should know."""

    kind: str
    detail: str
    #: Index into :attr:`MarkedDocument.elements`, when the finding is about one element.
    element_index: int | None = None


@dataclass(frozen=True)
class MarkedElement:
    """An element with its portion mark stripped and its marking decided."""

    parsed: ParsedElement
    text: str
    marking: Marking
    marking_source: MarkingSource


@dataclass(frozen=True)
class MarkedDocument:
    status: DocumentStatus
    #: Quarantine reason code (``invalid-marking``, ``spill``) or None when parsed.
    reason: str | None
    banner: Marking | None
    #: Join of the banner and every element's marking; None when it could not be decided.
    marking: Marking | None
    elements: tuple[MarkedElement, ...]
    findings: tuple[Finding, ...] = field(default=())


@functools.lru_cache(maxsize=4096)
def _parse(text: str, registry: MarkingRegistry, banner: Marking | None) -> Marking:
    """``parse_marking``, cached: a corpus repeats the same few marks millions of times, and
    handing back the same object lets the catalog intern it without re-serializing."""
    return parse_marking(text, registry=registry, banner_rel_to=banner)


def parse_banner_line(text: str, registry: MarkingRegistry = BUILTIN_REGISTRY) -> Marking | None:
    """``text`` as a banner line, or None when it is not one (prose, a portion mark...)."""
    line = text.strip()
    if not line or line.startswith("(") or len(line) > 200 or "\n" in line:
        return None
    if line.upper() != line:  # banners are upper case; "Secret" in prose is a word
        return None
    try:
        return _parse(line, registry, None)
    except MarkingError:
        return None


def _split_banners(
    parsed: ParsedDocument, registry: MarkingRegistry
) -> tuple[list[ParsedElement], list[Marking], list[Finding]]:
    """Separate banner lines from content; report banner lines that break the rules."""
    banners: list[Marking] = []
    findings: list[Finding] = []
    for text in parsed.banners:
        try:
            banners.append(_parse(text.strip(), registry, None))
        except MarkingError as exc:
            findings.append(Finding("invalid-marking", f"banner breaks rule {exc.rule}"))
    elements = list(parsed.elements)
    nonempty = [i for i, e in enumerate(elements) if e.text.strip()]
    edge = set(nonempty[:1] + nonempty[-1:])
    keep: list[ParsedElement] = []
    for i, element in enumerate(elements):
        at_edge = i in edge or element.type in (ElementType.HEADER, ElementType.FOOTER)
        banner = parse_banner_line(element.text, registry) if at_edge else None
        if banner is not None:
            banners.append(banner)
        else:
            keep.append(element)
    return keep, banners, findings


def apply_markings(
    parsed: ParsedDocument,
    *,
    default: Marking,
    system_high: Marking,
    registry: MarkingRegistry = BUILTIN_REGISTRY,
) -> MarkedDocument:
    """Decide every marking of one parsed document (see the module docstring)."""
    elements, banners, findings = _split_banners(parsed, registry)
    banner = join(*banners) if banners else None
    if len({b.banner() for b in banners}) > 1:
        findings.append(Finding("banner-mismatch", f"{len(banners)} banner lines disagree"))

    portions: list[tuple[str, Marking] | None] = []
    invalid_at: set[int] = set()
    invalid = any(f.kind == "invalid-marking" for f in findings)
    previous: str | None = None
    for index, element in enumerate(elements):
        found = find_portion_mark(element.text, previous_enumerator=previous)
        previous = leading_enumerator(element.text)
        if found is None:
            portions.append(None)
            continue
        mark, end = found
        try:
            marking = _parse(mark, registry, banner)
        except MarkingError as exc:
            invalid = True
            invalid_at.add(index)
            findings.append(
                Finding("invalid-marking", f"portion mark breaks rule {exc.rule}", index)
            )
            portions.append(None)
            continue
        portions.append((element.text[end:].lstrip(), marking))

    has_portions = any(p is not None for p in portions) or invalid
    inherited = banner if banner is not None else default
    inherited_source = MarkingSource.BANNER if banner is not None else MarkingSource.SOURCE_DEFAULT
    marked: list[MarkedElement] = []
    for index, (element, portion) in enumerate(zip(elements, portions, strict=True)):
        if portion is not None:
            text, marking = portion
            marked.append(MarkedElement(element, text, marking, MarkingSource.PORTION))
            continue
        if has_portions and element.text.strip() and index not in invalid_at:
            findings.append(
                Finding("unmarked-portion", "element has no portion mark; inherits", index)
            )
        marked.append(MarkedElement(element, element.text, inherited, inherited_source))

    portion_join = join(*(p[1] for p in portions if p is not None))
    # With an unreadable mark the portions' join is unknown: comparing with it would mislead.
    if banner is not None and not invalid and any(p is not None for p in portions):
        # A classified banner line cannot show CUI categories: compare without them.
        ignore_cui = banner.level.is_classified
        if not dominates(banner, portion_join, ignore_cui=ignore_cui):
            findings.append(Finding("under-marked", "banner does not cover its portions"))
        elif not dominates(portion_join, banner, ignore_cui=ignore_cui):
            findings.append(Finding("over-marked", "banner is higher than its portions"))
    if marked or banner is not None:
        document_marking = join(*(m.marking for m in marked), *([banner] if banner else []))
    else:
        document_marking = default

    if not system_high_dominates(system_high, document_marking):
        findings.append(Finding("spill", "marking is not dominated by system high"))
        return MarkedDocument(DocumentStatus.SPILLED, "spill", None, None, (), tuple(findings))
    if invalid:
        return MarkedDocument(
            DocumentStatus.QUARANTINED, "invalid-marking", banner, None, (), tuple(findings)
        )
    return MarkedDocument(
        DocumentStatus.PARSED, None, banner, document_marking, tuple(marked), tuple(findings)
    )
