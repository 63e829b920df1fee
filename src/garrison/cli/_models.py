"""``garrison model``: the marked model registry."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from garrison.cli._common import AsOpt, JsonOpt, WorkspaceOpt, open_session
from garrison.cli._output import emit_json, emit_table, out_console

app = typer.Typer(
    help="Marked model versions: train, optimize, use, carry across an air gap, remove.",
    no_args_is_help=True,
)
#: ``garrison model train classifier|embedder``.
train_app = typer.Typer(help="Train a model version on a marked dataset.", no_args_is_help=True)

RefArg = Annotated[str, typer.Argument(help="NAME, NAME@VERSION-PREFIX or a full version id.")]


def register(root: typer.Typer) -> None:
    """Add the model commands to the top-level app."""
    app.add_typer(train_app, name="train")
    import garrison.cli._models_onnx  # noqa: F401  (adds `model optimize`)

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
    limit: Annotated[int | None, typer.Option("--limit", min=0, help="At most N versions.")] = None,
    workspace: WorkspaceOpt = None,
    as_user: AsOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """List the model versions the acting subject may read, newest first."""
    from garrison.models import Models

    with open_session(ctx, workspace, as_user) as session:
        versions = [v.to_dict(manifest=False) for v in Models(session).list()]
    if limit is not None:
        versions = versions[:limit]
    if as_json:
        emit_json(versions)
        return
    emit_table(
        ["name", "version", "id", "kind", "marking", "created_by", "created_at"],
        [
            (
                v["name"],
                v["version"],
                v["id"][:16],
                v["kind"],
                v["marking"],
                v["created_by"],
                v["created_at"],
            )
            for v in versions
        ],
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

    with open_session(ctx, workspace, as_user) as session:
        data = Models(session).get(ref).to_dict()
    if as_json:
        emit_json(data)
        return
    _summary(data)
    for step in data["lineage"]:
        out_console.print(f"  from {step['kind']} {step['name']}@{step['id'][:12]}", markup=False)
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
