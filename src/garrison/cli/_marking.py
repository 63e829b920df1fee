"""``garrison marking``: check, roll up and compile markings."""

from __future__ import annotations

from typing import Annotated

import typer

from garrison.cli._common import AsOpt, JsonOpt, WorkspaceOpt
from garrison.cli._output import emit_json
from garrison.core.errors import MarkingError
from garrison.security.markings import (
    BUILTIN_REGISTRY,
    MarkingRegistry,
    access_expression,
    join,
    parse_marking,
    release_expression,
)

app = typer.Typer(help="Check, roll up and compile security markings.", no_args_is_help=True)


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


@app.command("check")
def check(
    ctx: typer.Context,
    marking: Annotated[str, typer.Argument(help="A banner or portion marking.")],
    portion: Annotated[bool, typer.Option("--portion", help="Print the portion form.")] = False,
    workspace: WorkspaceOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Validate MARKING and print its canonical banner (or portion) form."""
    registry = _registry(ctx, workspace)
    try:
        parsed = parse_marking(marking, registry=registry)
    except MarkingError as exc:  # one line, with "Did you mean ...?" for a near miss
        from garrison.cli._suggest import with_suggestion

        hint = with_suggestion(exc, marking, registry)
        raise MarkingError(hint, rule=exc.rule, text=exc.text) from exc
    if as_json:
        emit_json(
            {
                "input": marking,
                "marking": parsed.banner(),
                "portion": parsed.portion(),
                "marking_detail": parsed.to_dict(),
            }
        )
        return
    typer.echo(parsed.portion() if portion else parsed.banner())


@app.command("rollup")
def rollup(
    ctx: typer.Context,
    portions: Annotated[list[str], typer.Argument(help="Portion (or banner) markings.")],
    workspace: WorkspaceOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Print the canonical banner of the join (roll-up) of PORTIONS."""
    registry = _registry(ctx, workspace)
    parsed = [parse_marking(p, registry=registry) for p in portions]
    result = join(*parsed)
    if as_json:
        emit_json(
            {
                "inputs": [p.portion() for p in parsed],
                "marking": result.banner(),
                "marking_detail": result.to_dict(),
            }
        )
        return
    typer.echo(result.banner())


@app.command("expr")
def expr(
    ctx: typer.Context,
    marking: Annotated[str, typer.Argument(help="A banner or portion marking.")],
    workspace: WorkspaceOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Print the normalized access expression that MARKING compiles to."""
    registry = _registry(ctx, workspace)
    try:
        parsed = parse_marking(marking, registry=registry)
    except MarkingError as exc:  # one line, with "Did you mean ...?" for a near miss
        from garrison.cli._suggest import with_suggestion

        hint = with_suggestion(exc, marking, registry)
        raise MarkingError(hint, rule=exc.rule, text=exc.text) from exc
    if as_json:
        emit_json(
            {
                "marking": parsed.banner(),
                "expression": access_expression(parsed),
                "release_expression": release_expression(parsed),
            }
        )
        return
    typer.echo(access_expression(parsed))


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
