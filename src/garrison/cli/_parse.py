"""``garrison parse``: what ingest would make of files, with no workspace and nothing stored.

Exit code: the highest over the files -- 0 when ingest would accept every file, 1 when it
would quarantine or spill one (the reason is printed with its result), 2 for a folder, a path
inside a workspace or a bad option, 3 for a file that does not exist, 5 for one that cannot be
read. Every file given gets its result; one that cannot be read gets one line on stderr.
"""

from __future__ import annotations

import json
import sys
from collections import Counter
from typing import TYPE_CHECKING, Annotated

import typer

from garrison.cli._output import emit_json, err_console, out_console
from garrison.core.errors import InvalidInput

if TYPE_CHECKING:
    from garrison.ingest.preview import Preview

__all__ = ["parse", "register"]

_PREVIEW_CHARS = 72


def register(app: typer.Typer) -> None:
    """Add ``parse`` to the top-level app."""
    app.command("parse")(parse)


def parse(
    files: Annotated[list[str], typer.Argument(help="Files to parse.")],
    as_json: Annotated[
        bool, typer.Option("--json", help="Print one JSON array, one result per file.")
    ] = False,
    markdown: Annotated[
        bool, typer.Option("--markdown", help="Print each document as portion-marked Markdown.")
    ] = False,
    elements: Annotated[
        bool, typer.Option("--elements", help="Print one JSON object per element, a line each.")
    ] = False,
    system_high: Annotated[
        str | None,
        typer.Option(
            "--system-high",
            metavar="MARKING",
            help="The system high to decide spills against (default: TOP SECRET//NOFORN).",
        ),
    ] = None,
    default_marking: Annotated[
        str | None,
        typer.Option(
            "--default-marking",
            metavar="MARKING",
            help="Marking of unmarked content, as ingest's --default-marking "
            "(default: UNCLASSIFIED).",
        ),
    ] = None,
    timeout: Annotated[
        float,
        typer.Option(
            "--timeout", min=1, metavar="SECONDS", help="Seconds one file may take to parse."
        ),
    ] = 120.0,
    memory_mb: Annotated[
        int,
        typer.Option(
            "--memory-mb", min=64, metavar="MIB", help="Memory cap of a parser process (MiB)."
        ),
    ] = 2048,
    workers: Annotated[
        int, typer.Option("--workers", min=1, metavar="N", help="Parse in N processes.")
    ] = 1,
    marking_column: Annotated[
        str | None,
        typer.Option(
            "--marking-column",
            metavar="COLUMN",
            help="Column holding each row's marking (CSV/TSV, XLSX, Parquet).",
        ),
    ] = None,
    no_ocr: Annotated[
        bool, typer.Option("--no-ocr", help="Do not OCR scans and images (metadata only).")
    ] = False,
    max_pages: Annotated[
        int | None,
        typer.Option("--max-pages", min=1, metavar="N", help="Quarantine PDFs longer than this."),
    ] = None,
) -> None:
    """Parse files as ingest would -- elements, markings, findings and the verdict -- with no
    workspace: nothing is stored, nothing is written outside a temporary folder it removes.

    Each file is parsed in an isolated process with ingest's limits, and the marking rules
    decide whether ingest would accept it, quarantine it (with the reason) or treat it as a
    spill under --system-high. Exit 0 when every file would be accepted, 1 when one would be
    quarantined or spilled, 2/3/5 when a file could not be read (the highest code wins).
    """
    from garrison.core.isolation import Limits
    from garrison.ingest.engine import IngestOptions
    from garrison.ingest.preview import (
        DEFAULT_MARKING,
        DEFAULT_SYSTEM_HIGH,
        PreviewError,
        preview_files,
    )

    if sum((as_json, markdown, elements)) > 1:
        raise InvalidInput("Choose one of --json, --markdown and --elements.")
    options = IngestOptions(
        default_marking=default_marking or DEFAULT_MARKING,
        workers=workers,
        limits=Limits(timeout_s=timeout, memory_mb=memory_mb),
        parse_options={
            **({"ocr": False} if no_ocr else {}),
            **({"max_pages": max_pages} if max_pages else {}),
        },
        marking_column=marking_column.strip() if marking_column else None,
    )
    results = preview_files(
        files,
        system_high=system_high or DEFAULT_SYSTEM_HIGH,
        default_marking=default_marking or DEFAULT_MARKING,
        options=options,
    )
    code = 0
    for result in results:
        if isinstance(result, PreviewError):
            code = max(code, result.error.exit_code)
            err_console.print(f"garrison: {result.error.message}", markup=False)
        elif not result.accepted:
            code = max(code, 1)
    if as_json:
        emit_json([r.to_dict() for r in results])
    else:
        for result in results:
            if isinstance(result, PreviewError):
                continue
            if elements:
                for row in result.element_lines():
                    sys.stdout.write(json.dumps(row, ensure_ascii=False) + "\n")
                if not result.accepted:
                    err_console.print(
                        f"garrison: {result.path}: ingest would {result.verdict} it "
                        f"({result.reason}).",
                        markup=False,
                    )
            elif markdown:
                sys.stdout.write(result.markdown())
            else:
                for text in _human(result):
                    out_console.print(text, markup=False)
    if code:
        raise typer.Exit(code)


def _human(result: Preview, indent: str = "") -> list[str]:
    """A readable summary: the verdict, the markings, the findings, then each element."""
    lines = [f"{indent}{result.path}"]
    what = result.media_type or "unknown type"
    lines.append(f"{indent}  type: {what}, {result.size} bytes, sha256 {result.sha256[:16]}")
    verdict = {
        "accept": "ingest would accept it",
        "quarantine": "ingest would quarantine it",
        "spill": "a spill: above system high, ingest would keep nothing of it",
    }
    reason = f" ({result.reason})" if result.reason and result.verdict != "spill" else ""
    lines.append(f"{indent}  verdict: {verdict[result.verdict]}{reason}")
    if result.reason_detail:
        lines.append(f"{indent}  detail: {result.reason_detail}")
    lines.append(f"{indent}  system high: {result.system_high}")
    if result.verdict != "spill" and result.reason_detail is None:  # the marks were read
        banner = result.banner.banner() if result.banner is not None else "none found"
        lines.append(f"{indent}  banner: {banner}")
    if result.marking is not None:
        lines.append(f"{indent}  marking: {result.marking.banner()}")
    if result.title:
        lines.append(f"{indent}  title: {result.title}")
    for f in result.findings:
        where = f" (element {f.element})" if f.element is not None else ""
        lines.append(f"{indent}  finding: {f.kind} -- {f.detail}{where}")
    if result.elements:
        counts = Counter(e.type for e in result.elements)
        summary = ", ".join(f"{n} {t}" for t, n in sorted(counts.items()))
        lines.append(f"{indent}  elements: {summary}")
        for e in result.elements:
            text = " ".join(e.text.split())
            if len(text) > _PREVIEW_CHARS:
                text = text[: _PREVIEW_CHARS - 3] + "..."
            page = f" p{e.page}" if e.page is not None else ""
            lines.append(f"{indent}  [{e.seq}]{page} {e.marking.portion()} {e.type}: {text}")
    for child in result.attachments:
        lines.append(f"{indent}  attachment:")
        lines.extend(_human(child, indent + "    "))
    return lines
