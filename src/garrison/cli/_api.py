"""``garrison serve`` (the REST API and the web UI) and ``garrison token`` (API tokens; admin)."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Annotated

import typer

from garrison.cli._common import AsOpt, JsonOpt, WorkspaceOpt, open_session, workspace_path
from garrison.cli._output import emit_json, emit_table, out_console
from garrison.core.errors import InvalidInput, MissingExtra
from garrison.store.tokens import create_token, list_tokens, revoke_token
from garrison.store.workspace import Workspace

__all__ = ["register", "token_app"]

#: uvicorn's logging, less its access log, plus the request-count summaries on stderr.
_LOG_CONFIG: dict[str, object] = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"}},
    "handlers": {
        "stderr": {
            "class": "logging.StreamHandler",
            "formatter": "plain",
            "stream": "ext://sys.stderr",
        }
    },
    "loggers": {
        "uvicorn": {"handlers": ["stderr"], "level": "INFO", "propagate": False},
        "uvicorn.error": {"level": "INFO"},
        "uvicorn.access": {"handlers": [], "level": "CRITICAL", "propagate": False},
        "garrison.http": {"handlers": ["stderr"], "level": "INFO", "propagate": False},
    },
}

token_app = typer.Typer(help="Manage API tokens (admin).", no_args_is_help=True)


def register(app: typer.Typer) -> None:
    """Add ``serve`` and the ``token`` group to the top-level app."""
    app.command("serve")(serve)
    app.add_typer(token_app, name="token")


def serve(
    ctx: typer.Context,
    host: Annotated[str, typer.Option("--host", help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", min=1, max=65535, help="Port.")] = 8600,
    tls_cert: Annotated[
        Path | None, typer.Option("--tls-cert", help="Server certificate (PEM): serve HTTPS.")
    ] = None,
    tls_key: Annotated[Path | None, typer.Option("--tls-key", help="Its private key.")] = None,
    client_ca: Annotated[
        Path | None,
        typer.Option("--client-ca", help="CA that signs client certificates (mutual TLS)."),
    ] = None,
    session_idle: Annotated[
        int,
        typer.Option(
            "--session-idle", min=1, help="Web UI: minutes without a request before sign-out."
        ),
    ] = 480,
    session_max: Annotated[
        int,
        typer.Option("--session-max", min=1, help="Web UI: minutes a sign-in lasts at most."),
    ] = 720,
    workspace: WorkspaceOpt = None,
) -> None:
    """Serve the REST API (/v1) and the web UI (/ui), signed in by token or client certificate."""
    path = workspace_path(ctx, workspace)
    Workspace.open(path).close(checkpoint=False)  # fail now, with the usual message
    tls = (tls_cert, tls_key, client_ca)
    if any(tls) and not all(tls):
        raise InvalidInput("Mutual TLS needs all of --tls-cert, --tls-key and --client-ca.")
    if session_max < session_idle:
        raise InvalidInput("--session-max must be at least --session-idle.")
    try:
        from garrison.web import WebSettings, create_app
    except ImportError as exc:  # pragma: no cover - the web extra is missing
        raise MissingExtra("web", exc.name or "fastapi") from exc
    settings = WebSettings(
        idle_timeout=timedelta(minutes=session_idle),
        absolute_timeout=timedelta(minutes=session_max),
    )
    app = create_app(path, settings)
    _announce(host, port, tls=all(tls))
    if tls_cert is not None and tls_key is not None and client_ca is not None:
        from garrison.api._tls import serve as serve_tls  # type: ignore[import-not-found,unused-ignore]

        serve_tls(app, host, port, str(tls_cert), str(tls_key), str(client_ca))
        return
    try:
        import uvicorn
    except ImportError as exc:  # pragma: no cover - the web extra is missing
        raise MissingExtra("web", "uvicorn") from exc
    # No access log: a request line holds ids and search queries. The app's own middleware
    # writes request counts and timings instead (the garrison.http logger).
    uvicorn.run(app, host=host, port=port, access_log=False, log_config=_LOG_CONFIG)


def _announce(host: str, port: int, *, tls: bool) -> None:
    """Say where the UI and the API are, and how to sign in."""
    scheme = "https" if tls else "http"
    shown = f"[{host}]" if ":" in host else host
    base = f"{scheme}://{shown}:{port}"
    lines = [
        f"Web UI:   {base}/ui/",
        f"REST API: {base}/v1/  (reference: {base}/docs)",
        "Sign in with an API token: an admin creates one with `garrison token create USER` "
        "(shown once).",
    ]
    if tls:
        lines.append("With mutual TLS, a client certificate signed by --client-ca signs in too.")
    if host in ("0.0.0.0", "::"):  # noqa: S104 -- only describing what was asked for
        lines.append("Listening on every interface: reach it by this host's name or address.")
    for line in lines:
        out_console.print(line, markup=False)


@token_app.command("create")
def token_create(
    ctx: typer.Context,
    user: Annotated[str, typer.Argument(help="The user the token acts as.")],
    expires_in: Annotated[
        int | None, typer.Option("--expires-in", min=1, help="Days until it expires.")
    ] = None,
    workspace: WorkspaceOpt = None,
    as_user: AsOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Create a token; its secret is printed once and never stored."""
    with open_session(ctx, workspace, as_user) as session:
        token_id, secret = create_token(session, user, expires_in)
    if as_json:
        emit_json({"id": token_id, "user": user, "secret": secret})
        return
    out_console.print(f"Token {token_id} for {user} (shown once, keep it safe):", markup=False)
    out_console.print(secret, markup=False)


@token_app.command("list")
def token_list(
    ctx: typer.Context,
    workspace: WorkspaceOpt = None,
    as_user: AsOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """List tokens (never their secrets)."""
    with open_session(ctx, workspace, as_user) as session:
        tokens = list_tokens(session)
    if as_json:
        emit_json(tokens)
        return
    emit_table(
        ["id", "user", "state", "created_by", "created_at", "expires_at"],
        [
            (t["id"], t["user"], t["state"], t["created_by"], t["created_at"], t["expires_at"])
            for t in tokens
        ],
    )


@token_app.command("revoke")
def token_revoke(
    ctx: typer.Context,
    token_id: Annotated[str, typer.Argument(help="The token's id (from `token list`).")],
    workspace: WorkspaceOpt = None,
    as_user: AsOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Revoke a token: it stops authenticating at once."""
    with open_session(ctx, workspace, as_user) as session:
        token = revoke_token(session, token_id)
    if as_json:
        emit_json(token)
        return
    out_console.print(f"Revoked token {token_id}.", markup=False)
