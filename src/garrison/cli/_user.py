"""``garrison user``: manage subjects (admin; every change audited)."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from garrison.cli._common import AsOpt, JsonOpt, WorkspaceOpt, open_session, split_list
from garrison.cli._output import emit_json, out_console
from garrison.cli._paging import CursorOpt, PageLimitOpt, emit_listing, page_list, page_spec
from garrison.security.subjects import Subject
from garrison.store.session import SubjectSpec

app = typer.Typer(help="Manage users and service accounts.", no_args_is_help=True)

ListOpt = list[str] | None


def _spec(
    clearance: str | None,
    sci: ListOpt,
    sap: ListOpt,
    country: str | None,
    group: ListOpt,
    grant: ListOpt,
    role: ListOpt,
    service: bool | None,
    dn: str | None,
    disabled: bool | None = None,
    *,
    briefings: dict[str, Any],
) -> SubjectSpec:
    return SubjectSpec(
        nato=briefings["nato"],
        nato_special=split_list(briefings["nato_special"]),
        aea=split_list(briefings["aea"]),
        accm=split_list(briefings["accm"]),
        nonic=split_list(briefings["nonic"]),
        clearance=clearance,
        sci=split_list(sci),
        sap=split_list(sap),
        citizenship=country,
        groups=split_list(group),
        grants=split_list(grant),
        roles=split_list(role),
        kind=None if service is None else ("service" if service else "user"),
        dn=dn,
        disabled=disabled,
    )


def _show(subject: Subject, as_json: bool) -> None:
    data = subject.to_dict()
    if as_json:
        emit_json(data)
        return
    for key, value in data.items():
        shown = ", ".join(value) if isinstance(value, list) else value
        out_console.print(f"{key}: {shown}", markup=False)


def _briefings(subject: Subject) -> str:
    """The 7.4 briefings in one cell: NATO level and specials, AEA, ACCM, non-IC grants."""
    parts = [f"NATO {subject.nato}"] if subject.nato else []
    for values in (subject.nato_special, subject.aea, subject.accm, subject.nonic):
        parts.extend(sorted(values))
    return ",".join(parts)


ClearanceOpt = Annotated[str | None, typer.Option("--clearance", help="U, C, S or TS.")]
SciOpt = Annotated[ListOpt, typer.Option("--sci", help="SCI read-ins, e.g. SI,TK (TS only).")]
SapOpt = Annotated[
    ListOpt,
    typer.Option("--sap", help="SAP accesses, e.g. SAR-BP, SAR-<registered nickname>, HVSACO."),
]
CountryOpt = Annotated[
    str | None, typer.Option("--country", help="Citizenship (ISO 3166-1 alpha-3, default USA).")
]
GroupOpt = Annotated[ListOpt, typer.Option("--group", help="Opaque group memberships, e.g. NATO.")]
GrantOpt = Annotated[
    ListOpt,
    typer.Option("--grant", help="Dissemination grants: ORCON, IMCON, PROPIN, FISA, CUI, DSEN."),
]
RoleOpt = Annotated[
    ListOpt,
    typer.Option("--role", help="Roles: admin, steward, annotator, reviewer, evaluator, viewer."),
]
DnOpt = Annotated[
    str | None, typer.Option("--dn", help="Client-certificate subject DN for mutual TLS.")
]
NatoOpt = Annotated[
    str | None,
    typer.Option(
        "--nato",
        help="NATO briefing: CTS, NS, NC, NR or NU (grants the levels below it; citizens of "
        "NATO-MEMBERS only; '' removes it).",
    ),
]
NatoSpecialOpt = Annotated[
    ListOpt,
    typer.Option("--nato-special", help="NATO special briefings: ATOMAL, BOHEMIA, BALK."),
]
AeaOpt = Annotated[
    ListOpt,
    typer.Option("--aea", help="Atomic energy accesses: RD, CNWDI, SIGMA-<n>, DCNI, UCNI."),
]
AccmOpt = Annotated[
    ListOpt, typer.Option("--accm", help="Registered ACCM nicknames, e.g. 'TEA LEAF'.")
]
NonicOpt = Annotated[
    ListOpt,
    typer.Option(
        "--nonic",
        help="Non-IC dissemination grants: LIMDIS, EXDIS, NODIS, SBU, LES, SSI or a registered "
        "foreign control.",
    ),
]


@app.command("add")
def add(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="User name.")],
    clearance: ClearanceOpt = None,
    sci: SciOpt = None,
    sap: SapOpt = None,
    country: CountryOpt = None,
    group: GroupOpt = None,
    grant: GrantOpt = None,
    role: RoleOpt = None,
    service: Annotated[bool, typer.Option("--service", help="A service account.")] = False,
    dn: DnOpt = None,
    nato: NatoOpt = None,
    nato_special: NatoSpecialOpt = None,
    aea: AeaOpt = None,
    accm: AccmOpt = None,
    nonic: NonicOpt = None,
    workspace: WorkspaceOpt = None,
    as_user: AsOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Add a user (or, with --service, a service account)."""
    briefings = {
        "nato": nato,
        "nato_special": nato_special,
        "aea": aea,
        "accm": accm,
        "nonic": nonic,
    }
    spec = _spec(
        clearance,
        sci,
        sap,
        country,
        group,
        grant,
        role,
        service,
        dn,
        briefings=briefings,
    )
    with open_session(ctx, workspace, as_user) as session:
        subject = session.add_user(name, spec)
    if as_json:
        emit_json(subject.to_dict())
    else:
        out_console.print(f"Added {subject.kind.value} {subject.name}.", markup=False)


@app.command("update")
def update(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="User name.")],
    clearance: ClearanceOpt = None,
    sci: SciOpt = None,
    sap: SapOpt = None,
    country: CountryOpt = None,
    group: GroupOpt = None,
    grant: GrantOpt = None,
    role: RoleOpt = None,
    dn: DnOpt = None,
    disable: Annotated[
        bool | None, typer.Option("--disable/--enable", help="Disable or re-enable the user.")
    ] = None,
    nato: NatoOpt = None,
    nato_special: NatoSpecialOpt = None,
    aea: AeaOpt = None,
    accm: AccmOpt = None,
    nonic: NonicOpt = None,
    workspace: WorkspaceOpt = None,
    as_user: AsOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Change a user's attributes; options given replace the current values."""
    briefings = {
        "nato": nato,
        "nato_special": nato_special,
        "aea": aea,
        "accm": accm,
        "nonic": nonic,
    }
    spec = _spec(
        clearance,
        sci,
        sap,
        country,
        group,
        grant,
        role,
        None,
        dn,
        disable,
        briefings=briefings,
    )
    with open_session(ctx, workspace, as_user) as session:
        subject = session.update_user(name, spec)
    if as_json:
        emit_json(subject.to_dict())
    else:
        out_console.print(f"Updated {subject.name}.", markup=False)


@app.command("show")
def show(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="User name.")],
    workspace: WorkspaceOpt = None,
    as_user: AsOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Show a user with the authorization tokens derived from it."""
    with open_session(ctx, workspace, as_user) as session:
        subject = session.get_user(name)
    _show(subject, as_json)


@app.command("list")
def list_(
    ctx: typer.Context,
    workspace: WorkspaceOpt = None,
    as_user: AsOpt = None,
    as_json: JsonOpt = False,
    limit: PageLimitOpt = None,
    cursor: CursorOpt = None,
) -> None:
    """List users, by name."""
    with open_session(ctx, workspace, as_user) as session:
        subjects = session.list_users()
    rows = [s.to_dict() for s in subjects]
    briefings = {s.name: _briefings(s) for s in subjects}
    spec = page_spec(limit, cursor)
    emit_listing(
        page_list(rows, "users", spec, key="name") if spec else rows,
        ["name", "kind", "clearance", "sci", "sap", "country", "grants", "roles", "briefings"],
        lambda s: (
            s["name"],
            s["kind"],
            s["clearance"],
            ",".join(sorted(s["sci"])),
            ",".join(sorted(s["sap"])),
            s["citizenship"],
            ",".join(sorted(s["grants"])),
            ",".join(sorted(s["roles"])),
            briefings[s["name"]],
        ),
        as_json=as_json,
    )
