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
    blobs: Annotated[
        str | None,
        typer.Option(
            "--blobs",
            help="Keep original bytes (always encrypted) on object storage: s3://bucket/prefix.",
        ),
    ] = None,
    index: Annotated[
        str | None,
        typer.Option(
            "--index",
            help="Keep the search index on object storage: s3://bucket/prefix (above "
            "UNCLASSIFIED the bucket must enforce server-side encryption).",
        ),
    ] = None,
    s3_endpoint: Annotated[
        str | None,
        typer.Option(
            "--s3-endpoint",
            help="URL of the S3-compatible server (default: AWS_ENDPOINT_URL, else AWS S3).",
        ),
    ] = None,
    s3_region: Annotated[
        str | None,
        typer.Option("--s3-region", help="Region of the buckets (default: AWS_REGION)."),
    ] = None,
    s3_virtual_hosted: Annotated[
        bool,
        typer.Option(
            "--s3-virtual-hosted",
            help="Address buckets as bucket.host (AWS S3) instead of host/bucket.",
        ),
    ] = False,
    as_json: JsonOpt = False,
) -> None:
    """Create a workspace: configuration, catalog, keys (0600) and audit log."""
    from garrison.core.config import S3Settings
    from garrison.models import register_shipped_models

    s3 = S3Settings(endpoint_url=s3_endpoint, region=s3_region, path_style=not s3_virtual_hosted)
    ws = Workspace.init(
        path, system_high=system_high, db_url=db, blob_url=blobs, index_url=index, s3=s3
    )
    try:
        models = register_shipped_models(ws.session())
        result = {
            "workspace": str(ws.root),
            "workspace_id": ws.config.workspace_id,
            "system_high": ws.system_high.banner(),
            "catalog": ws.catalog.backend,
            "blobs": ws.config.blob_url,
            "index": ws.config.index_url,
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
