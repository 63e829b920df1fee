"""Options and helpers shared by the command groups."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Annotated

import typer

from garrison.core.errors import InvalidInput, WorkspaceError
from garrison.store.session import Session
from garrison.store.workspace import Workspace

__all__ = [
    "AsOpt",
    "JsonOpt",
    "WorkspaceOpt",
    "open_session",
    "resolve_id",
    "split_list",
    "workspace_path",
]

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


def resolve_id(session: Session, ref: str, *kinds: str) -> str:
    """The full id ``ref`` stands for: itself, or the one readable record of ``kinds``
    (``document``, ``chunk``, ``element``, ``finding``) whose id starts with it.

    A prefix needs :data:`~garrison.store.prefixes.MIN_PREFIX` characters; shorter input, and a
    prefix matching nothing the subject may read, come back unchanged, so the command answers
    "not found" exactly as for an unknown id. A prefix matching several readable records is an
    error (exit 2); only readable records are ever counted or named.
    """
    from garrison.store.prefixes import MIN_PREFIX, readable_ids

    ref = ref.strip()
    if len(ref) < MIN_PREFIX:
        return ref
    matches: list[str] = []
    for kind in kinds:
        matches.extend(f"{kind} {i}" for i in readable_ids(session, kind, ref))
    full = [m.split(" ", 1)[1] for m in matches]
    if ref in full or not matches:
        return ref
    if len(matches) == 1:
        return full[0]
    shown = ", ".join(matches[:2]) + (", ..." if len(matches) > 2 else "")
    raise InvalidInput(
        f"The id prefix {ref} is ambiguous: it matches more than one record you may read "
        f"({shown}); give more characters."
    )
