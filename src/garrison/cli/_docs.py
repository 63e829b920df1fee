"""``garrison docs`` and ``garrison jobs``: what was ingested, as the acting subject may see it."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from garrison.cli._common import AsOpt, JsonOpt, WorkspaceOpt, open_session, resolve_id
from garrison.cli._output import emit_json, emit_table, out_console
from garrison.cli._paging import CursorOpt, PageLimitOpt, emit_listing, page_spec
from garrison.store.documents import Documents, Jobs
from garrison.store.listings import documents_page, findings_page, jobs_page

app = typer.Typer(help="Documents, their elements and marking findings.", no_args_is_help=True)
jobs_app = typer.Typer(help="Ingest jobs: status, progress and counts.", no_args_is_help=True)

LimitOpt = PageLimitOpt


@app.command("ls")
def ls(
    ctx: typer.Context,
    status: Annotated[
        str | None, typer.Option("--status", help="parsed, quarantined, spilled or damaged.")
    ] = None,
    limit: LimitOpt = None,
    cursor: CursorOpt = None,
    workspace: WorkspaceOpt = None,
    as_user: AsOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """List documents (quarantined and spilled ones only for stewards and admins)."""
    spec = page_spec(limit, cursor)
    with open_session(ctx, workspace, as_user) as session:
        docs = (
            documents_page(session, spec, status=status)
            if spec
            else Documents(session).list(status=status)
        )
    emit_listing(
        docs,
        ["id", "name", "status", "marking", "media_type", "findings", "uri"],
        lambda d: (
            d["id"][:16],
            d.get("title") or d.get("filename") or "",
            d["status"] + (f" ({d['reason']})" if d["reason"] else ""),
            d["marking"] or "",
            d["media_type"] or "",
            ",".join(sorted({f["kind"] for f in d["findings"]})),
            d["uri"],
        ),
        as_json=as_json,
    )


@app.command("show")
def show(
    ctx: typer.Context,
    doc_id: Annotated[
        str, typer.Argument(help="Document id (SHA-256), or a unique prefix of 6+ characters.")
    ],
    elements: Annotated[bool, typer.Option("--elements", help="Include the elements.")] = False,
    workspace: WorkspaceOpt = None,
    as_user: AsOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Show one document, its findings and (with --elements) its marked elements."""
    with open_session(ctx, workspace, as_user) as session:
        doc = Documents(session).show(resolve_id(session, doc_id, "document"), elements=elements)
    if as_json:
        emit_json(doc)
        return
    for key in ("id", "uri", "media_type", "status", "reason", "title", "banner", "marking"):
        if doc.get(key) is not None:
            out_console.print(f"{key}: {doc[key]}", markup=False)
    for f in doc["findings"]:
        resolved = f" (resolved by {f['resolved_by']})" if f.get("resolved_by") else ""
        out_console.print(
            f"finding {f['id']}: {f['kind']} -- {f['detail']}{resolved}", markup=False
        )
    for finding in doc.get("compilation", []):
        out_console.print(f"compilation: {finding['detail']}", markup=False)
    for e in doc.get("elements", []):
        out_console.print(f"[{e['seq']}] ({e['marking']}) {e['type']}: {e['text']}", markup=False)


@app.command("findings")
def findings(
    ctx: typer.Context,
    kind: Annotated[str | None, typer.Option("--kind", help="Only this kind.")] = None,
    unresolved: Annotated[bool, typer.Option("--unresolved", help="Only open ones.")] = False,
    limit: LimitOpt = None,
    cursor: CursorOpt = None,
    workspace: WorkspaceOpt = None,
    as_user: AsOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """List marking findings on documents the subject may know of."""
    spec = page_spec(limit, cursor)
    with open_session(ctx, workspace, as_user) as session:
        found = (
            findings_page(session, spec, kind=kind, unresolved=unresolved)
            if spec
            else Documents(session).findings(kind=kind, unresolved=unresolved)
        )
        names: dict[str, str] = {}
        if not as_json:
            from garrison.store.paging import Page
            from garrison.store.prefixes import document_names

            items = found.items if isinstance(found, Page) else found
            names = document_names(session, (f["doc_id"] for f in items))
    emit_listing(
        found,
        ["id", "kind", "doc_id", "document", "element_id", "detail", "resolved_by"],
        lambda f: (
            f["id"],
            f["kind"],
            f["doc_id"][:16],
            names.get(f["doc_id"], ""),
            f.get("element_id"),
            f["detail"],
            f.get("resolved_by"),
        ),
        as_json=as_json,
    )


@app.command("resolve")
def resolve(
    ctx: typer.Context,
    finding_id: Annotated[
        str, typer.Argument(help="Finding id, or a unique prefix of 6+ characters.")
    ],
    note: Annotated[str, typer.Option("--note", help="What was done and why.")],
    workspace: WorkspaceOpt = None,
    as_user: AsOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Mark a finding resolved, recording who resolved it and why (stewards; audited)."""
    with open_session(ctx, workspace, as_user) as session:
        finding_id = resolve_id(session, finding_id, "finding")
        result = Documents(session).resolve(finding_id, note)
    if as_json:
        emit_json(result)
    else:
        out_console.print(f"Resolved finding {finding_id}.", markup=False)


@app.command("rm")
def rm(
    ctx: typer.Context,
    doc_id: Annotated[
        str, typer.Argument(help="Document id, or a unique prefix of 6+ characters.")
    ],
    reason: Annotated[str, typer.Option("--reason", help="Why the document is removed.")],
    workspace: WorkspaceOpt = None,
    as_user: AsOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Remove a document and everything derived from it (stewards; audited).

    Its elements, findings, locations, pipeline records, index rows and encrypted original go,
    with attachments and archive members seen nowhere else. Dataset versions keep their frozen
    records.
    """
    with open_session(ctx, workspace, as_user) as session:
        result = Documents(session).remove(resolve_id(session, doc_id, "document"), reason)
    if as_json:
        emit_json(result)
    else:
        out_console.print(
            f"Removed document {result['id']} ({result['documents']} document(s), "
            f"{result['elements']} element(s), {result['chunks']} chunk(s)).",
            markup=False,
        )


@app.command("reparse")
def reparse(
    ctx: typer.Context,
    workers: Annotated[int, typer.Option("--workers", min=1, help="Parse in N processes.")] = 1,
    timeout: Annotated[
        float, typer.Option("--timeout", min=1, help="Seconds one file may take to parse.")
    ] = 120.0,
    memory_mb: Annotated[
        int, typer.Option("--memory-mb", min=64, help="Memory cap of a parser process (MiB).")
    ] = 2048,
    no_ocr: Annotated[
        bool, typer.Option("--no-ocr", help="Do not OCR scans and images (metadata only).")
    ] = False,
    workspace: WorkspaceOpt = None,
    as_user: AsOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Re-parse every stored original under the current rules and apply what changed
    (stewards; audited): raised markings, new spills and quarantines. Run it after an upgrade.
    """
    from garrison.cli._ingest import reparse_command

    reparse_command(ctx, [], workers, timeout, memory_mb, no_ocr, workspace, as_user, as_json)


@jobs_app.command("ls")
def jobs_ls(
    ctx: typer.Context,
    limit: LimitOpt = None,
    cursor: CursorOpt = None,
    workspace: WorkspaceOpt = None,
    as_user: AsOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """List jobs, oldest first."""
    spec = page_spec(limit, cursor)
    with open_session(ctx, workspace, as_user) as session:
        jobs = jobs_page(session, spec) if spec else Jobs(session).list()
    emit_listing(
        jobs,
        ["id", "kind", "status", "done", "total", "started_at", "actor"],
        lambda j: (
            j["id"],
            j["kind"],
            j["status"],
            j["done"],
            j["total"],
            j["started_at"],
            j["actor"],
        ),
        as_json=as_json,
    )


@jobs_app.command("show")
def jobs_show(
    ctx: typer.Context,
    job_id: Annotated[str, typer.Argument(help="Job id.")],
    workspace: WorkspaceOpt = None,
    as_user: AsOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Show a job with its counts and what happened to each input."""
    with open_session(ctx, workspace, as_user) as session:
        job = Jobs(session).show(job_id)
    if as_json:
        emit_json(job)
        return
    _print_job(job)


def _print_job(job: dict[str, Any]) -> None:
    """A job for people: a header, its timing, its counts (nested ones flattened, the stage
    table of a pipeline run as a table) and its inputs grouped by outcome."""
    say = out_console.print
    progress = ""
    if job.get("done") is not None:
        progress = f", {job['done']}" + (f" of {job['total']}" if job.get("total") else "")
        progress += " done"
    say(f"Job {job['id']} ({job['kind']}): {job['status']}{progress}", markup=False)
    say(f"  started   {job['started_at'] or '-'} by {job['actor']}", markup=False)
    if job.get("finished_at"):
        say(f"  finished  {job['finished_at']}", markup=False)
    if job.get("error"):
        say(f"  error     {job['error']}", markup=False)
    counts = dict(job.get("counts") or {})
    stages = counts.pop("stages", None)
    flat = _flatten(counts)
    if flat:
        say("Counts:", markup=False)
        width = max(len(k) for k in flat)
        for key, value in flat.items():
            say(f"  {key.ljust(width)}  {value}", markup=False)
    if isinstance(stages, list) and stages and all(isinstance(s, dict) for s in stages):
        say("Stages:", markup=False)
        columns = list(stages[0])
        emit_table(columns, [[s.get(c) for c in columns] for s in stages])
    items = job.get("items") or []
    if items:
        outcomes: dict[str, int] = {}
        for item in items:
            outcomes[item["outcome"]] = outcomes.get(item["outcome"], 0) + 1
        summary = ", ".join(f"{n} {outcome}" for outcome, n in sorted(outcomes.items()))
        say(f"Inputs ({summary}):", markup=False)
        emit_table(
            ["outcome", "reason", "uri"],
            [(i["outcome"], i.get("reason") or "", i["uri"]) for i in items],
        )


def _flatten(data: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """``{"a": {"b": 1}}`` -> ``{"a.b": 1}``; lists of scalars joined, empty values left out."""
    out: dict[str, Any] = {}
    for key, value in data.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            out.update(_flatten(value, name + "."))
        elif isinstance(value, list):
            if value and all(not isinstance(v, dict | list) for v in value):
                out[name] = ", ".join(str(v) for v in value)
        elif value is not None and value != "":
            out[name] = value
    return out
