"""``garrison model card|export|import``: model cards and signed model bundles."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from garrison.cli._common import AsOpt, JsonOpt, WorkspaceOpt, open_session
from garrison.cli._models import RefArg, app
from garrison.cli._output import emit_json, out_console
from garrison.core.errors import InvalidInput

CARD_FORMATS = ("md", "html", "json")


@app.command("card")
def card(
    ctx: typer.Context,
    ref: RefArg,
    fmt: Annotated[str, typer.Option("--format", help="md (default), html or json.")] = "md",
    out: Annotated[
        Path | None, typer.Option("--out", help="Write the card to this file instead.")
    ] = None,
    workspace: WorkspaceOpt = None,
    as_user: AsOpt = None,
) -> None:
    """Print a model version's card: Markdown, a self-contained HTML page, or JSON."""
    from garrison.models._card import model_card, render_html, render_json, render_markdown

    if fmt not in CARD_FORMATS:
        raise InvalidInput(f"Unknown card format {fmt!r}: use md, html or json.")
    with open_session(ctx, workspace, as_user) as session:
        data = model_card(session, ref)
        data["evaluation"] = _latest_evaluation(session, data["model"])
    text = {"md": render_markdown, "html": render_html, "json": render_json}[fmt](data)
    if out is None:
        typer.echo(text, nl=False)
        return
    if out.is_dir():
        raise InvalidInput(f"{out} is a directory; give a file to write the card to.")
    out.write_text(text, encoding="utf-8")
    out_console.print(
        f"Wrote the {fmt} card of {data['model']['ref']} [{data['model']['marking']}] to {out}.",
        markup=False,
    )


@app.command("export")
def export(
    ctx: typer.Context,
    ref: RefArg,
    out: Annotated[Path, typer.Option("--out", help="A new or empty directory.")],
    workspace: WorkspaceOpt = None,
    as_user: AsOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Export a version as a signed bundle: weights, card, manifest, checksums, signature."""
    from garrison.models._bundle import export_model

    with open_session(ctx, workspace, as_user) as session:
        result = export_model(session, ref, out)
    if as_json:
        emit_json(result.to_dict())
        return
    out_console.print(
        f"Exported {result.name}@{result.version_id[:12]} [{result.marking}] to {result.path} "
        f"({len(result.files)} files, signed by {result.key_id}).",
        markup=False,
    )


@app.command("import")
def import_(
    ctx: typer.Context,
    path: Annotated[Path, typer.Argument(help="A bundle directory `model export` wrote.")],
    trusted_key: Annotated[
        Path,
        typer.Option("--trusted-key", help="The exporting workspace's public key (key export)."),
    ],
    workspace: WorkspaceOpt = None,
    as_user: AsOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Verify a model bundle and register its version here (same id, marking, lineage, card)."""
    from garrison.models._bundle import import_model

    with open_session(ctx, workspace, as_user) as session:
        result = import_model(session, path, trusted_key)
    if as_json:
        emit_json(result.to_dict())
        return
    version = result.version
    what = "was already registered" if result.already_present else "imported"
    out_console.print(
        f"{version.ref} [{version.marking.banner()}] {what}: signature by {result.key_id} "
        "and every checksum verified.",
        markup=False,
    )
    if result.base_present is False:
        out_console.print(
            f"Its base model {version.manifest['base'][:12]} is not in this workspace.",
            markup=False,
        )


def _latest_evaluation(session: Any, model: dict[str, Any]) -> dict[str, Any] | None:
    """The model's latest evaluation run for its card (figures only where the card's marking
    dominates the run's), or None; the evaluator role is not needed to read a run."""
    from garrison.core.errors import NotPermitted
    from garrison.evaluate import Runs

    try:
        return Runs(session).latest_for_model(
            str(model["id"]), session.parse_marking(str(model["marking"]))
        )
    except NotPermitted:
        return None
