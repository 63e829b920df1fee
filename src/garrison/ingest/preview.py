"""Parse files as ingest would, with no workspace: elements, markings, findings and the verdict.

What ``garrison parse`` (and :func:`garrison.parse`) shows. Each file is read, parsed in an
isolated worker process with the same time limit, memory cap, size limit and attachment depth
as ingest (:mod:`garrison.core.isolation`, :mod:`garrison.ingest._worker`), and the marking
rules decide it exactly as ingest does (:func:`garrison.ingest._decide.decide`) under a given
system high and default marking, with the built-in marking registry. The result says whether
ingest would *accept* the file (``parsed``), *quarantine* it (with the reason code) or treat it
as a *spill*.

Nothing is stored and nothing is audited (there is no workspace). Parsers work on bytes in
memory; anything a library writes to a temporary file goes to a private temporary directory
that is removed when the run ends. A quarantined or spilled file shows no elements, exactly as
ingest keeps none of it: its findings (which never quote the document) and reason only, and a
spill not even its banner, its marking or the names of its attachments.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import tempfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from garrison.core.errors import EnvironmentProblem, GarrisonError, InvalidInput, NotFound
from garrison.core.isolation import run_isolated
from garrison.core.records import DocumentStatus, ElementType, MarkingSource, TableCell
from garrison.ingest._decide import Decided, decide
from garrison.ingest._decide import _title as _title  # the title ingest keeps
from garrison.ingest._guard import workspace_holding
from garrison.ingest._report import IngestOptions
from garrison.ingest._worker import ParseNode, ParseTask, node_from_outcome, parse_tree
from garrison.parse import detect_media_type, warm_up
from garrison.security.markings import Marking, parse_marking, system_high_dominates

__all__ = [
    "DEFAULT_MARKING",
    "DEFAULT_SYSTEM_HIGH",
    "VERDICTS",
    "Preview",
    "PreviewElement",
    "PreviewError",
    "PreviewFinding",
    "preview_files",
]

#: The system high assumed without ``--system-high``: the highest collateral marking of a
#: US-only network. Data with SCI controls, special access programs or ORCON-like controls is
#: above it (a spill) unless the system high names them.
DEFAULT_SYSTEM_HIGH = "TOP SECRET//NOFORN"
#: The marking of unmarked content without ``--default-marking`` (ingest requires one).
DEFAULT_MARKING = "UNCLASSIFIED"

#: Document status -> what ingest would do with the file.
VERDICTS = {
    DocumentStatus.PARSED: "accept",
    DocumentStatus.QUARANTINED: "quarantine",
    DocumentStatus.SPILLED: "spill",
}

_RULE = re.compile(r"\brule ([a-z0-9][a-z0-9-]*)")


@dataclass(frozen=True)
class PreviewElement:
    """One element as ingest would store it: marks stripped, marking decided."""

    seq: int
    type: str
    text: str
    page: int | None
    marking: Marking
    #: ``portion``, ``banner`` or ``source-default``: where the marking came from.
    marking_source: str
    #: The element's portion mark in portion form (``S//NF``) when it had one, else None.
    portion: str | None
    heading_level: int | None = None
    section_path: tuple[str, ...] = ()
    #: A table's cell texts, row by row (empty for other elements).
    rows: tuple[tuple[str, ...], ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {
            "seq": self.seq,
            "type": self.type,
            "text": self.text,
            "page": self.page,
            "marking": self.marking.banner(),
            "marking_source": self.marking_source,
            "portion": self.portion,
            "heading_level": self.heading_level,
            "section_path": list(self.section_path),
            **({"rows": [list(r) for r in self.rows]} if self.rows else {}),
        }


@dataclass(frozen=True)
class PreviewFinding:
    """A finding ingest would record; ``rule`` is the marking rule an invalid mark breaks."""

    kind: str
    detail: str
    #: Index of the element it concerns (among the document's elements), if any.
    element: int | None = None
    rule: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "detail": self.detail,
            "element": self.element,
            "rule": self.rule,
        }


@dataclass(frozen=True)
class Preview:
    """What ingest would decide about one file (and, as ``attachments``, its embedded files)."""

    path: str
    filename: str | None
    size: int
    sha256: str
    #: ``parsed``, ``quarantined`` or ``spilled``.
    status: str
    #: The quarantine reason code (``invalid-marking``, ``unsupported-type``, ``spill``...).
    reason: str | None
    #: What the parser or the isolation layer said about a failure (never document text).
    reason_detail: str | None
    media_type: str | None
    #: The banner found (joined when several disagree); None for a spill.
    banner: Marking | None
    #: The document's marking: the join of its banner and its elements; None unless parsed.
    marking: Marking | None
    title: str | None
    elements: tuple[PreviewElement, ...]
    findings: tuple[PreviewFinding, ...]
    attachments: tuple[Preview, ...] = ()
    system_high: str = DEFAULT_SYSTEM_HIGH
    default_marking: str = DEFAULT_MARKING

    @property
    def verdict(self) -> str:
        """``accept``, ``quarantine`` or ``spill``: what ingest would do with the file."""
        return VERDICTS[DocumentStatus(self.status)]

    @property
    def accepted(self) -> bool:
        return self.status == DocumentStatus.PARSED.value

    def element_lines(self) -> list[dict[str, Any]]:
        """One JSON object per element (``garrison parse --elements``), attachments' too; each
        names its file (``path``; an attachment's is ``FILE#NAME``)."""
        out = [{"path": self.path, **e.to_dict()} for e in self.elements]
        for child in self.attachments:
            out.extend(child.element_lines())
        return out

    def markdown(self) -> str:
        """The document as Markdown: banner first and last, headings as headings, and every
        element portion-marked. A quarantined or spilled file gives one comment line only."""
        head = f"<!-- {self.path}: ingest would {self.verdict} it"
        if not self.accepted or self.marking is None:
            return f"{head} ({self.reason}) -->\n\n"
        banner = f"**{self.marking.banner()}**"
        parts = [f"{head} -->", banner]
        parts.extend(_markdown_element(e) for e in self.elements)
        parts.append(banner)
        text = "\n\n".join(parts) + "\n\n"
        for child in self.attachments:
            text += child.markdown()
        return text

    def to_dict(self) -> dict[str, Any]:
        """The JSON form ``garrison parse --json`` prints (markings as canonical banners)."""
        return {
            "path": self.path,
            "filename": self.filename,
            "size": self.size,
            "sha256": self.sha256,
            "media_type": self.media_type,
            "status": self.status,
            "verdict": self.verdict,
            "reason": self.reason,
            "reason_detail": self.reason_detail,
            "banner": self.banner.banner() if self.banner is not None else None,
            "marking": self.marking.banner() if self.marking is not None else None,
            "title": self.title,
            "system_high": self.system_high,
            "default_marking": self.default_marking,
            "findings": [f.to_dict() for f in self.findings],
            "elements": [e.to_dict() for e in self.elements],
            "attachments": [a.to_dict() for a in self.attachments],
        }


@dataclass(frozen=True)
class PreviewError:
    """A file that could not be read at all (no result); ``error`` carries the exit code."""

    path: str
    error: GarrisonError

    def to_dict(self) -> dict[str, Any]:
        return {"path": self.path, "error": self.error.message, "exit_code": self.error.exit_code}


@dataclass
class _Run:
    default: Marking
    system_high: Marking
    options: IngestOptions
    pending: list[tuple[int, ParseNode]] = field(default_factory=list)


def preview_files(
    paths: Sequence[str | Path],
    *,
    system_high: str = DEFAULT_SYSTEM_HIGH,
    default_marking: str = DEFAULT_MARKING,
    options: IngestOptions | None = None,
) -> list[Preview | PreviewError]:
    """Parse and decide each of ``paths`` as ingest would; one result per path, in order.

    ``options`` carries ingest's limits (time, memory, size, depth) and parser options; its
    ``default_marking`` is ignored in favour of ``default_marking``. A marking that does not
    parse, or a default marking above the system high, raises InvalidInput (exit 2) before any
    file is read. A file that cannot be read is a :class:`PreviewError` (missing: exit 3; a
    folder or workspace material: exit 2; otherwise exit 5), and the other files go on.
    """
    high = parse_marking(system_high)
    default = parse_marking(default_marking)
    if not system_high_dominates(high, default):
        raise InvalidInput(
            f"The default marking {default.banner()} is not dominated by the system high "
            f"({high.banner()}); choose a lower default or a higher --system-high."
        )
    opts = options or IngestOptions(default_marking=default.banner())
    results: list[Preview | PreviewError | None] = [None] * len(paths)
    position: dict[int, int] = {}  # id of a task in flight -> its file's index

    def settle(index: int, node: ParseNode) -> None:
        decided = decide(node, default, high, None)
        results[index] = _preview(decided, high.banner(), default.banner())

    def tasks() -> Iterator[ParseTask]:
        # Read lazily, as ingest does: only the files being parsed are held in memory.
        for index, raw in enumerate(paths):
            read = _read(Path(raw), opts)
            if isinstance(read, PreviewError):
                results[index] = read
            elif isinstance(read, ParseNode):
                settle(index, read)
            else:
                position[id(read)] = index
                # Each type's parser libraries once here, before the worker is forked.
                warm_up([detect_media_type(read.data, read.filename)])
                yield read

    with _private_tmp():
        for task, outcome in run_isolated(
            tasks(), parse_tree, workers=max(1, opts.workers), limits=opts.limits
        ):
            settle(position.pop(id(task)), node_from_outcome(task, outcome))
    return [r for r in results if r is not None]


def _read(path: Path, options: IngestOptions) -> ParseTask | ParseNode | PreviewError:
    shown = str(path)
    holder = workspace_holding(path.absolute())
    if holder is None:
        with contextlib.suppress(OSError, RuntimeError):
            holder = workspace_holding(path.resolve())
    if holder is not None:
        return PreviewError(
            shown,
            InvalidInput(
                f"Refusing to parse {shown}: it lies inside the Garrison workspace {holder}; a "
                "workspace's catalog, keys and originals are never input."
            ),
        )
    try:
        if path.is_dir():
            return PreviewError(
                shown, InvalidInput(f"{shown} is a folder; give the files in it to parse.")
            )
        size = path.stat().st_size
        if size > options.max_bytes:
            return ParseNode(
                _hash_file(path),
                size,
                path.name,
                shown,
                None,
                failure=("too-large", f"the file is larger than {options.max_bytes} bytes"),
            )
        data = path.read_bytes()
    except FileNotFoundError:
        return PreviewError(shown, NotFound(f"No file at {shown}."))
    except OSError as exc:
        return PreviewError(
            shown,
            EnvironmentProblem(f"Cannot read {shown} ({exc.strerror or type(exc).__name__})."),
        )
    return ParseTask(
        shown,
        path.name,
        data,
        options.max_depth,
        options.max_bytes,
        tuple(sorted(options.parser_options().items())),
    )


def _hash_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


@contextlib.contextmanager
def _private_tmp() -> Iterator[str]:
    """A temporary directory that the workers (and any library in them) write to, removed at
    the end: a parse leaves nothing on disk. The environment is restored afterwards."""
    saved = {name: os.environ.get(name) for name in ("TMPDIR", "OMP_THREAD_LIMIT")}
    saved_dir = tempfile.tempdir
    with tempfile.TemporaryDirectory(prefix="garrison-parse-") as tmp:
        os.environ["TMPDIR"] = tmp
        # Tesseract's OpenMP threads would oversubscribe the cores the workers already use.
        os.environ.setdefault("OMP_THREAD_LIMIT", "1")
        tempfile.tempdir = tmp
        try:
            yield tmp
        finally:
            tempfile.tempdir = saved_dir
            for name, value in saved.items():
                if value is None:
                    os.environ.pop(name, None)
                else:
                    os.environ[name] = value


def _preview(decided: Decided, system_high: str, default_marking: str) -> Preview:
    node, marked = decided.node, decided.marked
    status = decided.status
    parsed_ok = status is DocumentStatus.PARSED and marked is not None
    elements: tuple[PreviewElement, ...] = ()
    title: str | None = None
    if parsed_ok and marked is not None:
        elements = tuple(
            PreviewElement(
                seq=seq,
                type=e.parsed.type.value,
                text=e.text,
                page=e.parsed.page,
                marking=e.marking,
                marking_source=e.marking_source.value,
                portion=e.marking.portion() if e.marking_source is MarkingSource.PORTION else None,
                heading_level=e.parsed.heading_level,
                section_path=tuple(e.section_path),
                rows=_rows(e.parsed.table_cells) if e.parsed.type is ElementType.TABLE else (),
            )
            for seq, e in enumerate(marked.elements)
        )
        title = _title(decided)
    findings = tuple(
        PreviewFinding(
            f.kind,
            f.detail,
            f.element_index,
            m.group(1) if (m := _RULE.search(f.detail)) else None,
        )
        for f in decided.findings
    )
    banner = marked.banner if marked is not None and status is not DocumentStatus.SPILLED else None
    detail = node.failure[1] if node.failure is not None else None
    return Preview(
        path=node.uri,
        filename=node.filename,
        size=node.size,
        sha256=node.doc_id,
        status=status.value,
        reason=decided.reason,
        reason_detail=detail,
        media_type=node.parsed.media_type if node.parsed is not None else None,
        banner=banner,
        marking=decided.marking if parsed_ok else None,
        title=title,
        elements=elements,
        findings=findings,
        # A spill shows nothing of what it holds, not even its members' names.
        attachments=()
        if status is DocumentStatus.SPILLED
        else tuple(_preview(c, system_high, default_marking) for c in decided.children),
        system_high=system_high,
        default_marking=default_marking,
    )


def _rows(cells: Sequence[TableCell]) -> tuple[tuple[str, ...], ...]:
    """Cell texts on a grid (a spanning cell fills its first slot; the others stay empty)."""
    if not cells:
        return ()
    width = max(c.col + c.col_span for c in cells)
    height = max(c.row + c.row_span for c in cells)
    grid = [[""] * width for _ in range(height)]
    for c in cells:
        grid[c.row][c.col] = c.text
    return tuple(tuple(r) for r in grid)


def _markdown_element(e: PreviewElement) -> str:
    mark = e.marking.portion()
    text = e.text.strip()
    kind = ElementType(e.type)
    if kind is ElementType.TITLE:
        level = min(max(e.heading_level or 1, 1), 6)
        return f"{'#' * level} {mark} {' '.join(text.split())}"
    if kind is ElementType.LIST_ITEM:
        return f"- {mark} " + text.replace("\n", "\n  ")
    if kind is ElementType.TABLE and e.rows:
        width = len(e.rows[0])
        cells = [[" ".join(c.split()).replace("|", "\\|") for c in row] for row in e.rows]
        lines = [f"| {' | '.join(cells[0])} |", "|" + " --- |" * width]
        lines += [f"| {' | '.join(row)} |" for row in cells[1:]]
        return mark + "\n\n" + "\n".join(lines)
    if kind in (ElementType.CODE, ElementType.FORMULA):
        return f"{mark}\n\n```\n{text}\n```"
    return f"{mark} " + text.replace("\n", "  \n")
