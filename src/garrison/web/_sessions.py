"""Browser sessions: server-side, in memory, with idle and absolute expiry and a CSRF token.

The cookie holds only a random session id; the server keeps the SHA-256 of that id, so a memory
dump of the store grants nothing. A session names a subject, the credential it signed in with
(a token id or a certificate DN) and the subject's access at sign-in. On every request the
subject is loaded from the catalog again and the session ends -- not merely narrows -- when the
token was revoked or expired, the certificate is no longer the user's, the user was disabled or
deleted, or their clearance, read-ins, citizenship, groups, grants or roles were lowered.
Restarting the server signs everyone out, which is the safe default for a single-process
server; sessions are never written to disk.

Times come from :func:`garrison.core.clock.utc_now`, so tests can move the clock.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import threading
from dataclasses import dataclass
from datetime import datetime, timedelta

from garrison.core.clock import utc_now
from garrison.security.subjects import Subject

__all__ = [
    "BrowserSession",
    "SessionStore",
    "WebSettings",
    "access_lowered",
    "new_token",
    "tokens_match",
]


@dataclass(frozen=True)
class WebSettings:
    """Settings of the web UI (``garrison serve --session-idle/--session-max``)."""

    #: A session ends after this long without a request.
    idle_timeout: timedelta = timedelta(hours=8)
    #: A session ends this long after sign-in, however active.
    absolute_timeout: timedelta = timedelta(hours=12)
    #: Results per search page.
    page_size: int = 10


@dataclass
class BrowserSession:
    """One signed-in browser: who, how, since when, and its CSRF token."""

    subject: str
    method: str  # "token" or "certificate"
    csrf: str
    created_at: datetime
    last_seen: datetime
    #: The token id (token sign-in) or the certificate DN (certificate sign-in).
    credential: str | None = None
    #: The subject as it was at sign-in: the session ends if its access is lowered since.
    baseline: Subject | None = None


def access_lowered(before: Subject, now: Subject) -> bool:
    """Does ``now`` hold less than ``before``: an authorization token or a role gone?"""
    return not (before.authorizations <= now.authorizations and before.roles <= now.roles)


def new_token() -> str:
    """A fresh random token (session id, CSRF token)."""
    return secrets.token_urlsafe(32)


def tokens_match(expected: str | None, given: str | None) -> bool:
    """Constant-time comparison; a missing side never matches."""
    if not expected or not given:
        return False
    return hmac.compare_digest(expected.encode(), given.encode())


def _key(session_id: str) -> str:
    return hashlib.sha256(session_id.encode()).hexdigest()


class SessionStore:
    """The live sessions of one server process."""

    def __init__(self, settings: WebSettings) -> None:
        self.settings = settings
        self._sessions: dict[str, BrowserSession] = {}
        self._lock = threading.Lock()

    def create(
        self,
        subject: str,
        method: str,
        *,
        credential: str | None = None,
        baseline: Subject | None = None,
    ) -> tuple[str, BrowserSession]:
        """Start a session for ``subject``; returns ``(session id for the cookie, session)``."""
        now = utc_now()
        session_id = new_token()
        session = BrowserSession(
            subject, method, new_token(), now, now, credential=credential, baseline=baseline
        )
        with self._lock:
            self._prune(now)
            self._sessions[_key(session_id)] = session
        return session_id, session

    def get(self, session_id: str | None) -> BrowserSession | None:
        """The live session behind a cookie value (touching it), or None if absent or expired."""
        if not session_id:
            return None
        now = utc_now()
        key = _key(session_id)
        with self._lock:
            session = self._sessions.get(key)
            if session is None:
                return None
            if self._expired(session, now):
                del self._sessions[key]
                return None
            session.last_seen = now
            return session

    def end(self, session_id: str | None) -> BrowserSession | None:
        """Sign a session out; returns it (None if there was none)."""
        if not session_id:
            return None
        with self._lock:
            return self._sessions.pop(_key(session_id), None)

    def __len__(self) -> int:
        with self._lock:
            return len(self._sessions)

    def _expired(self, session: BrowserSession, now: datetime) -> bool:
        return (
            now - session.last_seen >= self.settings.idle_timeout
            or now - session.created_at >= self.settings.absolute_timeout
        )

    def _prune(self, now: datetime) -> None:
        for key in [k for k, s in self._sessions.items() if self._expired(s, now)]:
            del self._sessions[key]
