"""``garrison model optimize``: an embedder exported to int8 ONNX, checked, registered."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from garrison.cli._common import AsOpt, JsonOpt, WorkspaceOpt, open_session
from garrison.cli._models import RefArg, app
from garrison.cli._output import emit_json, out_console


def _mib(size: int) -> str:
    return f"{size / (1 << 20):.1f} MiB"


@app.command("optimize")
def optimize(
    ctx: typer.Context,
    ref: RefArg,
    name: Annotated[
        str | None,
        typer.Option("--name", help="Register the result under this name (default: the same)."),
    ] = None,
    check_file: Annotated[
        Path | None,
        typer.Option(
            "--check-file",
            help="Held-out texts for the fidelity check: one per line, or .jsonl with text.",
            exists=True,
            dir_okay=False,
        ),
    ] = None,
    workspace: WorkspaceOpt = None,
    as_user: AsOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Export an embedder to int8 ONNX and register it once it passes the fidelity check
    (stewards, evaluators).

    The check compares it with the source on held-out texts (the --check-file, else readable
    workspace chunks no higher than the model, else a built-in set): mean cosine >= 0.99 and
    recall@10 within 0.01 of fp32; a failed check registers nothing (exit 1).
    """
    from garrison.cli._ingest import progress_bar
    from garrison.models._optimize import optimize_embedder, read_check_file

    texts = read_check_file(check_file) if check_file is not None else None
    with open_session(ctx, workspace, as_user) as session, progress_bar() as bar:
        tasks: dict[str, Any] = {}

        def progress(step: str, done: int, total: int) -> None:
            if step not in tasks:
                tasks[step] = bar.add_task(step, total=total)
            bar.update(tasks[step], completed=done, total=total)

        result = optimize_embedder(session, ref, name=name, check_set=texts, progress=progress)
    data = result.to_dict()
    if as_json:
        emit_json(data)
        return
    fid = data["fidelity"]
    cosine = fid["mean_cosine"]
    lines = [
        f"Registered {data['ref']} [{data['marking']}], int8 ONNX of {data['source']['ref']}.",
        f"  mean cosine to fp32  {cosine['value']:.4f} "
        f"(95% {cosine['low']:.4f}-{cosine['high']:.4f}, min {fid['min_cosine']:.4f}) "
        f"on {fid['texts']} {fid['source']} texts",
        f"  recall@10            fp32 {fid['recall@10_fp32']['value']:.4f}  "
        f"int8 {fid['recall@10_int8']['value']:.4f}",
        f"  size                 {_mib(data['size_bytes']['before'])} -> "
        f"{_mib(data['size_bytes']['after'])}",
    ]
    for line in lines:
        out_console.print(line, markup=False)
