"""``garrison init`` and ``garrison migrate``."""

from __future__ import annotations

from typing import Annotated

import typer

from garrison.cli._common import JsonOpt, WorkspaceOpt, open_session, workspace_path
from garrison.cli._output import emit_json, out_console
from garrison.security.audit import AuditAction
from garrison.security.policy import Action
from garrison.store.workspace import Workspace


def register(app: typer.Typer) -> None:
    """Add the workspace commands to the top-level app."""
    app.command("init")(init)
    app.command("migrate")(migrate)


def init(
    path: Annotated[str, typer.Argument(help="Directory to create (must not exist or be empty).")],
    system_high: Annotated[
        str,
        typer.Option(
            "--system-high",
            help="The most the network is accredited for, e.g. 'SECRET//REL TO USA, FVEY'.",
        ),
    ],
    db: Annotated[
        str | None,
        typer.Option(
            "--db",
            help="Catalog database URL (default: SQLite in the workspace; or "
            "postgresql+psycopg://...).",
        ),
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Create a workspace: configuration, catalog, keys (0600) and audit log."""
    from garrison.models import register_shipped_models

    ws = Workspace.init(path, system_high=system_high, db_url=db)
    try:
        models = register_shipped_models(ws.session())
        result = {
            "workspace": str(ws.root),
            "workspace_id": ws.config.workspace_id,
            "system_high": ws.system_high.banner(),
            "catalog": ws.catalog.backend,
            "models": models,
        }
    finally:
        ws.close()
    if as_json:
        emit_json(result)
    else:
        out_console.print(
            f"Created workspace {result['workspace']} (system high {result['system_high']}, "
            f"{result['catalog']} catalog).",
            markup=False,
        )


def migrate(ctx: typer.Context, workspace: WorkspaceOpt = None) -> None:
    """Upgrade the catalog schema to this version of Garrison (system session; audited)."""
    from garrison.core.config import WorkspaceConfig
    from garrison.store.catalog import Catalog, resolve_url

    root = workspace_path(ctx, workspace)
    from pathlib import Path

    from garrison.store.keys import binding_key

    config = WorkspaceConfig.load(Path(root))
    catalog = Catalog(
        resolve_url(config.catalog_url, Path(root).absolute()),
        binding_key=binding_key(Path(root).absolute()),
    )
    try:
        before = catalog.revision()
        catalog.migrate()
        after = catalog.revision()
    finally:
        catalog.dispose()
    from garrison.models import register_shipped_models

    with open_session(ctx, workspace, None) as session:
        session.require(Action.MANAGE_REGISTRY, AuditAction.CATALOG_MIGRATE)
        session.audit(AuditAction.CATALOG_MIGRATE, details={"from": before, "to": after})
        register_shipped_models(session)
    out_console.print(f"Catalog schema is current (was {before}).", markup=False)
