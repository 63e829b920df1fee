"""``garrison doctor``: checks of the installation and the workspace, each with advice."""

from __future__ import annotations

from typing import Annotated

import typer

from garrison.cli._common import JsonOpt, WorkspaceOpt, workspace_path
from garrison.cli._output import emit_json, out_console
from garrison.core.errors import CheckFailed, WorkspaceError

_MARK = {"passed": "ok  ", "warning": "WARN", "failed": "FAIL"}


def register(app: typer.Typer) -> None:
    """Add ``doctor`` to the top-level app."""
    app.command("doctor")(doctor)


def doctor(
    ctx: typer.Context,
    ray_address: Annotated[
        str | None,
        typer.Option(
            "--ray-address",
            help="A Ray cluster the pipeline will use (listed among the needed connections).",
        ),
    ] = None,
    workspace: WorkspaceOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Check the workspace and this host: catalog, audit log, keys, permissions, model weights,
    needed connections, external tools, encryption at rest (with no workspace: the host's model
    weights and tools only). Exit 1 when a check failed."""
    from garrison.ops import run_doctor

    try:
        root: str | None = workspace_path(ctx, workspace)
    except WorkspaceError:
        root = None  # no workspace yet: the host's checks only
    report = run_doctor(root, ray_address=ray_address)
    if root is None and not as_json:
        out_console.print("No workspace given: checking this host only.", markup=False)
    if as_json:
        emit_json(report.to_dict())
    else:
        for check in report.checks:
            out_console.print(f"{_MARK[check.status]}  {check.name}: {check.summary}", markup=False)
            if check.status != "passed" and check.advice:
                out_console.print(f"      -> {check.advice}", markup=False)
        counts = report.to_dict()["counts"]
        out_console.print(
            f"{counts['passed']} passed, {counts['warning']} warnings, {counts['failed']} failed.",
            markup=False,
        )
    if not report.ok:
        names = ", ".join(c.name for c in report.failed)
        raise CheckFailed(f"{len(report.failed)} doctor checks failed: {names}.")
