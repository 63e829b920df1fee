"""``garrison registry``: the workspace's marking registry (admin; audited)."""

from __future__ import annotations

from typing import Annotated

import typer

from garrison.cli._common import AsOpt, JsonOpt, WorkspaceOpt, open_session, split_list
from garrison.cli._output import emit_json, emit_table, out_console

app = typer.Typer(
    help="Site additions to the marking registry: SCI systems, SAP ids, country groups, CUI "
    "categories.",
    no_args_is_help=True,
)


@app.command("add")
def add(
    ctx: typer.Context,
    kind: Annotated[str, typer.Argument(help="sci, sap, group or cui.")],
    name: Annotated[str, typer.Argument(help="The new token, e.g. ZX, SAR-RAVEN, NORD, SP-NUC.")],
    members: Annotated[
        list[str] | None,
        typer.Option("--members", help="Country members of a group (omit for an opaque code)."),
    ] = None,
    description: Annotated[str | None, typer.Option("--description")] = None,
    workspace: WorkspaceOpt = None,
    as_user: AsOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Register a site marking token."""
    with open_session(ctx, workspace, as_user) as session:
        entry = session.registry_add(
            kind.lower(), name, members=split_list(members), description=description
        )
    if as_json:
        emit_json(entry)
    else:
        out_console.print(f"Registered {entry['kind']} {entry['name']}.", markup=False)


@app.command("list")
def list_(
    ctx: typer.Context,
    workspace: WorkspaceOpt = None,
    as_user: AsOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """List the site additions."""
    with open_session(ctx, workspace, as_user) as session:
        entries = session.registry_list()
    if as_json:
        emit_json(entries)
        return
    emit_table(
        ["kind", "name", "members", "added_by", "added_at"],
        [
            (e["kind"], e["name"], ",".join(e["members"] or []), e["added_by"], e["added_at"])
            for e in entries
        ],
    )
