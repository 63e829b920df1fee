"""``garrison model``: the marked model registry."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from garrison.cli._common import AsOpt, JsonOpt, WorkspaceOpt, open_session
from garrison.cli._output import emit_json, out_console
from garrison.cli._paging import CursorOpt, PageLimitOpt, emit_listing, page_list, page_spec

app = typer.Typer(
    help="Marked model versions: train, optimize, use, carry across an air gap, remove.",
    no_args_is_help=True,
)
#: ``garrison model train classifier|embedder``.
train_app = typer.Typer(help="Train a model version on a marked dataset.", no_args_is_help=True)

RefArg = Annotated[str, typer.Argument(help="NAME, NAME@VERSION-PREFIX or a full version id.")]


def register(root: typer.Typer) -> None:
    """Add the model commands to the top-level app."""
    # Each module adds its commands to ``app`` or ``train_app`` when imported.
    from garrison.cli import (  # noqa: F401
        _models_bundle,
        _models_gen,
        _models_onnx,
        _models_refine,
        _models_train,
    )

    app.add_typer(train_app, name="train")
    root.add_typer(app, name="model")


def _summary(data: dict[str, Any]) -> None:
    out_console.print(
        f"{data['name']}@{data['id'][:12]}  v{data['version']}  {data['kind']}  "
        f"[{data['marking']}]  {data['files']} files  by {data['created_by']} at "
        f"{data['created_at']}",
        markup=False,
    )


@app.command("ls")
def ls(
    ctx: typer.Context,
    limit: PageLimitOpt = None,
    cursor: CursorOpt = None,
    workspace: WorkspaceOpt = None,
    as_user: AsOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """List the model versions the acting subject may read, newest first."""
    from garrison.models import Models

    with open_session(ctx, workspace, as_user) as session:
        versions = [v.to_dict(manifest=False) for v in Models(session).list()]
    spec = page_spec(limit, cursor)
    emit_listing(
        page_list(versions, "models", spec) if spec else versions,
        ["name", "version", "id", "kind", "marking", "created_by", "created_at"],
        lambda v: (
            v["name"],
            v["version"],
            v["id"][:16],
            v["kind"],
            v["marking"],
            v["created_by"],
            v["created_at"],
        ),
        as_json=as_json,
    )


@app.command("show")
def show(
    ctx: typer.Context,
    ref: RefArg,
    workspace: WorkspaceOpt = None,
    as_user: AsOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Show a model version: its manifest, lineage and card."""
    from garrison.models import Models
    from garrison.models._card import base_present

    with open_session(ctx, workspace, as_user) as session:
        data = Models(session).get(ref).to_dict()
        data["base_present"] = data["base"] and base_present(session, data["base"])
    if as_json:
        emit_json(data)
        return
    _summary(data)
    for step in data["lineage"]:
        absent = step["kind"] == "base" and data["base_present"] is False
        note = " (not present in this workspace)" if absent else ""
        out_console.print(
            f"  from {step['kind']} {step['name']}@{step['id'][:12]}{note}", markup=False
        )
    for entry in data["manifest"]["files"]:
        out_console.print(f"  {entry['sha256']}  {entry['path']}", markup=False)


@app.command("rm")
def rm(
    ctx: typer.Context,
    ref: RefArg,
    reason: Annotated[str, typer.Option("--reason", help="Why it is removed (audited).")],
    workspace: WorkspaceOpt = None,
    as_user: AsOpt = None,
) -> None:
    """Remove a model version (stewards, evaluators; audited)."""
    from garrison.models import Models

    with open_session(ctx, workspace, as_user) as session:
        version_id = Models(session).remove(ref, reason)
    out_console.print(f"Removed model version {version_id}.", markup=False)
