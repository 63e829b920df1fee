"""Who is calling: a bearer token or a verified client certificate, resolved per request.

The subject is loaded fresh from the catalog on every request, so a change to its clearance,
roles or status applies to the very next request.
"""

from __future__ import annotations

from fastapi import Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from garrison.core.errors import NotFound
from garrison.security.audit import AuditAction
from garrison.security.subjects import ANONYMOUS_SUBJECT_NAME
from garrison.store.session import Session
from garrison.store.tokens import AuthenticationFailed, authenticate, subject_for_dn
from garrison.store.workspace import Workspace

__all__ = ["CLIENT_DN_KEY", "bearer_scheme", "session_for"]

#: Where the mutual-TLS server layer puts the verified client certificate's subject DN.
CLIENT_DN_KEY = "garrison.client_dn"

#: Documents the bearer scheme in OpenAPI; the header itself is checked in :func:`session_for`.
bearer_scheme = HTTPBearer(auto_error=False, description="An API token: `garrison token create`.")


def _subject_name(workspace: Workspace, request: Request) -> str:
    header = request.headers.get("authorization")
    if header is not None:
        scheme, _, secret = header.strip().partition(" ")
        if scheme.lower() != "bearer" or not secret.strip():
            workspace.audit.append(
                ANONYMOUS_SUBJECT_NAME,
                AuditAction.LOGIN,
                decision="deny",
                reason="malformed Authorization header",
            )
            raise AuthenticationFailed()
        return authenticate(workspace, secret.strip())
    dn = request.scope.get(CLIENT_DN_KEY)
    if isinstance(dn, str) and dn:
        return subject_for_dn(workspace, dn)
    workspace.audit.append(
        ANONYMOUS_SUBJECT_NAME, AuditAction.LOGIN, decision="deny", reason="no credentials"
    )
    raise AuthenticationFailed()


def session_for(
    workspace: Workspace,
    request: Request,
    _credentials: HTTPAuthorizationCredentials | None = None,
) -> Session:
    """A session acting as the request's authenticated subject; AuthenticationFailed if none."""
    name = _subject_name(workspace, request)
    try:
        # Loads the subject row now; a disabled or deleted subject is audited and refused.
        return workspace.session(name)
    except NotFound:
        raise AuthenticationFailed() from None
