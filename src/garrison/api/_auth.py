"""Who is calling: a bearer token or a verified client certificate, resolved per request.

Failed logins are rate limited per client address (:mod:`garrison.api._login_limit`).

The subject is loaded fresh from the catalog on every request, so a change to its clearance,
roles or status applies to the very next request.
"""

from __future__ import annotations

from fastapi import Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from garrison.api._login_limit import LoginLimiter, client_address
from garrison.core.errors import NotFound
from garrison.store.session import Session
from garrison.store.tokens import AuthenticationFailed, authenticate, subject_for_dn
from garrison.store.workspace import Workspace

__all__ = ["CLIENT_DN_KEY", "bearer_scheme", "login_limiter", "session_for"]

#: Where the mutual-TLS server layer puts the verified client certificate's subject DN.
CLIENT_DN_KEY = "garrison.client_dn"

#: Documents the bearer scheme in OpenAPI; the header itself is checked in :func:`session_for`.
bearer_scheme = HTTPBearer(auto_error=False, description="An API token: `garrison token create`.")


def _subject_name(workspace: Workspace, request: Request) -> str:
    # Failures are raised unaudited: the login limiter records them (see session_for).
    header = request.headers.get("authorization")
    if header is not None:
        scheme, _, secret = header.strip().partition(" ")
        if scheme.lower() != "bearer" or not secret.strip():
            raise AuthenticationFailed("malformed Authorization header")
        return authenticate(workspace, secret.strip(), audit=False)
    dn = request.scope.get(CLIENT_DN_KEY)
    if isinstance(dn, str) and dn:
        return subject_for_dn(workspace, dn, audit=False)
    raise AuthenticationFailed("no credentials")


def login_limiter(request: Request) -> LoginLimiter:
    """The server's one login limiter (made with the app; a bare app gets its own)."""
    state = request.app.state
    limiter = getattr(state, "login_limiter", None)
    if not isinstance(limiter, LoginLimiter):
        limiter = state.login_limiter = LoginLimiter()
    return limiter


def session_for(
    workspace: Workspace,
    request: Request,
    _credentials: HTTPAuthorizationCredentials | None = None,
) -> Session:
    """A session acting as the request's authenticated subject; AuthenticationFailed if none.

    Every failure goes through the login limiter: audited while the client address is under
    its limit, refused with :class:`TooManyLoginFailures` (HTTP 429) and counted past it.
    """
    with login_limiter(request).attempt(workspace, client_address(request)):
        name = _subject_name(workspace, request)
    try:
        # Loads the subject row now; a disabled or deleted subject is audited and refused.
        return workspace.session(name)
    except NotFound:
        raise AuthenticationFailed() from None
