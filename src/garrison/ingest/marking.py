"""The marking rules applied to one parsed document (pure; no I/O).

Given what a parser found, the source's default marking and the workspace's system high, decide
each element's marking and where it came from, the document's banner and marking, the findings,
and whether the document is parsed, quarantined (invalid marking) or a spill:

- banner lines are banners, not content: those the parser found, a whole line anywhere that
  looks like a banner (``Top Secret//SI//NoForn``, ``SECRET//RD//NOFORN``), an upper-case line
  such as ``SECRET`` at the document's edges or in a header or footer; banners that disagree are
  joined (``banner-mismatch``) and unmarked content inherits the join, never one page's banner;
- a portion mark is looked for at the start of every line: one starting a line inside a
  paragraph splits the paragraph there, each part with its own marking; it is stripped from the
  text into the element's marking;
- tables and records are marked per cell: a mark at the start of a table cell, of a field value
  (at any depth) or of a ``key: value`` line marks that cell; the element takes the join of its
  cells' marks and, for unmarked cells, the banner or default; a marking stated in structure
  (:attr:`ParsedElement.declared_marking`) is read as the element's portion mark;
- in a document with portion marks, an unmarked element inherits the banner, or the source
  default when there is none (``unmarked-portion``; never for e-mail headers, which are
  metadata);
- section headings in ``section_path`` carry their markings; metadata (title, author, the
  parser's metadata values, file names) is text of the document: a mark at the start of a value
  raises the document's marking and is stripped;
- the document's marking is the join of its banner, every element's marking and what metadata
  raised; a banner that does not dominate its portions is ``under-marked``, one that strictly
  dominates them is ``over-marked`` (never lowered automatically);
- a mark or banner that fails validation quarantines the whole document (``invalid-marking``):
  an unreadable mark may hide a higher classification;
- a document whose marking system high does not dominate is a ``spill``.

Findings never quote element text or metadata: a spill's report must not echo what it spilled.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from garrison.core.errors import MarkingError
from garrison.core.records import (
    DocumentStatus,
    ElementType,
    MarkingSource,
    ParsedDocument,
    ParsedElement,
)
from garrison.ingest._cells import Marks, mark_cells, mark_fields, mark_record_text
from garrison.security.markings import (
    BUILTIN_REGISTRY,
    MARKING_FINDINGS,
    Marking,
    MarkingRegistry,
    dominates,
    find_portion_mark,
    is_banner_candidate,
    join,
    leading_enumerator,
    normalize_marking_text,
    parse_with_findings,
    system_high_dominates,
)

__all__ = [
    "Finding",
    "MarkedDocument",
    "MarkedElement",
    "apply_markings",
    "parse_banner_line",
]

#: Elements marked per cell, field or ``key: value`` line rather than split into portions.
_RECORD_TYPES = frozenset(
    {ElementType.TABLE, ElementType.RECORD, ElementType.KEY_VALUE, ElementType.EMAIL_HEADER}
)
_LINE_BREAK = re.compile(r"(\r\n|[\n\r\v\f\x1c\x1d\x1e\x85\u2028\u2029])")
# "//", also in the full-width form NFKC reads as slashes.
_SLASHES = re.compile("[/\uff0f]{2}")


@dataclass(frozen=True)
class Finding:
    """Something about a document's markings a steward should know."""

    kind: str
    detail: str
    #: Index into :attr:`MarkedDocument.elements`, when the finding is about one element.
    element_index: int | None = None


@dataclass(frozen=True)
class MarkedElement:
    """An element with its portion marks stripped and its marking decided."""

    parsed: ParsedElement
    text: str
    marking: Marking
    marking_source: MarkingSource
    #: The parser's element this one came from (a paragraph split at its marks gives several).
    origin: ParsedElement | None = None
    #: ``section_path`` with the headings' marks stripped, and each heading's marking.
    section_path: tuple[str, ...] = ()
    section_markings: tuple[Marking, ...] = ()
    #: JSON pointer of a field value that carried a mark -> its marking (canonical banner).
    field_markings: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class MarkedDocument:
    status: DocumentStatus
    #: Quarantine reason code (``invalid-marking``, ``spill``) or None when parsed.
    reason: str | None
    banner: Marking | None
    #: Join of the banner, every element's marking and marks in metadata; None when undecided.
    marking: Marking | None
    elements: tuple[MarkedElement, ...]
    findings: tuple[Finding, ...] = field(default=())
    #: The title and author properties and the parser's metadata with leading marks stripped.
    title: str | None = None
    author: str | None = None
    metadata: Mapping[str, Any] = field(default_factory=dict)


@functools.lru_cache(maxsize=4096)
def _parse_full(
    text: str, registry: MarkingRegistry, banner: Marking | None
) -> tuple[Marking, tuple[str, ...]]:
    """``parse_with_findings``, cached: a corpus repeats the same few marks millions of times,
    and handing back the same object lets the catalog intern it without re-serializing."""
    return parse_with_findings(text, registry=registry, banner_rel_to=banner)


def _parse(text: str, registry: MarkingRegistry, banner: Marking | None) -> Marking:
    return _parse_full(text, registry, banner)[0]


def _banner_found(
    text: str, registry: MarkingRegistry, *, edge: bool
) -> tuple[Marking | MarkingError | None, tuple[str, ...]]:
    """:func:`_banner_or_error` and the legacy-form findings of a valid banner."""
    if len(text) > 400:  # with every invisible character and space run, still no banner
        return None, ()
    line = normalize_marking_text(text).strip()
    if not line or len(line) > 200 or line.startswith("("):
        return None, ()
    candidate = is_banner_candidate(line)
    if not candidate and (not edge or line.upper() != line or "//" in line or "\n" in line):
        return None, ()
    try:
        return _parse_full(line, registry, None)
    except MarkingError as exc:
        if candidate or exc.rule == "unsupported-marking":
            return exc, ()
        return None, ()


def _banner_or_error(
    text: str, registry: MarkingRegistry, *, edge: bool
) -> Marking | MarkingError | None:
    """A whole line as a banner: its marking, the error of a banner-looking line that does not
    validate, or None for text. Upper-case lines without ``//`` (``SECRET``) count at ``edge``
    only (top or bottom of the document or a page, headers and footers)."""
    return _banner_found(text, registry, edge=edge)[0]


def parse_banner_line(text: str, registry: MarkingRegistry = BUILTIN_REGISTRY) -> Marking | None:
    """``text`` as a valid banner line, or None when it is not one (prose, a portion mark...)."""
    found = _banner_or_error(text, registry, edge=True)
    return found if isinstance(found, Marking) else None


@dataclass
class _Unit:
    """One element (or part of a split one) on its way to being marked."""

    parsed: ParsedElement
    origin: ParsedElement
    text: str
    marks: list[Marking] = field(default_factory=list)
    unmarked: bool = False
    invalid: bool = False
    declared_empty: bool = False
    field_markings: dict[str, str] = field(default_factory=dict)
    #: Marks that failed validation; their findings are indexed once the unit has its place.
    errors: list[MarkingError] = field(default_factory=list)


class _Rules:
    """The state of one :func:`apply_markings` call."""

    def __init__(self, parsed: ParsedDocument, registry: MarkingRegistry) -> None:
        self.parsed = parsed
        self.registry = registry
        self.findings: list[Finding] = []
        self.banners: list[Marking] = []
        self.invalid = False
        self.banner: Marking | None = None
        #: An element rewritten here (a banner line taken out) -> the parser's element.
        self.origins: dict[int, ParsedElement] = {}
        #: Legacy-form findings (``legacy-marking``, ``legacy-sigma``) of the marks read.
        self.legacy: set[str] = set()

    def fail(self, what: str, exc: MarkingError, index: int | None = None) -> None:
        self.invalid = True
        self.findings.append(Finding("invalid-marking", f"{what} breaks rule {exc.rule}", index))

    def parse(self, mark: str) -> Marking | MarkingError:
        try:
            marking, legacy = _parse_full(mark, self.registry, self.banner)
        except MarkingError as exc:
            return exc
        self.legacy.update(legacy)
        return marking

    # -- banners ----------------------------------------------------------------------------

    def take_banner(self, found: Marking | MarkingError, legacy: tuple[str, ...] = ()) -> None:
        if isinstance(found, Marking):
            self.banners.append(found)
            self.legacy.update(legacy)
        else:
            self.fail("banner", found)

    def split_banners(self) -> list[ParsedElement]:
        """Banner lines out of the content; what stays is the content."""
        for text in self.parsed.banners:
            found, legacy = _banner_found(text, self.registry, edge=True)
            if found is None:  # handed over as a banner: it must be one
                found = self.parse(normalize_marking_text(text).strip())
            self.take_banner(found, legacy)
        elements = list(self.parsed.elements)
        nonempty = [i for i, e in enumerate(elements) if e.text.strip()]
        edge = set(nonempty[:1] + nonempty[-1:])
        keep: list[ParsedElement] = []
        for i, element in enumerate(elements):
            at_edge = i in edge or element.type in (ElementType.HEADER, ElementType.FOOTER)
            found, legacy = _banner_found(element.text, self.registry, edge=at_edge)
            if found is not None:
                self.take_banner(found, legacy)
                continue
            if element.type in _RECORD_TYPES or not _SLASHES.search(element.text):
                keep.append(element)
                continue
            # A banner line inside a longer element (a page of text, a paragraph).
            lines = _LINE_BREAK.split(element.text)
            kept: list[str] = []
            removed = False
            for piece in lines:
                line: tuple[Marking | MarkingError | None, tuple[str, ...]] = (None, ())
                if piece and not _LINE_BREAK.fullmatch(piece):
                    line = _banner_found(piece, self.registry, edge=False)
                on_line, legacy = line
                if on_line is None:
                    kept.append(piece)
                else:
                    self.take_banner(on_line, legacy)
                    removed = True
            if not removed:
                keep.append(element)
                continue
            text = "".join(kept).strip()
            if text:
                rewritten = element.model_copy(update={"text": text, "text_html": None})
                self.origins[id(rewritten)] = element
                keep.append(rewritten)
        if len({b.banner() for b in self.banners}) > 1:
            self.findings.append(
                Finding("banner-mismatch", f"{len(self.banners)} banner lines disagree")
            )
        self.banner = join(*self.banners) if self.banners else None
        return keep

    # -- portions ---------------------------------------------------------------------------

    def units(self, elements: Sequence[ParsedElement]) -> list[_Unit]:
        """Every element as units: prose split at lines that start with a mark."""
        out: list[_Unit] = []
        previous: str | None = None
        for element in elements:
            if element.type in _RECORD_TYPES:
                out.append(self.record_unit(element))
                previous = None
                continue
            origin = self.origins.get(id(element), element)
            parts = _split_at_marks(element.text, previous)
            for text, enumerator in parts:
                part = element
                if len(parts) > 1:
                    part = element.model_copy(update={"text": text, "text_html": None})
                unit = _Unit(part, origin, text)
                self.prose_mark(unit, previous)
                previous = enumerator
                self.declared(unit)
                out.append(unit)
        return out

    def prose_mark(self, unit: _Unit, previous: str | None) -> None:
        if unit.parsed.fields:
            self.fields_of(unit, count_unmarked=False)
        found = find_portion_mark(unit.text, previous_enumerator=previous)
        if found is None:
            unit.unmarked = bool(unit.text.strip())
            return
        mark, end = found
        marking = self.parse(mark)
        if isinstance(marking, MarkingError):
            self.fail_later(unit, marking)
            return
        unit.marks.append(marking)
        unit.text = unit.text[end:].lstrip()

    @staticmethod
    def fail_later(unit: _Unit, exc: MarkingError) -> None:
        unit.invalid = True
        unit.errors.append(exc)

    def record_unit(self, element: ParsedElement) -> _Unit:
        unit = _Unit(element, self.origins.get(id(element), element), element.text)
        marks = Marks(self.parse)
        cells = mark_cells(element.table_cells, marks)
        text = mark_record_text(element.text, marks, cells.replacements)
        update: dict[str, Any] = {}
        if cells.cells is not None:
            update["table_cells"] = cells.cells
        unit.text = text.text
        counted = cells.cells is not None and any(c.text.strip() for c in element.table_cells)
        unit.unmarked = cells.unmarked if counted else False
        if element.fields:
            fields = mark_fields(element.fields, marks)
            update["fields"] = fields.fields
            unit.field_markings = {k: m.banner() for k, m in fields.markings.items()}
            if not counted and element.type is ElementType.RECORD:
                unit.unmarked = fields.unmarked
                counted = True
        if not counted:
            unit.unmarked = text.unmarked
        if update:
            unit.parsed = element.model_copy(update=update)
        unit.marks.extend(marks.found)
        for exc in marks.errors:
            self.fail_later(unit, exc)
        self.declared(unit)
        return unit

    def fields_of(self, unit: _Unit, *, count_unmarked: bool) -> None:
        marks = Marks(self.parse)
        fields = mark_fields(unit.parsed.fields, marks)
        unit.parsed = unit.parsed.model_copy(update={"fields": fields.fields})
        unit.field_markings = {k: m.banner() for k, m in fields.markings.items()}
        unit.marks.extend(marks.found)
        for exc in marks.errors:
            self.fail_later(unit, exc)
        if count_unmarked:
            unit.unmarked = unit.unmarked or fields.unmarked

    def declared(self, unit: _Unit) -> None:
        stated = unit.parsed.declared_marking
        if stated is None:
            return
        if not stated.strip():
            unit.declared_empty = True
            return
        marking = self.parse(normalize_marking_text(stated).strip())
        if isinstance(marking, MarkingError):
            self.fail_later(unit, marking)
            return
        unit.marks.append(marking)

    # -- section headings and metadata ------------------------------------------------------

    def section(
        self, path: tuple[str, ...], headings: dict[str, Marking], inherited: Marking
    ) -> tuple[tuple[str, ...], tuple[Marking, ...]]:
        texts: list[str] = []
        markings: list[Marking] = []
        for heading in path:
            found = find_portion_mark(heading)
            if found is not None:
                marking = self.parse(found[0])
                if isinstance(marking, MarkingError):
                    self.fail("section heading mark", marking)
                    marking = inherited
                texts.append(heading[found[1] :].strip())
                markings.append(marking)
                continue
            texts.append(heading)
            markings.append(headings.get(heading, inherited))
        return tuple(texts), tuple(markings)

    def metadata_value(self, value: str, raised: list[Marking]) -> str:
        """A metadata value with a leading mark stripped; the mark raises the document."""
        found = find_portion_mark(value)
        if found is None:
            if is_banner_candidate(value):
                marking = self.parse(normalize_marking_text(value).strip())
                if isinstance(marking, MarkingError):
                    self.fail("a metadata value", marking)
                    return value
                raised.append(marking)
            return value
        marking = self.parse(found[0])
        if isinstance(marking, MarkingError):
            self.fail("a metadata mark", marking)
            return value
        raised.append(marking)
        return value[found[1] :].lstrip()

    def metadata(self, value: Any, raised: list[Marking]) -> Any:
        if isinstance(value, str):
            return self.metadata_value(value, raised)
        if isinstance(value, dict):
            return {k: self.metadata(v, raised) for k, v in value.items()}
        if isinstance(value, list | tuple):
            return [self.metadata(v, raised) for v in value]
        return value


def _split_at_marks(text: str, previous: str | None) -> list[tuple[str, str | None]]:
    """``text`` cut before every line (after the first) that starts with a portion mark, with the
    enumerator each part ends on."""
    if "(" not in text and "\uff08" not in text and "\ufe59" not in text:
        return [(text, leading_enumerator(text))]
    pieces = _LINE_BREAK.split(text)
    parts: list[list[str]] = [[]]
    enumerators: list[str | None] = [leading_enumerator(text)]
    line_previous = previous
    for piece in pieces:
        if _LINE_BREAK.fullmatch(piece):
            parts[-1].append(piece)
            continue
        starts = find_portion_mark(piece, previous_enumerator=line_previous) is not None
        if starts and "".join(parts[-1]).strip():
            parts.append([])
            enumerators.append(leading_enumerator(piece))
        if piece.strip():
            line_previous = leading_enumerator(piece)
        parts[-1].append(piece)
    if len(parts) == 1:
        return [(text, enumerators[0])]
    return [("".join(p).strip(), e) for p, e in zip(parts, enumerators, strict=True)]


def _portions(units: Sequence[_Unit]) -> list[Marking]:
    return [m for u in units if u.parsed.type is not ElementType.EMAIL_HEADER for m in u.marks]


def _covers(a: Marking, b: Marking, *, ignore_cui: bool) -> bool:
    """Whether banner (or roll-up) ``a`` covers ``b`` as a banner line can say it: also when
    ``a``'s line is the very line ``b``'s roll-up writes (``CONFIDENTIAL//FGI NATO`` for a
    NATO RESTRICTED portion)."""
    return (
        dominates(a, b, ignore_cui=ignore_cui)
        or dominates(a, b, ignore_cui=ignore_cui, as_written=True)
        or a.banner() == b.banner()
    )


def _resolve_multiple(rules: _Rules, units: Sequence[_Unit]) -> Marking | None:
    """The banner, with ``SAR-MULTIPLE PROGRAMS`` resolved to the programs its portions list
    (rule ``sap-multiple``: three or more). Fewer, or none readable, is an invalid marking: the
    programs the banner stands for are unknown (fail closed)."""
    banner = rules.banner
    if banner is None or not banner.sap_multiple:
        return banner
    programs = frozenset().union(*(m.sap for m in _portions(units)))
    if len(programs) < 3:
        rules.fail(
            "banner",
            MarkingError(
                "SAR-MULTIPLE PROGRAMS needs portions that list three or more programs.",
                rule="sap-multiple",
            ),
        )
        return banner
    rules.banner = replace(banner, sap=banner.sap | programs, sap_multiple=False)
    return rules.banner


def apply_markings(
    parsed: ParsedDocument,
    *,
    default: Marking,
    system_high: Marking,
    registry: MarkingRegistry = BUILTIN_REGISTRY,
    names: Iterable[str | None] = (),
) -> MarkedDocument:
    """Decide every marking of one parsed document (see the module docstring).

    ``names`` are the document's file or member names: text of the document like its title.
    """
    rules = _Rules(parsed, registry)
    elements = rules.split_banners()
    units = rules.units(elements)
    for index, unit in enumerate(units):
        for exc in unit.errors:
            rules.fail("portion mark", exc, index)
    banner = _resolve_multiple(rules, units)

    has_portions = any(u.marks for u in units if u.parsed.type is not ElementType.EMAIL_HEADER)
    has_portions = has_portions or any(u.invalid for u in units)
    inherited = banner if banner is not None else default
    inherited_source = MarkingSource.BANNER if banner is not None else MarkingSource.SOURCE_DEFAULT
    findings = rules.findings
    marked: list[MarkedElement] = []
    headings: dict[str, Marking] = {}
    for index, unit in enumerate(units):
        element = unit.parsed
        if unit.marks:
            parts = unit.marks + ([inherited] if unit.unmarked else [])
            marking, source = join(*parts), MarkingSource.PORTION
        else:
            marking, source = inherited, inherited_source
            metadata = element.type is ElementType.EMAIL_HEADER
            if unit.declared_empty or (
                has_portions and unit.text.strip() and not unit.invalid and not metadata
            ):
                findings.append(
                    Finding("unmarked-portion", "element has no portion mark; inherits", index)
                )
        if element.table_cells and element.type in _RECORD_TYPES:
            cells = tuple(
                c if c.marking is not None else c.model_copy(update={"marking": inherited.banner()})
                for c in element.table_cells
            )
            element = element.model_copy(update={"table_cells": cells})
        path, path_markings = rules.section(element.section_path, headings, inherited)
        if element.type is ElementType.TITLE and unit.origin.text not in headings:
            headings[unit.origin.text] = marking
        marked.append(
            MarkedElement(
                element,
                unit.text,
                marking,
                source,
                origin=unit.origin,
                section_path=path,
                section_markings=path_markings,
                field_markings=unit.field_markings,
            )
        )

    raised: list[Marking] = []
    title = rules.metadata(parsed.title, raised) if parsed.title else parsed.title
    author = rules.metadata(parsed.author, raised) if parsed.author else parsed.author
    metadata = rules.metadata(dict(parsed.metadata), raised)
    for name in names:
        if name:
            rules.metadata_value(name, raised)

    portions = _portions(units)
    invalid = rules.invalid
    # With an unreadable mark the portions' join is unknown: comparing with it would mislead.
    if banner is not None and not invalid and portions:
        portion_join = join(*portions)
        # A classified banner line cannot show CUI categories, nor what section 7.3 drops from
        # a line (SBU, LIMDIS, EXDIS under NODIS, HVSACO beside a program): compare without.
        ignore_cui = banner.level.is_classified
        if not _covers(banner, portion_join, ignore_cui=ignore_cui):
            findings.append(Finding("under-marked", "banner does not cover its portions"))
        elif not _covers(portion_join, banner, ignore_cui=ignore_cui):
            findings.append(Finding("over-marked", "banner is higher than its portions"))
    # The library's sentence, never the mark itself: findings quote nothing of a document.
    findings.extend(Finding(kind, MARKING_FINDINGS[kind]) for kind in sorted(rules.legacy))
    parts = [m.marking for m in marked] + ([banner] if banner is not None else []) + raised
    # With no content and no banner, the document is what its source says (or metadata raised).
    document_marking = join(*parts) if marked or banner is not None else join(default, *raised)

    if not system_high_dominates(system_high, document_marking):
        findings.append(Finding("spill", "marking is not dominated by system high"))
        return MarkedDocument(DocumentStatus.SPILLED, "spill", None, None, (), tuple(findings))
    if invalid:
        return MarkedDocument(
            DocumentStatus.QUARANTINED, "invalid-marking", banner, None, (), tuple(findings)
        )
    return MarkedDocument(
        DocumentStatus.PARSED,
        None,
        banner,
        document_marking,
        tuple(marked),
        tuple(findings),
        title=title,
        author=author,
        metadata=metadata,
    )
