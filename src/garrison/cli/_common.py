"""Options and helpers shared by the command groups."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Annotated

import typer

from garrison.core.errors import WorkspaceError
from garrison.store.session import Session
from garrison.store.workspace import Workspace

__all__ = ["AsOpt", "JsonOpt", "WorkspaceOpt", "open_session", "split_list", "workspace_path"]

WorkspaceOpt = Annotated[
    str | None,
    typer.Option(
        "-w",
        "--workspace",
        # No envvar here: the environment is read once, by the top-level option, so an
        # explicit -w wins over GARRISON_WORKSPACE wherever it stands on the command line.
        help="Workspace directory (default: $GARRISON_WORKSPACE).",
    ),
]
AsOpt = Annotated[
    str | None,
    typer.Option("--as", help="Act as this user (every check applies); default: system session."),
]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print one JSON document on stdout.")]


def workspace_path(ctx: typer.Context, workspace: str | None) -> str:
    """The workspace to act on: ``-w`` after the command, else ``-w`` before it
    (``garrison -w PATH ...``), else ``$GARRISON_WORKSPACE``.

    Only the top-level option reads the environment, so an explicit ``-w`` always wins over
    it, wherever it stands.
    """
    chosen = workspace
    parent = ctx.find_root()
    if chosen is None and isinstance(parent.obj, dict):
        chosen = parent.obj.get("workspace")
    if not chosen:
        raise WorkspaceError("No workspace given: pass -w PATH or set GARRISON_WORKSPACE.")
    return chosen


@contextmanager
def open_session(
    ctx: typer.Context, workspace: str | None, as_user: str | None
) -> Iterator[Session]:
    """Open the workspace, act as ``as_user``, and write a signed checkpoint at the end."""
    ws = Workspace.open(workspace_path(ctx, workspace))
    try:
        yield ws.session(as_user)
    finally:
        ws.close()


def split_list(values: list[str] | None) -> tuple[str, ...] | None:
    """``--sci SI,TK --sci HCS`` -> ('SI', 'TK', 'HCS'); None when the option was not given."""
    if values is None:
        return None
    out: list[str] = []
    for value in values:
        out.extend(v.strip() for v in value.split(",") if v.strip())
    return tuple(out)
