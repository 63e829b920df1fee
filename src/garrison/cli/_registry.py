"""``garrison registry``: the workspace's marking registry (admin; audited)."""

from __future__ import annotations

from typing import Annotated

import typer

from garrison.cli._common import AsOpt, JsonOpt, WorkspaceOpt, open_session, split_list
from garrison.cli._output import emit_json, emit_table, out_console
from garrison.core.errors import InvalidInput

app = typer.Typer(
    help="Site additions to the marking registry: SCI systems, SAP ids and nicknames, country "
    "groups (NATO-MEMBERS among them), CUI categories, ACCM nicknames, foreign dissemination "
    "controls, owner codes, and classification-by-compilation rules.",
    no_args_is_help=True,
)

KindArg = Annotated[
    str,
    typer.Argument(help="sci, sap, group, cui, sap-nickname, accm, nonic, owner or compilation."),
]
MembersOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--members",
        help="Country members of a group (omit for an opaque code); for NATO-MEMBERS the "
        "countries to add or remove.",
    ),
]


@app.command("add")
def add(
    ctx: typer.Context,
    kind: KindArg,
    name: Annotated[
        str,
        typer.Argument(
            help="The new token, e.g. ZX, SAR-RAVEN, NORD, SP-NUC, 'BUTTERED POPCORN', "
            "'TEA LEAF', AUSTEO, XKS."
        ),
    ],
    members: MembersOpt = None,
    pid: Annotated[
        str | None,
        typer.Option("--pid", help="The program identifier a sap-nickname stands for."),
    ] = None,
    description: Annotated[str | None, typer.Option("--description")] = None,
    when: Annotated[
        list[str] | None,
        typer.Option("--when", help="compilation: terms (comma list) or one re:EXPRESSION."),
    ] = None,
    and_: Annotated[
        list[str] | None,
        typer.Option("--and", help="compilation: the other part, written like --when."),
    ] = None,
    marking: Annotated[
        str | None, typer.Option("--marking", help="compilation: the marking of both together.")
    ] = None,
    reason: Annotated[
        str | None, typer.Option("--reason", help="compilation: why (required).")
    ] = None,
    workspace: WorkspaceOpt = None,
    as_user: AsOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Register a site marking token or a classification-by-compilation rule."""
    compilation = kind.strip().lower() == "compilation"
    if not compilation and (when or and_ or marking is not None or reason is not None):
        raise InvalidInput("Only a compilation rule takes --when, --and, --marking and --reason.")
    with open_session(ctx, workspace, as_user) as session:
        if compilation:
            if members or description is not None or pid is not None:
                raise InvalidInput(
                    "A compilation rule has no members, PID or description: give its --reason."
                )
            entry = session.registry_add_compilation(
                name, when=list(when or ()), and_=list(and_ or ()), marking=marking or "",
                reason=reason,
            )  # fmt: skip
        else:
            entry = session.registry_add(
                kind.lower(), name, members=split_list(members), description=description, pid=pid
            )
    if as_json:
        emit_json(entry)
    elif entry["kind"] == "sap-nickname":
        out_console.print(
            f"Registered sap-nickname {entry['name']} for SAR-{entry['pid']}.", markup=False
        )
    else:
        out_console.print(f"Registered {entry['kind']} {entry['name']}.", markup=False)


@app.command("remove")
def remove(
    ctx: typer.Context,
    kind: KindArg,
    name: Annotated[str, typer.Argument(help="The registered token.")],
    members: MembersOpt = None,
    workspace: WorkspaceOpt = None,
    as_user: AsOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Remove a site marking token (or members of NATO-MEMBERS) nothing depends on."""
    with open_session(ctx, workspace, as_user) as session:
        entry = session.registry_remove(kind.lower(), name, members=split_list(members))
    if as_json:
        emit_json(entry)
    elif members:
        out_console.print(f"Updated {entry['kind']} {entry['name']}.", markup=False)
    elif entry["kind"] == "compilation":
        out_console.print(f"Removed compilation rule {entry['name']}.", markup=False)
    else:
        out_console.print(f"Removed {entry['kind']} {entry['name']}.", markup=False)


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
    rules = [e for e in entries if e["kind"] == "compilation"]
    emit_table(
        ["kind", "name", "members", "added_by", "added_at"],
        [
            (
                e["kind"],
                e["name"],
                ",".join(e["members"] or ([f"PID {e['pid']}"] if e.get("pid") else [])),
                e["added_by"],
                e["added_at"],
            )
            for e in entries
            if e["kind"] != "compilation"
        ],
    )
    if rules:
        emit_table(
            ["compilation rule", "when", "and", "marking", "reason", "added_by"],
            [
                (r["name"], " | ".join(r["when"]), " | ".join(r["and"]), r["marking"],
                 r["reason"], r["added_by"])
                for r in rules
            ],
        )  # fmt: skip
