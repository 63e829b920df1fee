"""``garrison audit``: verify, export checkpoints, read the tail (admin at system high)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from garrison.cli._common import AsOpt, JsonOpt, WorkspaceOpt, open_session
from garrison.cli._output import emit_json, out_console
from garrison.cli._paging import emit_listing, page_spec
from garrison.core.errors import CheckFailed
from garrison.security.audit import Checkpoint
from garrison.store.paging import MAX_LIMIT, Page, PageSpec, page_items

app = typer.Typer(help="The tamper-evident audit log.", no_args_is_help=True)


@app.command("verify")
def verify(
    ctx: typer.Context,
    against: Annotated[
        Path | None,
        typer.Option("--against", help="A checkpoint file kept elsewhere (detects rollback)."),
    ] = None,
    workspace: WorkspaceOpt = None,
    as_user: AsOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Recompute every hash and signature and check every marking binding in the catalog;
    exit 1 naming the first bad event or catalog row on tampering."""
    checkpoint = Checkpoint.from_file(against) if against is not None else None
    with open_session(ctx, workspace, as_user) as session:
        report = session.audit_verify(checkpoint)
    if as_json:
        emit_json(
            {
                "ok": report.ok,
                "size": report.size,
                "first_bad_seq": report.first_bad_seq,
                "problem": report.problem,
                "checkpoints_checked": report.checkpoints_checked,
                "bad_binding": report.bad_binding,
                "bindings_checked": report.bindings_checked,
            }
        )
    if not report.ok:
        what = "Audit log" if not report.log_ok else "Catalog binding"
        raise CheckFailed(f"{what} verification failed: {report.problem}")
    if not as_json:
        out_console.print(
            f"Audit log OK: {report.size} events, {report.checkpoints_checked} signed "
            f"checkpoints verified; {report.bindings_checked} marking bindings in the catalog "
            "verified.",
            markup=False,
        )


@app.command("checkpoint")
def checkpoint(
    ctx: typer.Context,
    out: Annotated[Path, typer.Option("--out", help="File to write the checkpoint to.")],
    workspace: WorkspaceOpt = None,
    as_user: AsOpt = None,
) -> None:
    """Export the latest signed checkpoint, to keep outside the workspace."""
    with open_session(ctx, workspace, as_user) as session:
        cp = session.audit_export_checkpoint(out)
    out_console.print(f"Wrote checkpoint of {cp.size} events to {out}.", markup=False)


@app.command("tail")
def tail(
    ctx: typer.Context,
    n: Annotated[
        int | None,
        typer.Option(
            "-n",
            "--limit",
            min=1,
            max=MAX_LIMIT,
            metavar="N",
            help="Only the last N events (default: all); --json then gives the page's cursor.",
        ),
    ] = None,
    cursor: Annotated[
        str | None,
        typer.Option("--cursor", metavar="CURSOR", help="The N events before an earlier page."),
    ] = None,
    workspace: WorkspaceOpt = None,
    as_user: AsOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Show the last events of the audit log (each page oldest first; pages go back)."""
    spec = page_spec(n, cursor)
    with open_session(ctx, workspace, as_user) as session:
        # A page needs the whole log: its total, and where its cursor stands.
        events = [e.model_dump(mode="json") for e in session.audit_tail(None)]
    listed: list[dict[str, Any]] | Page[dict[str, Any]] = events
    if spec is not None:
        events.reverse()  # newest first: the first page is the tail, the next goes back
        page = page_items(
            events,
            listing="audit",
            record_id=lambda e: str(e["seq"]),
            sorts={"order": None},
            default="order",
            spec=PageSpec(spec.limit, spec.cursor),
        )
        page.items.reverse()
        listed = page
    emit_listing(
        listed,
        ["seq", "time", "actor", "action", "object", "decision", "reason"],
        lambda e: (
            e["seq"],
            e["time"].replace("Z", "+00:00"),
            e["actor"],
            e["action"],
            e["object_id"],
            e["decision"],
            e["reason"],
        ),
        as_json=as_json,
    )
