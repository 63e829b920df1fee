"""The web UI application: mounted under ``/ui`` beside the REST API, in the same process.

:func:`create_app` builds the API (:func:`garrison.api.create_app`) and mounts the UI on it, so
both share one workspace (one audit log writer). The UI is its own ASGI sub-application with its
own error pages (HTML, not the API's JSON) and security headers:

- ``Content-Security-Policy``: everything from this origin only, no inline script or style,
  no framing, forms post only here;
- ``X-Frame-Options: DENY``, ``Referrer-Policy: no-referrer``, ``X-Content-Type-Options:
  nosniff``; ``Cache-Control: no-store`` on every page (static files may be cached).
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Mapping, MutableMapping
from pathlib import Path
from typing import Annotated, Any

from fastapi import FastAPI, Form, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, Response
from fastapi.staticfiles import StaticFiles
from starlette.exceptions import HTTPException as StarletteHTTPException

from garrison.api import create_app as create_api_app
from garrison.api._login_limit import LoginLimiter, TooManyLoginFailures, client_address
from garrison.core.errors import (
    EnvironmentProblem,
    GarrisonError,
    InvalidInput,
    NotFound,
    NotPermitted,
)
from garrison.security.audit import AuditAction
from garrison.store.tokens import AuthenticationFailed, authenticate, subject_for_dn, token_id_of
from garrison.web import _admin, _ask, _datasets, _eval, _label, _models, _pages
from garrison.web._banner import PageMarkings
from garrison.web._core import (
    COOKIE,
    LOGIN_CSRF_COOKIE,
    PREFIX,
    SIGNED_OUT_COOKIE,
    CsrfFailed,
    LoginRequired,
    Ui,
    client_dn,
    get_ui,
    login_redirect,
    redirect,
    safe_next,
)
from garrison.web._sessions import WebSettings, new_token, tokens_match

__all__ = ["CSP", "build_ui", "create_app", "mount_ui"]

_log = logging.getLogger("garrison.web")

#: The audited reason of a sign-in form posted without its CSRF token.
_NO_CSRF = "web sign-in form without CSRF token"

CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "font-src 'self'; connect-src 'self'; object-src 'none'; base-uri 'none'; "
    "form-action 'self'; frame-ancestors 'none'"
)
_HEADERS = [
    (b"content-security-policy", CSP.encode()),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"no-referrer"),
    (b"x-content-type-options", b"nosniff"),
    (b"cross-origin-opener-policy", b"same-origin"),
    (b"permissions-policy", b"camera=(), microphone=(), geolocation=()"),
]

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


class SecurityHeaders:
    """ASGI middleware adding the security headers to every UI response."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path = str(scope.get("path", ""))
        static = path.startswith(f"{PREFIX}/static/") or path.startswith("/static/")

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = [
                    (k, v)
                    for k, v in message.get("headers", [])
                    if k.lower() not in {h for h, _ in _HEADERS} and k.lower() != b"cache-control"
                ]
                headers += _HEADERS
                headers.append(
                    (b"cache-control", b"public, max-age=3600" if static else b"no-store")
                )
                message["headers"] = headers
            await send(message)

        await self.app(scope, receive, send_with_headers)


def _cookie_args(request: Request) -> dict[str, Any]:
    return {
        "httponly": True,
        "samesite": "strict",
        "secure": request.url.scheme == "https",
        "path": PREFIX,
    }


def _start_session(
    request: Request, subject: str, method: str, credential: str, target: str
) -> Response:
    """Sign ``subject`` in; ``credential`` is the token id or the certificate DN it used."""
    ui = get_ui(request)
    workspace = ui.workspace()
    try:
        session = workspace.session(subject)  # refuses (and audits) a disabled subject
    except NotFound:
        raise AuthenticationFailed() from None
    session_id, _browser = ui.sessions.create(
        subject, method, credential=credential, baseline=session.subject
    )
    session.audit(AuditAction.WEB_LOGIN, details={"method": method})
    out = redirect(target)
    out.set_cookie(COOKIE, session_id, **_cookie_args(request))
    out.delete_cookie(SIGNED_OUT_COOKIE, path=PREFIX)
    out.delete_cookie(LOGIN_CSRF_COOKIE, path=PREFIX)
    return out


def _login_page(
    request: Request,
    *,
    status: int = 200,
    error: str | None = None,
    next_url: str = "",
    headers: Mapping[str, str] | None = None,
) -> Response:
    ui = get_ui(request)
    token = new_token()
    out = ui.render(
        request,
        "login.html",
        {
            "error": error,
            "next": safe_next(next_url),
            "login_csrf": token,
            "dn": client_dn(request),
            "idle_hours": ui.settings.idle_timeout.total_seconds() / 3600,
        },
        PageMarkings(),
        status=status,
        headers=headers,
    )
    out.set_cookie(LOGIN_CSRF_COOKIE, token, max_age=3600, **_cookie_args(request))
    return out


def _too_many(request: Request, exc: TooManyLoginFailures, next_url: str = "") -> Response:
    return _login_page(
        request,
        status=429,
        error=exc.message,
        next_url=next_url,
        headers={"Retry-After": str(exc.retry_after)},
    )


def _auth_routes(app: FastAPI) -> None:
    @app.get("/", include_in_schema=False)
    def home() -> Response:
        return redirect(f"{PREFIX}/search")

    @app.get("/login", response_class=HTMLResponse)
    def login_form(request: Request, next: Annotated[str, Query(max_length=2000)] = "") -> Response:
        ui = get_ui(request)
        if ui.sessions.get(request.cookies.get(COOKIE)) is not None:
            return redirect(safe_next(next))
        dn = client_dn(request)
        if dn is not None and not request.cookies.get(SIGNED_OUT_COOKIE):
            # Mutual TLS: the verified certificate is the credential; no form to fill in.
            workspace = ui.workspace()
            try:
                with ui.limiter.attempt(workspace, client_address(request)):
                    subject = subject_for_dn(workspace, dn, audit=False)
                return _start_session(request, subject, "certificate", dn, safe_next(next))
            except TooManyLoginFailures as exc:
                return _too_many(request, exc, next)
            except AuthenticationFailed:
                return _login_page(
                    request,
                    status=401,
                    error="Your certificate is not registered to a Garrison user.",
                    next_url=next,
                )
        return _login_page(request, next_url=next)

    @app.post("/login", response_class=HTMLResponse)
    def login(
        request: Request,
        token: Annotated[str, Form(max_length=200)] = "",
        csrf: Annotated[str, Form(max_length=200)] = "",
        next: Annotated[str, Form(max_length=2000)] = "",
    ) -> Response:
        ui = get_ui(request)
        workspace = ui.workspace()
        try:
            # Every failure, a missing CSRF token included, counts against the client's limit.
            with ui.limiter.attempt(workspace, client_address(request)):
                if not tokens_match(request.cookies.get(LOGIN_CSRF_COOKIE), csrf):
                    raise AuthenticationFailed(_NO_CSRF)
                secret = token.strip()
                if not secret:
                    raise AuthenticationFailed("no credentials")
                subject = authenticate(workspace, secret, audit=False)
        except TooManyLoginFailures as exc:
            return _too_many(request, exc, next)
        except AuthenticationFailed as exc:
            if exc.reason == _NO_CSRF:
                return _login_page(
                    request,
                    status=403,
                    error="The sign-in form expired; please try again.",
                    next_url=next,
                )
            return _login_page(
                request,
                status=401,
                error="Sign-in failed: the token is unknown, expired or revoked.",
                next_url=next,
            )
        token_id = token_id_of(secret)
        assert token_id is not None  # authenticate() accepted its form
        try:
            return _start_session(request, subject, "token", token_id, safe_next(next))
        except AuthenticationFailed:
            return _login_page(
                request,
                status=401,
                error="Sign-in failed: the token is unknown, expired or revoked.",
                next_url=next,
            )

    @app.post("/login/certificate", response_class=HTMLResponse)
    def login_certificate(
        request: Request,
        csrf: Annotated[str, Form(max_length=200)] = "",
        next: Annotated[str, Form(max_length=2000)] = "",
    ) -> Response:
        ui = get_ui(request)
        dn = client_dn(request)
        if dn is None or not tokens_match(request.cookies.get(LOGIN_CSRF_COOKIE), csrf):
            return _login_page(request, status=403, error="Certificate sign-in is not available.")
        workspace = ui.workspace()
        try:
            with ui.limiter.attempt(workspace, client_address(request)):
                subject = subject_for_dn(workspace, dn, audit=False)
        except TooManyLoginFailures as exc:
            return _too_many(request, exc)
        except AuthenticationFailed:
            return _login_page(
                request, status=401, error="Your certificate is not registered to a Garrison user."
            )
        return _start_session(request, subject, "certificate", dn, safe_next(next))

    @app.post("/logout", response_class=HTMLResponse)
    def logout(request: Request, csrf: Annotated[str, Form(max_length=200)] = "") -> Response:
        ui = get_ui(request)
        cookie = request.cookies.get(COOKIE)
        browser = ui.sessions.get(cookie)
        if browser is None:
            return redirect(f"{PREFIX}/login")
        if not tokens_match(browser.csrf, csrf):
            raise CsrfFailed()
        ui.sessions.end(cookie)
        ui.workspace().audit.append(browser.subject, AuditAction.WEB_LOGOUT, details={})
        out = _login_page(request)
        out.status_code = 200
        out.delete_cookie(COOKIE, path=PREFIX)
        if browser.method == "certificate":
            out.set_cookie(SIGNED_OUT_COOKIE, "1", **_cookie_args(request))
        return out


def _error_handlers(app: FastAPI) -> None:
    def on_garrison_error(request: Request, exc: Exception) -> Response:
        ui = get_ui(request)
        if isinstance(exc, AuthenticationFailed):
            return login_redirect(request)
        if isinstance(exc, NotFound):
            # One page for "missing" and "not yours to read": it repeats nothing asked for.
            return ui.error_page(
                request, 404, "Not found", "There is nothing here that you can open."
            )
        if isinstance(exc, NotPermitted):
            return ui.error_page(
                request,
                403,
                "Not permitted",
                "Your roles do not permit this page. Ask an administrator if you need it.",
            )
        if isinstance(exc, InvalidInput):
            return ui.error_page(request, 400, "That request could not be used", exc.message)
        if isinstance(exc, EnvironmentProblem):
            return ui.error_page(request, 503, "Unavailable", exc.message)
        return unexpected(request, exc)

    def on_login_required(request: Request, _exc: Exception) -> Response:
        return login_redirect(request)

    def on_csrf(request: Request, _exc: Exception) -> Response:
        return get_ui(request).error_page(
            request,
            403,
            "The form expired",
            "The form was not sent by this session. Go back, reload the page and try again.",
        )

    def on_validation(request: Request, _exc: Exception) -> Response:
        return get_ui(request).error_page(
            request, 400, "That request could not be used", "A field is missing or too long."
        )

    def on_http(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, StarletteHTTPException)
        if exc.status_code == 404:
            return get_ui(request).error_page(
                request, 404, "Not found", "There is nothing here that you can open."
            )
        return get_ui(request).error_page(
            request, exc.status_code, "Request failed", f"HTTP status {exc.status_code}."
        )

    def unexpected(request: Request, exc: Exception) -> Response:
        _log.error("unexpected error in the web UI", exc_info=exc)
        return get_ui(request).error_page(
            request,
            500,
            "Something went wrong",
            "The server met an unexpected error; its administrator can find it in the server log.",
        )

    app.add_exception_handler(GarrisonError, on_garrison_error)
    app.add_exception_handler(LoginRequired, on_login_required)
    app.add_exception_handler(CsrfFailed, on_csrf)
    app.add_exception_handler(RequestValidationError, on_validation)
    app.add_exception_handler(StarletteHTTPException, on_http)
    app.add_exception_handler(Exception, unexpected)


def build_ui(
    workspace_holder: Any,
    settings: WebSettings | None = None,
    limiter: LoginLimiter | None = None,
) -> FastAPI:
    """The UI sub-application over a workspace holder (anything with ``get() -> Workspace``);
    ``limiter`` is the server's login limiter (the UI makes its own without one)."""
    ui_app = FastAPI(openapi_url=None, docs_url=None, redoc_url=None)
    ui_app.state.ui = Ui(workspace_holder, settings or WebSettings(), limiter)
    ui_app.mount("/static", StaticFiles(packages=[("garrison.web", "static")]), name="static")
    _auth_routes(ui_app)
    _pages.register(ui_app)
    _models.register(ui_app)
    _datasets.register(ui_app)
    _ask.register(ui_app)
    _eval.register(ui_app)
    _label.register(ui_app)
    _admin.register(ui_app)
    _error_handlers(ui_app)
    ui_app.add_middleware(SecurityHeaders)
    return ui_app


def mount_ui(app: FastAPI, settings: WebSettings | None = None) -> None:
    """Mount the UI at ``/ui`` on an API app from :func:`garrison.api.create_app`; ``/`` and
    ``/ui`` redirect to it."""
    ui_app = build_ui(app.state.workspace, settings, getattr(app.state, "login_limiter", None))

    @app.get("/", include_in_schema=False)
    def root() -> Response:
        return redirect(f"{PREFIX}/")

    @app.get(PREFIX, include_in_schema=False)
    def ui_root() -> Response:
        return redirect(f"{PREFIX}/")

    app.mount(PREFIX, ui_app, name="ui")


def create_app(workspace_path: Path | str, settings: WebSettings | None = None) -> FastAPI:
    """The REST API (``/v1``) and the web UI (``/ui``) over the workspace at ``workspace_path``."""
    app = create_api_app(workspace_path)
    mount_ui(app, settings)
    return app
