"""``garrison access eval``: evaluate access expressions against authorization sets."""

from __future__ import annotations

from typing import Annotated

import typer

from garrison.core.errors import AccessExpressionError
from garrison.security.access import evaluate_all, parse_expression

app = typer.Typer(help="Evaluate access expressions.", no_args_is_help=True)


@app.command("eval")
def eval_(
    expressions: Annotated[list[str], typer.Argument(help="Access expressions.")],
    auths: Annotated[
        list[str] | None,
        typer.Option(
            "--auths",
            help="Comma-separated authorization tokens; repeat for several sets, each of "
            "which must satisfy the expression.",
        ),
    ] = None,
) -> None:
    """Print ACCESSIBLE, INACCESSIBLE or 'ERROR: <message> at offset N' per expression."""
    sets = [[t for t in a.split(",") if t] for a in (auths or [""])]
    for text in expressions:
        try:
            parsed = parse_expression(text)
        except AccessExpressionError as exc:
            typer.echo(f"ERROR: {exc.message} at offset {exc.offset}")
            continue
        typer.echo("ACCESSIBLE" if evaluate_all(parsed, sets) else "INACCESSIBLE")
