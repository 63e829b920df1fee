"""``garrison marking``: check, roll up and compile markings.

With ``--json`` each command prints the structured form of the marking (see :func:`structured`):
the parsed fields, the findings of a valid marking, the banner and portion forms and the access
expression. A marking that does not validate exits 2 with one line on stderr naming the rule;
with ``--json`` the same error is also printed as ``{"error": {...}}`` on stdout.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Annotated, Any

import typer

from garrison.cli._common import AsOpt, JsonOpt, WorkspaceOpt
from garrison.cli._output import emit_json
from garrison.core.errors import MarkingError
from garrison.security.markings import (
    BUILTIN_REGISTRY,
    MARKING_FINDINGS,
    Marking,
    MarkingRegistry,
    access_expression,
    join,
    parse_with_findings,
    release_expression,
)

app = typer.Typer(help="Check, roll up and compile security markings.", no_args_is_help=True)

#: The classification as written, for NATO levels.
_NATO_LEVELS = {
    "CTS": "COSMIC TOP SECRET",
    "NS": "NATO SECRET",
    "NC": "NATO CONFIDENTIAL",
    "NR": "NATO RESTRICTED",
    "NU": "NATO UNCLASSIFIED",
}


def _registry(ctx: typer.Context, workspace: str | None) -> MarkingRegistry:
    """The workspace's registry when one is named, the built-in registry otherwise."""
    root = ctx.find_root().obj or {}
    chosen = workspace or root.get("workspace")
    if not chosen:
        return BUILTIN_REGISTRY
    from garrison.store.workspace import Workspace

    ws = Workspace.open(chosen)
    try:
        return ws.registry
    finally:
        ws.close(checkpoint=False)


@contextmanager
def _errors(as_json: bool, text: str | None = None) -> Iterator[None]:
    """A marking error as one JSON document on stdout too (with ``--json``); the error goes on
    to the command line's handler, which prints the one line naming the rule and exits 2."""
    try:
        yield
    except MarkingError as exc:
        if as_json:
            error: dict[str, Any] = {
                "code": exc.code,
                "rule": exc.rule,
                "message": exc.message,
            }
            if text is not None or exc.text is not None:
                error["input"] = exc.text if exc.text is not None else text
            emit_json({"error": error})
        raise


def _parse(text: str, registry: MarkingRegistry, as_json: bool) -> tuple[Marking, tuple[str, ...]]:
    with _errors(as_json, text):
        try:
            return parse_with_findings(text, registry=registry)
        except MarkingError as exc:  # one line, with "Did you mean ...?" for a near miss
            from garrison.cli._suggest import with_suggestion

            hint = with_suggestion(exc, text, registry)
            raise MarkingError(hint, rule=exc.rule, text=exc.text) from exc


def _level(m: Marking) -> str:
    """The classification as the marking writes it (``NATO SECRET``, ``RESTRICTED``)."""
    if m.kind == "NATO":
        return _NATO_LEVELS[m.nato]
    if m.restricted:
        return "RESTRICTED"
    return m.level.banner_name


def fields(m: Marking) -> dict[str, Any]:
    """The parsed marking's fields, by category (MARKINGS.md sections 1 and 7)."""
    detail = m.to_dict()
    register = detail.get("register", {})
    nato_controls = register.get("nato_controls", [])
    return {
        "kind": m.kind,
        "level": _level(m),
        "us_level": m.level.banner_name,
        "owners": register.get("owners", []),
        "nato": register.get("nato", "") or None,
        "joint": register.get("owners", []) if m.kind == "JOINT" else [],
        "fgi": register.get("fgi", []),
        "fgi_concealed": bool(register.get("concealed", False)),
        "sci": detail["sci"],
        "nato_controls": nato_controls,
        "sap": detail["sap"],
        "sap_multiple": bool(register.get("sap_multiple", False)),
        "hvsaco": bool(register.get("hvsaco", False)),
        "aea": register.get("aea", []),
        "sigma": register.get("sigma", []),
        "dissem": detail["dissem"],
        "rel_to": detail["rel_to"],
        "display_only": detail["display_only"],
        "nonic": register.get("nonic", []),
        "accm": register.get("accm", []),
        "cui": detail["cui"],
    }


def findings(kinds: tuple[str, ...]) -> list[dict[str, str]]:
    """The findings of a valid marking (``legacy-marking``, ``legacy-sigma``): warnings."""
    return [{"rule": k, "message": MARKING_FINDINGS[k], "severity": "warning"} for k in kinds]


def structured(m: Marking, found: tuple[str, ...] = ()) -> dict[str, Any]:
    """The structured form ``--json`` prints for one marking."""
    return {
        "marking": m.banner(),
        "portion": m.portion(),
        "fields": fields(m),
        "findings": findings(found),
        "expression": access_expression(m),
        "release_expression": release_expression(m),
        "marking_detail": m.to_dict(),
    }


def _warn(found: tuple[str, ...], echo: Callable[..., None] = typer.echo) -> None:
    """The findings of a valid marking, one line each on stderr (the result stays on stdout)."""
    for kind in found:
        echo(f"garrison: warning: {MARKING_FINDINGS[kind]} (finding: {kind})", err=True)


@app.command("check")
def check(
    ctx: typer.Context,
    marking: Annotated[str, typer.Argument(help="A banner or portion marking.")],
    portion: Annotated[bool, typer.Option("--portion", help="Print the portion form.")] = False,
    workspace: WorkspaceOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Validate MARKING and print its canonical banner (or portion) form."""
    parsed, found = _parse(marking, _registry(ctx, workspace), as_json)
    if as_json:
        emit_json({"input": marking, **structured(parsed, found)})
        return
    typer.echo(parsed.portion() if portion else parsed.banner())
    _warn(found)


@app.command("rollup")
def rollup(
    ctx: typer.Context,
    portions: Annotated[list[str], typer.Argument(help="Portion (or banner) markings.")],
    workspace: WorkspaceOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Print the canonical banner of the join (roll-up) of PORTIONS."""
    registry = _registry(ctx, workspace)
    read = [_parse(p, registry, as_json) for p in portions]
    parsed = [m for m, _ in read]
    found = tuple(dict.fromkeys(k for _, kinds in read for k in kinds))
    with _errors(as_json):
        result = join(*parsed)
    if as_json:
        emit_json(
            {
                "inputs": [p.portion() for p in parsed],
                "input_details": [
                    {"input": text, **structured(m, kinds)}
                    for text, (m, kinds) in zip(portions, read, strict=True)
                ],
                **structured(result, found),
            }
        )
        return
    typer.echo(result.banner())
    _warn(found)


@app.command("expr")
def expr(
    ctx: typer.Context,
    marking: Annotated[str, typer.Argument(help="A banner or portion marking.")],
    workspace: WorkspaceOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Print the normalized access expression that MARKING compiles to."""
    parsed, found = _parse(marking, _registry(ctx, workspace), as_json)
    if as_json:
        emit_json({"input": marking, **structured(parsed, found)})
        return
    typer.echo(access_expression(parsed))
    _warn(found)


@app.command("downgrade")
def downgrade(
    ctx: typer.Context,
    object_id: Annotated[str, typer.Argument(help="A document or element id.")],
    to: Annotated[str, typer.Option("--to", help="The lower marking.")],
    reason: Annotated[str, typer.Option("--reason", help="Why this is releasable lower.")],
    workspace: WorkspaceOpt = None,
    as_user: AsOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Lower a document's or element's marking (stewards who dominate the original; audited)."""
    from garrison.cli._common import open_session
    from garrison.store.documents import Documents

    with open_session(ctx, workspace, as_user) as session:
        result = Documents(session).downgrade(object_id, to, reason)
    if as_json:
        emit_json(result)
    else:
        typer.echo(f"Downgraded {object_id} from {result['from']} to {result['to']}.")
