"""Plumbing shared by every page: who is signed in, CSRF, rendering with the banner, errors.

A page route asks for a :class:`Viewer` (the browser session plus a library session as that
subject) and renders through :meth:`Ui.render`, passing the :class:`PageMarkings` it filled
while building the context. The banner is drawn from that join, never from a default.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Annotated, Any
from urllib.parse import quote

from fastapi import Depends, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from jinja2 import Environment, PackageLoader, select_autoescape

from garrison.api._auth import CLIENT_DN_KEY
from garrison.api._login_limit import LoginLimiter
from garrison.core.errors import CsrfFailed, LoginRequired, NotFound, NotPermitted
from garrison.security.audit import AuditAction
from garrison.security.policy import Action, permits
from garrison.security.subjects import Role, Subject
from garrison.store.session import Session
from garrison.store.tokens import token_problem
from garrison.store.workspace import Workspace
from garrison.web._banner import PageMarkings
from garrison.web._sessions import (
    BrowserSession,
    SessionStore,
    WebSettings,
    access_lowered,
    tokens_match,
)

__all__ = [
    "COOKIE",
    "PREFIX",
    "SIGNED_OUT_COOKIE",
    "CsrfFailed",
    "LoginRequired",
    "Ui",
    "Viewer",
    "ViewerDep",
    "get_ui",
    "session_problem",
]

#: Where the UI is mounted in the server's URL space.
PREFIX = "/ui"
#: The session cookie (its value is the random session id).
COOKIE = "garrison_session"
#: Set on sign-out of a certificate session so the certificate does not sign straight back in.
SIGNED_OUT_COOKIE = "garrison_signed_out"
#: The double-submit cookie that protects the sign-in form (there is no session yet).
LOGIN_CSRF_COOKIE = "garrison_login_csrf"


@dataclass
class Viewer:
    """The signed-in browser and a library session acting as its subject."""

    browser: BrowserSession
    session: Session

    @property
    def name(self) -> str:
        return self.session.subject.name

    def may(self, action: Action) -> bool:
        return bool(permits(self.session.subject, action))

    @property
    def is_admin(self) -> bool:
        return self.session.subject.has_role(Role.ADMIN)

    @property
    def is_steward(self) -> bool:
        subject = self.session.subject
        return subject.has_role(Role.STEWARD) or subject.has_role(Role.ADMIN)


class Ui:
    """The UI's state: settings, live sessions, templates, and the workspace the API opened."""

    def __init__(
        self, workspace_holder: Any, settings: WebSettings, limiter: LoginLimiter | None = None
    ) -> None:
        self._holder = workspace_holder
        self.settings = settings
        #: Failed sign-ins count against the same per-address limit as failed API logins.
        self.limiter = limiter or LoginLimiter()
        self.sessions = SessionStore(settings)
        self.env = Environment(
            loader=PackageLoader("garrison.web", "templates"),
            autoescape=select_autoescape(["html"]),
            trim_blocks=True,
            lstrip_blocks=True,
        )
        self.env.globals["prefix"] = PREFIX
        self.env.filters["urlquote"] = lambda value: quote(str(value), safe="")

    def workspace(self) -> Workspace:
        workspace: Workspace = self._holder.get()
        return workspace

    # -- rendering ------------------------------------------------------------------------

    def render(
        self,
        request: Request,
        template: str,
        context: Mapping[str, Any],
        page: PageMarkings,
        *,
        status: int = 200,
        viewer: Viewer | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> HTMLResponse:
        """The page ``template`` with the banner of everything recorded in ``page``."""
        marking = page.marking()
        style = page.style()
        viewer = viewer or getattr(request.state, "viewer", None)
        html = self.env.get_template(template).render(
            **context,
            banner=marking.banner(),
            banner_class=style.css_class,
            viewer=viewer,
            csrf=viewer.browser.csrf if viewer is not None else None,
            path=request.url.path,
        )
        out = HTMLResponse(html, status_code=status, headers=dict(headers or {}))
        out.headers["X-Garrison-Marking"] = marking.banner()
        return out

    def error_page(self, request: Request, status: int, title: str, message: str) -> HTMLResponse:
        """An UNCLASSIFIED error page (it shows no marked content)."""
        return self.render(
            request,
            "error.html",
            {"title": title, "message": message, "status": status},
            PageMarkings(),
            status=status,
        )

    # -- forms ----------------------------------------------------------------------------

    def check_csrf(self, viewer: Viewer, given: str | None) -> None:
        """Raise CsrfFailed (audited) unless ``given`` is this session's CSRF token."""
        if not tokens_match(viewer.browser.csrf, given):
            viewer.session.audit(
                AuditAction.WEB_CSRF, decision="deny", reason="missing or wrong CSRF token"
            )
            raise CsrfFailed()


def get_ui(request: Request) -> Ui:
    ui: Ui = request.app.state.ui
    return ui


def current_viewer(request: Request) -> Viewer:
    """The dependency of every signed-in page: LoginRequired when there is no live session."""
    ui = get_ui(request)
    cookie = request.cookies.get(COOKIE)
    browser = ui.sessions.get(cookie)
    if browser is None:
        raise LoginRequired()
    workspace = ui.workspace()
    try:
        # The subject is loaded fresh: a disabled or deleted user is refused (and audited).
        session = workspace.session(browser.subject)
    except (NotFound, NotPermitted):
        ui.sessions.end(cookie)
        raise LoginRequired() from None
    reason = session_problem(workspace, browser, session.subject, client_dn(request))
    if reason is not None:
        ui.sessions.end(cookie)
        session.audit(AuditAction.WEB_SESSION_END, decision="deny", reason=reason)
        raise LoginRequired()
    viewer = Viewer(browser, session)
    request.state.viewer = viewer
    return viewer


def session_problem(
    workspace: Workspace, browser: BrowserSession, subject: Subject, dn: str | None
) -> str | None:
    """Why a live browser session must end now (None while it may go on).

    Asked on every request: the credential it signed in with still authenticates this user,
    the user is enabled, and their access is not lower than at sign-in.
    """
    if subject.disabled:
        return "subject is disabled"
    if subject.name != browser.subject:
        return "subject changed"
    if browser.method == "token":
        if browser.credential is None:
            return "session has no token"
        problem = token_problem(workspace, browser.credential, subject.name)
        if problem is not None:
            return problem
    elif browser.method == "certificate":
        if browser.credential is None or subject.dn != browser.credential:
            return "certificate no longer registered to the subject"
        if dn is not None and dn != browser.credential:
            return "request made with another certificate"
    else:
        return f"unknown sign-in method {browser.method!r}"
    if browser.baseline is None or access_lowered(browser.baseline, subject):
        return "subject's access was lowered since sign-in"
    return None


ViewerDep = Annotated[Viewer, Depends(current_viewer)]


def redirect(url: str) -> RedirectResponse:
    """A 303 See Other (the answer to a POST, and to a page that moved)."""
    return RedirectResponse(url, status_code=303)


def login_redirect(request: Request) -> Response:
    """Send the browser to the sign-in page, remembering where it was going."""
    target = request.url.path
    if request.url.query:
        target += "?" + request.url.query
    url = f"{PREFIX}/login"
    if request.method == "GET" and target.startswith(PREFIX + "/"):
        url += "?next=" + quote(target, safe="")
    if request.headers.get("hx-request"):
        return Response(status_code=204, headers={"HX-Redirect": url})
    return redirect(url)


def client_dn(request: Request) -> str | None:
    """The verified client certificate's DN, when served with mutual TLS."""
    dn = request.scope.get(CLIENT_DN_KEY)
    return dn if isinstance(dn, str) and dn else None


def safe_next(value: str | None) -> str:
    """A post-sign-in target inside the UI (never another site)."""
    if value and value.startswith(PREFIX + "/") and not value.startswith("//"):
        return value
    return f"{PREFIX}/search"
