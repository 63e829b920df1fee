"""Admin pages: the audit log, users and API tokens.

The library enforces the roles (``MANAGE_USERS``, ``MANAGE_TOKENS``, ``READ_AUDIT`` and a
marking that dominates system high for the audit log) and audits each denial; a refusal renders
the UI's 403 page. A created token's secret is shown once, on the page answering the POST, and
never stored or shown again.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import FastAPI, Form, Query, Request
from fastapi.responses import HTMLResponse, Response

from garrison.security.audit import AuditAction
from garrison.store.tokens import create_token, list_tokens, revoke_token
from garrison.web._banner import PageMarkings
from garrison.web._core import PREFIX, Viewer, ViewerDep, get_ui, redirect

__all__ = ["register"]

#: How many of the newest audit events the filters search.
AUDIT_WINDOW = 5000
#: How many matching events one page shows.
AUDIT_SHOWN = 200


def _users_page(
    request: Request,
    viewer: Viewer,
    *,
    created: dict[str, str] | None = None,
    error: str | None = None,
    status: int = 200,
) -> Response:
    session = viewer.session
    users = [u.to_dict() for u in session.list_users()]
    session.audit(AuditAction.USER_LIST, details={"count": len(users)})
    tokens = list_tokens(session)
    context = {
        "users": users,
        "tokens": tokens,
        "created": created,
        "error": error,
        "user_names": [u["name"] for u in users if not u["disabled"]],
    }
    # Users and tokens carry no marking of their own: the page is UNCLASSIFIED.
    return get_ui(request).render(
        request, "users.html", context, PageMarkings(session), status=status
    )


def register(app: FastAPI) -> None:
    """Add the admin pages to the UI app."""

    @app.get("/audit", response_class=HTMLResponse)
    def audit(
        request: Request,
        viewer: ViewerDep,
        actor: Annotated[str, Query(max_length=200)] = "",
        action: Annotated[str, Query(max_length=200)] = "",
        decision: Annotated[str, Query(pattern="^(allow|deny|error)?$")] = "",
    ) -> Response:
        session = viewer.session
        events = session.audit_tail(AUDIT_WINDOW)  # NotPermitted unless admin at system high
        page = PageMarkings(session)
        # The audit log is marked at system high, whatever its events name.
        page.add(session.workspace.system_high)
        chosen = [
            e
            for e in reversed(events)
            if (not actor or e.actor == actor.strip())
            and (not action or e.action.startswith(action.strip()))
            and (not decision or e.decision == decision)
        ][:AUDIT_SHOWN]
        context = {
            "events": [e.model_dump(mode="json") for e in chosen],
            "actor": actor,
            "action": action,
            "decision": decision,
            "shown": AUDIT_SHOWN,
        }
        return get_ui(request).render(request, "audit.html", context, page)

    @app.get("/users", response_class=HTMLResponse)
    def users(request: Request, viewer: ViewerDep) -> Response:
        return _users_page(request, viewer)

    @app.post("/tokens", response_class=HTMLResponse)
    def token_create(
        request: Request,
        viewer: ViewerDep,
        user: Annotated[str, Form(max_length=200)],
        expires_in: Annotated[int | None, Form(ge=1, le=3650)] = None,
        csrf: Annotated[str, Form(max_length=200)] = "",
    ) -> Response:
        get_ui(request).check_csrf(viewer, csrf)
        token_id, secret = create_token(viewer.session, user, expires_in)  # audited
        created = {"id": token_id, "user": user, "secret": secret}
        return _users_page(request, viewer, created=created)

    @app.post("/tokens/{token_id}/revoke", response_class=HTMLResponse)
    def token_revoke(
        request: Request,
        viewer: ViewerDep,
        token_id: str,
        csrf: Annotated[str, Form(max_length=200)] = "",
    ) -> Response:
        get_ui(request).check_csrf(viewer, csrf)
        revoke_token(viewer.session, token_id[:64])  # audited
        return redirect(f"{PREFIX}/users")
