"""The marking decision of an ingest (pure: no catalog access, no file access).

Children first: a container takes the join of its children; a spilled child makes its container
a spill; a child with an invalid marking quarantines its container; a child that could not be
read leaves an ``unreadable-content`` finding on its container. :func:`to_document` turns a
decision into what the store writes (:class:`garrison.store.ingest_writer.DecidedDocument`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from garrison.core.records import DocumentStatus, ElementType, ParsedDocument, element_id
from garrison.ingest._worker import ParseNode
from garrison.ingest.marking import (
    Finding,
    MarkedDocument,
    apply_markings,
    parse_banner_line,
)
from garrison.security.markings import (
    BUILTIN_REGISTRY,
    Marking,
    find_portion_mark,
    join,
    system_high_dominates,
)
from garrison.store.ingest_writer import DecidedDocument, NewElement, NewFinding
from garrison.store.session import Session

__all__ = ["WARNING_FINDINGS", "Decided", "decide", "new_elements", "to_document"]


@dataclass
class Decided:
    """The marking decision about one parsed (or failed) file and its attachments."""

    node: ParseNode
    status: DocumentStatus
    reason: str | None
    marked: MarkedDocument | None
    findings: list[Finding]
    marking: Marking | None
    children: list[Decided]


def decide(
    node: ParseNode, default: Marking, system_high: Marking, session: Session | None
) -> Decided:
    """Apply the marking rules to ``node``'s tree, children first (see the module docstring).

    ``session`` gives the workspace's marking registry; without one (``garrison parse``, no
    workspace) the built-in registry applies.
    """
    children = [decide(c, default, system_high, session) for c in node.children]
    if node.failure is not None or node.parsed is None:
        code, _ = node.failure or ("corrupt", "nothing was parsed")
        return Decided(node, DocumentStatus.QUARANTINED, code, None, [], None, children)
    marked = apply_markings(
        node.parsed,
        default=default,
        system_high=system_high,
        registry=session.workspace.registry if session is not None else BUILTIN_REGISTRY,
        # File, folder and member names are text of the document: a mark in one raises it.
        names=(node.filename, *_URI_PARTS.split(node.uri)),
    )
    findings = list(marked.findings) + _warning_findings(node.parsed)
    status, marking = marked.status, marked.marking
    reason: str | None = marked.reason
    if any(c.status is DocumentStatus.SPILLED for c in children):
        if status is not DocumentStatus.SPILLED:
            findings.append(Finding("spill", "an attachment is a spill"))
        status, reason, marking = DocumentStatus.SPILLED, "spill", None
    elif status is DocumentStatus.PARSED:
        if any(c.reason == "invalid-marking" for c in children):
            findings.append(Finding("invalid-marking", "an attachment has an invalid marking"))
            status, reason, marking = DocumentStatus.QUARANTINED, "invalid-marking", None
        else:
            for index, child in enumerate(children):
                if child.status is DocumentStatus.QUARANTINED:
                    findings.append(
                        Finding("attachment-quarantined", f"an attachment is {child.reason}")
                    )
                    # What could not be read may hold anything: the container says so.
                    findings.append(
                        Finding(
                            "unreadable-content",
                            f"{_part_name(index)} could not be read ({child.reason})",
                        )
                    )
            parts = [c.marking for c in children if c.marking is not None]
            if marking is not None and parts:
                marking = join(marking, *parts)
                if not system_high_dominates(system_high, marking):
                    findings.append(Finding("spill", "marking is not dominated by system high"))
                    status, reason, marking = DocumentStatus.SPILLED, "spill", None
    return Decided(node, status, reason, marked, findings, marking, children)


_URI_PARTS = re.compile(r"[/\\#]")


def _part_name(index: int) -> str:
    """How a finding names an attachment or member: ``attachment 2`` -- never its name, which
    may carry a mark or the very text that could not be read."""
    return f"attachment {index + 1}"


#: Parser warnings that become findings (``"active-content: a JavaScript action"``);
#: ``unreadable-content: <part>`` names a part the parser could not read (an embedded object,
#: an image without OCR...).
WARNING_FINDINGS = frozenset(
    {"active-content", "no-text-layer", "ocr-low-confidence", "unreadable-content"}
)


def _warning_findings(parsed: ParsedDocument) -> list[Finding]:
    """Parser warnings of a known kind (``kind`` or ``kind: detail``) as findings."""
    out: list[Finding] = []
    for warning in parsed.warnings:
        kind, _, detail = warning.partition(":")
        if kind.strip() in WARNING_FINDINGS:
            out.append(Finding(kind.strip(), detail.strip() or kind.strip()))
    return out


def to_document(decided: Decided) -> DecidedDocument:
    """What the store writes about ``decided`` (and its children)."""
    node, marked, parsed = decided.node, decided.marked, decided.node.parsed
    return DecidedDocument(
        doc_id=node.doc_id,
        size=node.size,
        filename=node.filename,
        uri=node.uri,
        data=node.data,
        status=decided.status,
        reason=decided.reason,
        marking=decided.marking,
        banner=marked.banner if marked is not None else None,
        title=_title(decided),
        author=marked.author if marked is not None else None,
        media_type=parsed.media_type if parsed else None,
        created=parsed.created if parsed else None,
        modified=parsed.modified if parsed else None,
        meta=_meta(decided),
        elements=new_elements(node.doc_id, marked, parsed) if marked is not None else None,
        findings=[NewFinding(f.kind, f.detail, f.element_index) for f in decided.findings],
        children=[to_document(c) for c in decided.children],
    )


def new_elements(
    doc_id: str, marked: MarkedDocument, source: ParsedDocument | None
) -> tuple[NewElement, ...]:
    """The elements the marking rules cut, with their stored ids, data and parent links."""
    ids = [element_id(doc_id, seq, e.text) for seq, e in enumerate(marked.elements)]
    # A parser's ``parent`` is an index into its own output; banner lines were removed and
    # paragraphs split at their marks since, so map through the parser's element objects
    # (a split paragraph's first part stands for it) to the stored ids.
    position: dict[int, int] = {}
    for seq, e in enumerate(marked.elements):
        position.setdefault(id(e.origin if e.origin is not None else e.parsed), seq)
    originals = source.elements if source is not None else ()
    out: list[NewElement] = []
    for seq, element in enumerate(marked.elements):
        parsed = element.parsed
        data = parsed.model_dump(
            mode="json",
            exclude={"type", "text", "page", "parent", "section_path", "declared_marking"},
            exclude_defaults=True,
        )
        if element.section_path:
            # Headings with their marks stripped; the store adds each one's marking id.
            data["section_path"] = list(element.section_path)
        if element.field_markings:
            data["field_markings"] = dict(element.field_markings)
        if parsed.parent is not None and 0 <= parsed.parent < len(originals):
            parent_seq = position.get(id(originals[parsed.parent]))
            if parent_seq is not None:
                data["parent_id"] = ids[parent_seq]
        out.append(
            NewElement(
                id=ids[seq],
                seq=seq,
                type=parsed.type.value,
                text=element.text,
                page=parsed.page,
                marking=element.marking,
                marking_source=element.marking_source.value,
                data=data,
                section_markings=tuple(element.section_markings) if element.section_path else (),
            )
        )
    return tuple(out)


def _title(decided: Decided) -> str | None:
    """The document's title -- never a banner line, never a portion mark (a mark at the start of
    the title property raised the document's marking and is stripped)."""
    parsed, marked = decided.node.parsed, decided.marked
    if parsed is None:
        return None
    title = marked.title if marked is not None and marked.status is DocumentStatus.PARSED else None
    if title is None and marked is None:
        title = parsed.title
    if title and parse_banner_line(title) is None and find_portion_mark(title) is None:
        return title
    if marked is not None:
        for element in marked.elements:
            if element.parsed.type is ElementType.TITLE and element.text.strip():
                return element.text.strip()
    return None


def _meta(decided: Decided) -> dict[str, Any]:
    meta: dict[str, Any] = {}
    if decided.node.failure is not None:
        meta["reason_detail"] = decided.node.failure[1]
    parsed, marked = decided.node.parsed, decided.marked
    if parsed is not None:
        meta["extraction"] = parsed.extraction.model_dump(mode="json")
        metadata: Any = parsed.metadata
        if marked is not None and marked.status is DocumentStatus.PARSED:
            metadata = marked.metadata  # leading marks stripped; they raised the marking
        elif marked is not None:
            metadata = None  # quarantined for its markings: values may hold what was unreadable
        if metadata:
            meta["metadata"] = dict(metadata)
        if parsed.warnings:
            meta["warnings"] = list(parsed.warnings)
    return meta
