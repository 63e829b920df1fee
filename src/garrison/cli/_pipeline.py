"""``garrison run``, ``pipeline``, ``chunks``, ``lineage``, ``pii`` and ``dedup`` commands."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from garrison.cli._common import AsOpt, JsonOpt, WorkspaceOpt, open_session, resolve_id
from garrison.cli._output import emit_json, emit_table, out_console
from garrison.cli._paging import CursorOpt, PageLimitOpt, emit_listing, page_spec

pipeline_app = typer.Typer(
    help="Pipeline files: show what a pipeline will do.", no_args_is_help=True
)
chunks_app = typer.Typer(help="Chunks produced by the pipeline.", no_args_is_help=True)
pii_app = typer.Typer(help="Personal data detection.", no_args_is_help=True)
dedup_app = typer.Typer(help="Duplicate clusters.", no_args_is_help=True)

PipelineArg = Annotated[
    Path | None, typer.Argument(help="Pipeline YAML file (default: the built-in pipeline).")
]


def register(app: typer.Typer) -> None:
    """Add the pipeline commands to the top-level app."""
    app.command("run")(run)
    app.command("lineage")(lineage)
    app.add_typer(pipeline_app, name="pipeline")
    app.add_typer(chunks_app, name="chunks")
    app.add_typer(pii_app, name="pii")
    app.add_typer(dedup_app, name="dedup")


def run(
    ctx: typer.Context,
    pipeline: PipelineArg = None,
    workers: Annotated[
        int | None,
        typer.Option("--workers", min=1, help="Worker processes (default: by input size)."),
    ] = None,
    engine: Annotated[
        str,
        typer.Option(
            "--engine", help="Where batch stages run: local (default) or ray (the ray extra)."
        ),
    ] = "local",
    address: Annotated[
        str | None,
        typer.Option(
            "--address",
            "--ray-address",
            help="Ray cluster address (ray://host:10001 or host:6379; default: RAY_ADDRESS); "
            "without either a local Ray starts on loopback.",
        ),
    ] = None,
    writers: Annotated[
        int,
        typer.Option(
            "--writers",
            min=1,
            max=32,
            help="Batches written at once with a PostgreSQL catalog (SQLite: always one).",
        ),
    ] = 4,
    dry_run: Annotated[
        bool,
        typer.Option("--dry-run", help="Say what would be redone, and change nothing."),
    ] = False,
    full: Annotated[
        bool,
        typer.Option("--full", help="Redo every document, not only new or changed ones."),
    ] = False,
    workspace: WorkspaceOpt = None,
    as_user: AsOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Run a pipeline over the ingested documents the acting subject may read (stewards).

    Runs are incremental: only new or changed documents (or those a changed stage affects) are
    processed; superseded and removed documents leave the index. An interrupted run resumes.
    """
    from garrison.cli._progress import PipelineProgressView
    from garrison.pipeline._models import prepare_search
    from garrison.pipeline.executor import plan_run, run_pipeline
    from garrison.pipeline.spec import load_pipeline

    spec = load_pipeline(pipeline)
    if dry_run:
        with open_session(ctx, workspace, as_user) as session:
            plan = plan_run(session, spec, full=full).to_dict(ids=as_json)
        if as_json:
            emit_json(plan)
            return
        _print_plan(plan)
        return
    # Progress on stderr only (a terminal, or GARRISON_PROGRESS=1): --json stays one document.
    with open_session(ctx, workspace, as_user) as session, PipelineProgressView() as progress:
        report = run_pipeline(
            session,
            spec,
            engine=engine,
            address=address,
            workers=workers,
            full=full,
            writers=writers,
            progress=progress,
        )
        prepare_search(session, spec)
    data = report.to_dict()
    if as_json:
        emit_json(data)
        return
    out_console.print(
        f"Job {data['job_id']}: pipeline {data['pipeline']} over {data['documents']} documents "
        f"({data['elements']} elements) in {data['seconds']:.1f} s on the "
        f"{data['engine'].get('engine', 'local')} engine -- {data['processed']} processed, "
        f"{data['reused']} reused, {data['written']} written, {data['removed']} removed; "
        f"{data['chunks']} chunks, {data['embeddings']} embeddings written, duplicates "
        f"{data['duplicates']['exact']} exact / {data['duplicates']['near']} near, "
        f"{data['failed']} failed.",
        markup=False,
    )
    if data["predictions"] or data["repredicted"]:
        out_console.print(
            f"Predictions: {data['predictions']} written; {data['repredicted']} documents "
            "had only their predictions made again.",
            markup=False,
        )
    if data["pii_by_type"]:
        found = ", ".join(f"{k} {v}" for k, v in data["pii_by_type"].items())
        out_console.print(f"PII found: {found}.", markup=False)
    emit_table(
        ["stage", "in", "out", "dropped", "failed", "seconds"],
        [
            (s["stage"], s["in"], s["out"], s["dropped"], s["failed"], s["seconds"])
            for s in data["stages"]
        ],
    )


def _print_plan(plan: dict[str, Any]) -> None:
    out_console.print(
        f"Pipeline {plan['pipeline']} ({plan['pipeline_digest']}) over {plan['documents']} "
        "documents -- nothing was changed (dry run).",
        markup=False,
    )
    head = "every stage" if not plan["corpus_stage"] else "the stages before dedup"
    emit_table(
        ["documents", "count", "what happens"],
        [
            ("new", plan["new"], f"{head} run"),
            ("changed", plan["changed"], f"{head} run again"),
            ("unchanged", plan["unchanged"], "results reused"),
            ("removed or superseded", plan["remove"], "derived records and index rows dropped"),
            *(
                [("re-predicted", plan["repredict"], "only their predictions are made again")]
                if plan.get("repredict")
                else []
            ),
        ],
    )
    if plan["corpus_stage"]:
        if plan["tail_stages_changed"]:
            tail = "the stages after dedup changed: every document is re-chunked and re-embedded"
        else:
            tail = (
                "dedup runs over every document; re-chunked and re-embedded: the new and "
                "changed documents, and those whose duplicate status changes"
            )
        out_console.print(tail + ".", markup=False)


@pipeline_app.command("show")
def pipeline_show(pipeline: PipelineArg = None, as_json: JsonOpt = False) -> None:
    """Validate a pipeline file and show its stages with every parameter (defaults filled in)."""
    from garrison.pipeline.spec import load_pipeline

    spec = load_pipeline(pipeline)
    data = spec.to_dict()
    if as_json:
        emit_json(data)
        return
    out_console.print(
        f"pipeline {data['name']} ({data['source']}, digest {data['digest']})", markup=False
    )
    for n, stage in enumerate(data["stages"], 1):
        params = ", ".join(f"{k}={v!r}" for k, v in stage["params"].items())
        out_console.print(f"  {n}. {stage['stage']} v{stage['version']}: {params}", markup=False)


@chunks_app.command("ls")
def chunks_ls(
    ctx: typer.Context,
    doc: Annotated[str | None, typer.Option("--doc", help="Only this document's chunks.")] = None,
    limit: PageLimitOpt = None,
    cursor: CursorOpt = None,
    workspace: WorkspaceOpt = None,
    as_user: AsOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """List chunks the acting subject may read."""
    from garrison.store.derived import Chunks
    from garrison.store.listings import chunks_page

    spec = page_spec(limit, cursor)
    with open_session(ctx, workspace, as_user) as session:
        doc = resolve_id(session, doc, "document") if doc is not None else None
        chunks = (
            chunks_page(session, spec, doc_id=doc) if spec else Chunks(session).list(doc_id=doc)
        )
    emit_listing(
        chunks,
        ["id", "doc_id", "seq", "marking", "tokens", "text"],
        lambda c: (
            c["id"],
            (c.get("doc_id") or "")[:16],
            c["seq"],
            c["marking"],
            c["token_count"],
            c["text"][:60].replace("\n", " "),
        ),
        as_json=as_json,
    )


def lineage(
    ctx: typer.Context,
    record_id: Annotated[
        str, typer.Argument(help="A chunk, element or document id (or a unique prefix).")
    ],
    workspace: WorkspaceOpt = None,
    as_user: AsOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Print where a record came from: chunk -> elements -> document -> source bytes."""
    from garrison.store.derived import Lineage

    with open_session(ctx, workspace, as_user) as session:
        record_id = resolve_id(session, record_id, "chunk", "element", "document")
        tree = Lineage(session).of(record_id)
    if as_json:
        emit_json(tree)
        return
    _print_tree(tree, 0)


def _print_tree(node: dict[str, Any], depth: int) -> None:
    pad = "  " * depth
    label = f"{pad}{node['kind']} {node['id']}  [{node['marking']}]"
    if node["kind"] == "document":
        label += f"  sha256 {node['sha256']}  {node['uri']}"
    out_console.print(label, markup=False)
    for step in node.get("steps", []):
        out_console.print(
            f"{pad}  <- {step['stage']} v{step['version']} params {step['params_hash']}",
            markup=False,
        )
    for parent in node.get("parents", []):
        _print_tree(parent, depth + 1)


@pii_app.command("scan")
def pii_scan(
    text: Annotated[str | None, typer.Argument(help="Text to scan.")] = None,
    file: Annotated[Path | None, typer.Option("--file", help="Scan this file's text.")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Find personal data in a text (nothing is stored or audited: the text stays with you)."""
    from garrison.core.errors import InvalidInput
    from garrison.pipeline.pii import scan

    if (text is None) == (file is None):
        raise InvalidInput("Give either TEXT or --file FILE.")
    if file is not None:
        try:
            text = file.read_text(encoding="utf-8", errors="replace")
        except OSError as exc:
            raise InvalidInput(f"Cannot read {file}: {exc.strerror}.") from exc
    assert text is not None
    findings = [f.to_dict() for f in scan(text)]
    if as_json:
        emit_json(findings)
        return
    emit_table(
        ["type", "start", "end", "text", "confidence", "detector"],
        [
            (f["type"], f["start"], f["end"], f["text"], f"{f['confidence']:.2f}", f["detector"])
            for f in findings
        ],
    )


@dedup_app.command("report")
def dedup_report(
    ctx: typer.Context,
    workspace: WorkspaceOpt = None,
    as_user: AsOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Duplicate clusters among readable elements; stewards also see content marked
    differently."""
    from garrison.store.derived import dedup_report as report

    with open_session(ctx, workspace, as_user) as session:
        data = report(session)
    if as_json:
        emit_json(data)
        return
    count = len(data["clusters"])
    out_console.print(
        f"{count} cluster{'' if count == 1 else 's'}: {data['duplicates']['exact']} exact and "
        f"{data['duplicates']['near']} near duplicates.",
        markup=False,
    )
    for cluster in data["clusters"]:
        out_console.print(
            f"  {cluster['canonical']} <- {', '.join(cluster['duplicates'])}", markup=False
        )
    for finding in data["marked_differently"]:
        out_console.print(
            f"  marked differently [{finding['marking']}]: {finding['detail']}", markup=False
        )
