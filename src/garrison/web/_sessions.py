"""Browser sessions: server-side, in memory, with idle and absolute expiry and a CSRF token.

The cookie holds only a random session id; the server keeps the SHA-256 of that id, so a memory
dump of the store grants nothing. A session names a subject; the subject itself is loaded from
the catalog on every request (as the API does), so a disabled user or a changed clearance
applies at once. Restarting the server signs everyone out, which is the safe default for a
single-process server; sessions are never written to disk.

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

__all__ = ["BrowserSession", "SessionStore", "WebSettings", "new_token", "tokens_match"]


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

    def create(self, subject: str, method: str) -> tuple[str, BrowserSession]:
        """Start a session for ``subject``; returns ``(session id for the cookie, session)``."""
        now = utc_now()
        session_id = new_token()
        session = BrowserSession(subject, method, new_token(), now, now)
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
