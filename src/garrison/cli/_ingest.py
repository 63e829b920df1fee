"""``garrison ingest``: files, folders, mail and databases into the catalog (stewards)."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
)

from garrison.cli._common import AsOpt, JsonOpt, WorkspaceOpt, open_session
from garrison.cli._output import emit_json, out_console
from garrison.core.errors import CheckFailed


def register(app: typer.Typer) -> None:
    """Add ``ingest`` to the top-level app."""
    app.command("ingest")(ingest)


def _looks_like_url(text: str) -> bool:
    head = text.split("://", 1)[0]
    return "://" in text and head.replace("+", "").isalnum()


def ingest(
    ctx: typer.Context,
    inputs: Annotated[
        list[str] | None,
        typer.Argument(help="Files, folders, or a database URL (with --reparse: optional)."),
    ] = None,
    default_marking: Annotated[
        str | None,
        typer.Option(
            "--default-marking",
            help="Marking of anything the source holds unmarked (required).",
        ),
    ] = None,
    source: Annotated[str | None, typer.Option("--source", help="Name of the source.")] = None,
    include: Annotated[
        list[str] | None, typer.Option("--include", help="Only files matching this glob.")
    ] = None,
    exclude: Annotated[
        list[str] | None, typer.Option("--exclude", help="Skip files matching this glob.")
    ] = None,
    workers: Annotated[int, typer.Option("--workers", min=1, help="Parse in N processes.")] = 1,
    timeout: Annotated[
        float, typer.Option("--timeout", min=1, help="Seconds one file may take to parse.")
    ] = 120.0,
    memory_mb: Annotated[
        int, typer.Option("--memory-mb", min=64, help="Memory cap of a parser process (MiB).")
    ] = 2048,
    table: Annotated[
        list[str] | None, typer.Option("--table", help="Database table(s) to ingest.")
    ] = None,
    query: Annotated[str | None, typer.Option("--query", help="A SELECT to ingest.")] = None,
    marking_column: Annotated[
        str | None,
        typer.Option(
            "--marking-column",
            help="Column holding each row's marking (CSV/TSV, XLSX, Parquet, database tables).",
        ),
    ] = None,
    no_ocr: Annotated[
        bool, typer.Option("--no-ocr", help="Do not OCR scans and images (metadata only).")
    ] = False,
    max_pages: Annotated[
        int | None, typer.Option("--max-pages", min=1, help="Quarantine PDFs longer than this.")
    ] = None,
    strict: Annotated[
        bool, typer.Option("--strict", help="Exit 1 if anything was quarantined or spilled.")
    ] = False,
    reparse: Annotated[
        bool,
        typer.Option(
            "--reparse",
            help="Re-parse the stored originals (all, or those ingested from PATH...) under "
            "the current rules and apply what changed.",
        ),
    ] = False,
    workspace: WorkspaceOpt = None,
    as_user: AsOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Ingest files and folders (recursively), mail, spreadsheets, or database tables.

    Every source must declare --default-marking. A file that cannot be parsed is quarantined
    with its reason and the run goes on; data above system high is a spill and is not kept.
    """
    from garrison.core.errors import InvalidInput
    from garrison.core.isolation import Limits
    from garrison.ingest.engine import IngestOptions, ingest_paths, ingest_sql

    if reparse:
        reparse_command(
            ctx, inputs or [], workers, timeout, memory_mb, no_ocr, workspace, as_user, as_json
        )
        return
    if not inputs:
        raise InvalidInput("Give the files, folders or database URL to ingest.")
    if not default_marking:
        raise InvalidInput(
            "Every source needs a default marking for what it holds unmarked: "
            "pass --default-marking MARKING."
        )
    options = IngestOptions(
        default_marking=default_marking,
        source=source,
        include=tuple(include or ()),
        exclude=tuple(exclude or ()),
        workers=workers,
        limits=Limits(timeout_s=timeout, memory_mb=memory_mb),
        parse_options={
            **({"ocr": False} if no_ocr else {}),
            **({"max_pages": max_pages} if max_pages else {}),
        },
        marking_column=marking_column.strip() if marking_column else None,
    )
    urls = [i for i in inputs if _looks_like_url(i)]
    if urls and len(inputs) > 1:
        raise InvalidInput("Ingest one database URL at a time, without files beside it.")
    if (table or query) and not urls:
        raise InvalidInput("--table and --query need a database URL (e.g. sqlite:///legacy.db).")
    with open_session(ctx, workspace, as_user) as session, progress_bar() as progress:
        task = progress.add_task("ingest", total=None)

        def tick(done: int, total: int | None, uri: str) -> None:
            progress.update(task, completed=done, total=total, description=_short(uri))

        if urls:
            report = ingest_sql(
                session, urls[0], options, tables=tuple(table or ()), query=query, progress=tick
            )
        else:
            report = ingest_paths(session, inputs, options, progress=tick)
    counts = report.counts
    if as_json:
        emit_json(report.to_dict())
    else:
        reasons = ", ".join(f"{k} {v}" for k, v in counts["quarantine_reasons"].items())
        out_console.print(
            f"Job {report.job_id}: {counts['files']} inputs in {report.seconds:.1f} s -- "
            f"{counts['parsed']} parsed, {counts['quarantined']} quarantined"
            f"{f' ({reasons})' if reasons else ''}, {counts['spilled']} spilled, "
            f"{counts['unchanged']} unchanged; {counts['elements']} elements, "
            f"{counts['bytes']} bytes.",
            markup=False,
        )
    if strict and (counts["quarantined"] or counts["spilled"]):
        raise CheckFailed(
            f"{counts['quarantined']} quarantined and {counts['spilled']} spilled (--strict)."
        )


def reparse_command(
    ctx: typer.Context,
    paths: list[str],
    workers: int,
    timeout: float,
    memory_mb: int,
    no_ocr: bool,
    workspace: str | None,
    as_user: str | None,
    as_json: bool,
) -> None:
    """``garrison ingest --reparse`` and ``garrison docs reparse``: print what moved."""
    from garrison.core.isolation import Limits
    from garrison.ingest.reparse import reparse

    with open_session(ctx, workspace, as_user) as session:
        report = reparse(
            session,
            paths,
            workers=workers,
            limits=Limits(timeout_s=timeout, memory_mb=memory_mb),
            parse_options={"ocr": False} if no_ocr else {},
        )
    if as_json:
        emit_json(report.to_dict())
        return
    for moved in report.moved:
        extra = f" {moved.marking}" if moved.marking else ""
        found = f"; new findings: {', '.join(moved.findings)}" if moved.findings else ""
        out_console.print(
            f"{moved.change}{extra}: {moved.uri} ({moved.doc_id[:16]}) -- {moved.elements} "
            f"element(s), {moved.chunks} chunk(s){found}",
            markup=False,
        )
    counts = report.counts
    out_console.print(
        f"Job {report.job_id}: {counts['documents']} documents re-parsed in "
        f"{report.seconds:.1f} s -- {counts['raised']} raised, {counts['restructured']} "
        f"restructured, {counts['spilled']} spilled, {counts['quarantined']} quarantined, "
        f"{counts['added']} added, {counts['unchanged']} unchanged.",
        markup=False,
    )


def _short(uri: str) -> str:
    return uri if len(uri) <= 48 else "..." + uri[-45:]


class _NoProgress:
    def __enter__(self) -> _NoProgress:
        return self

    def __exit__(self, *exc: object) -> None:
        return None

    def add_task(self, *args: object, **kwargs: object) -> TaskID:
        return TaskID(0)

    def update(self, *args: object, **kwargs: object) -> None:
        return None


def progress_bar() -> Progress | _NoProgress:
    """A progress bar on stderr when it is a terminal (or ``GARRISON_PROGRESS=1``); nothing in
    pipes and CI."""
    from garrison.cli._progress import progress_console, progress_enabled

    if not progress_enabled():
        return _NoProgress()
    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=progress_console(),
        transient=True,
    )
