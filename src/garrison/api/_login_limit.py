"""Failed logins counted per client address and window, so a flood cannot grow the audit log.

Each client address may fail ``login_failures_per_window`` times in a window of
``login_window_seconds`` (both in ``garrison.toml``). Each of those failures is audited as its
own ``login`` event, which names the client. Past the limit, further failures from that address
in the same window are refused with HTTP 429 and a ``Retry-After`` (seconds to the end of the
window), and are not audited one by one: they are counted, and **one aggregated ``login``
event per client and window** records the count and the reasons once the window is over -- at
the first login check after it, or when the server stops (:meth:`LoginLimiter.flush`).

A valid credential is never refused: the limiter counts failures only, so a flood from one
address locks out neither the users of any other address nor a valid token sent from the same
one. Windows are fixed (aligned on the epoch) and the same for every client, so rolling over
drops the whole table at once. At most :data:`MAX_CLIENTS` addresses are tracked per window;
failures from further addresses share one entry, :data:`OTHER_CLIENTS`, so memory stays bounded
whatever addresses a flood claims.

Fail closed: an individual failure's event is written before the 401 is returned, and an audit
write that fails makes the request fail (``AuditWriteError``). What a crash can lose is the
count of refused attempts in the current window -- attempts that were refused, not carried out.
"""

from __future__ import annotations

import math
import threading
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime

from pydantic import JsonValue

from garrison.core.clock import utc_now
from garrison.security.audit import AuditAction, format_time
from garrison.security.subjects import ANONYMOUS_SUBJECT_NAME
from garrison.store.tokens import AuthenticationFailed
from garrison.store.workspace import Workspace

__all__ = [
    "AGGREGATE_REASON",
    "MAX_CLIENTS",
    "OTHER_CLIENTS",
    "LoginLimiter",
    "TooManyLoginFailures",
    "client_address",
]

#: Distinct client addresses tracked per window; failures from more share :data:`OTHER_CLIENTS`.
MAX_CLIENTS = 10_000
#: The entry shared by the addresses past :data:`MAX_CLIENTS` in one window.
OTHER_CLIENTS = "(other addresses)"
#: The ``reason`` of an aggregated event.
AGGREGATE_REASON = "failed logins past the rate limit"


class TooManyLoginFailures(AuthenticationFailed):
    """This client address failed to log in too often in the current window (HTTP 429).

    ``retry_after`` is the whole number of seconds until the window ends.
    """

    code = "too-many-requests"

    def __init__(self, retry_after: int) -> None:
        super().__init__(AGGREGATE_REASON)
        self.message = (
            "Too many failed logins from this address; try again in "
            f"{retry_after} second{'s' if retry_after != 1 else ''}."
        )
        self.args = (self.message,)
        self.retry_after = retry_after


def client_address(request: object) -> str:
    """The client's address as the server sees it (``request.client.host``), or ``unknown``."""
    client = getattr(request, "client", None)
    host = getattr(client, "host", None)
    return host if isinstance(host, str) and host else "unknown"


@dataclass
class _Client:
    failures: int = 0
    refused: int = 0
    reasons: Counter[str] = field(default_factory=Counter)


@dataclass(frozen=True)
class _Aggregate:
    client: str
    refused: int
    reasons: dict[str, int]
    window_start: datetime
    window_seconds: int
    limit: int


class LoginLimiter:
    """Counts failed logins per client address and window for one server process.

    ``limit`` and ``window_seconds`` default to the workspace's ``login_failures_per_window``
    and ``login_window_seconds``, read at every check. Thread-safe; one instance is shared by
    the API and the web UI so both count against the same limit.
    """

    def __init__(self, *, limit: int | None = None, window_seconds: int | None = None) -> None:
        if limit is not None and limit < 1:
            raise ValueError("limit must be at least 1")
        if window_seconds is not None and window_seconds < 1:
            raise ValueError("window_seconds must be at least 1")
        self._limit = limit
        self._window_seconds = window_seconds
        self._lock = threading.Lock()
        self._window: int | None = None
        self._window_len = 0
        self._limit_in_window = 0
        self._clients: dict[str, _Client] = {}

    @contextmanager
    def attempt(self, workspace: Workspace, address: str) -> Iterator[None]:
        """Check credentials inside this block, with their own auditing turned off.

        An ``AuthenticationFailed`` raised inside is recorded against ``address`` -- audited
        (and re-raised) under the limit, counted and turned into :class:`TooManyLoginFailures`
        past it. Anything else passes through untouched.
        """
        self._write(workspace, self._roll(utc_now(), workspace))
        try:
            yield
        except TooManyLoginFailures:
            raise
        except AuthenticationFailed as exc:
            self.failed(workspace, address, exc)
            raise

    def failed(self, workspace: Workspace, address: str, exc: AuthenticationFailed) -> None:
        """Record one failed login from ``address``: audit it and return while under the limit;
        past it, count it and raise :class:`TooManyLoginFailures`."""
        now = utc_now()
        reason = exc.reason or "authentication failed"
        with self._lock:
            due = self._roll_locked(now, workspace)
            entry = self._entry(address)
            entry.failures += 1
            over = entry.failures > self._limit_in_window
            if over:
                entry.refused += 1
                entry.reasons[reason] += 1
            retry_after = self._seconds_left(now)
        self._write(workspace, due)
        if over:
            raise TooManyLoginFailures(retry_after) from exc
        workspace.audit.append(
            exc.actor,
            AuditAction.LOGIN,
            object_id=exc.object_id,
            decision="deny",
            reason=reason,
            details={"client": address},
        )

    def flush(self, workspace: Workspace) -> int:
        """Write the aggregated events of every window with refused attempts, the current one
        included (the server calls this when it stops); returns how many were written."""
        with self._lock:
            due = self._drain()
            self._window = None
        self._write(workspace, due)
        return len(due)

    # --- internals (lock held where named _locked) ------------------------------------------

    def _settings(self, workspace: Workspace) -> tuple[int, int]:
        config = workspace.config
        limit = self._limit if self._limit is not None else config.login_failures_per_window
        window = (
            self._window_seconds
            if self._window_seconds is not None
            else config.login_window_seconds
        )
        return limit, window

    def _roll(self, now: datetime, workspace: Workspace) -> list[_Aggregate]:
        with self._lock:
            return self._roll_locked(now, workspace)

    def _roll_locked(self, now: datetime, workspace: Workspace) -> list[_Aggregate]:
        """Move to the window holding ``now``; the aggregates of the window left behind."""
        limit, window = self._settings(workspace)
        index = math.floor(now.timestamp() / window)
        if self._window == index and self._window_len == window:
            return []
        due = self._drain()
        self._window, self._window_len, self._limit_in_window = index, window, limit
        return due

    def _drain(self) -> list[_Aggregate]:
        if self._window is None:
            self._clients.clear()
            return []
        start = datetime.fromtimestamp(self._window * self._window_len, UTC)
        due = [
            _Aggregate(
                client=address,
                refused=entry.refused,
                reasons=dict(sorted(entry.reasons.items())),
                window_start=start,
                window_seconds=self._window_len,
                limit=self._limit_in_window,
            )
            for address, entry in sorted(self._clients.items())
            if entry.refused
        ]
        self._clients.clear()
        return due

    def _entry(self, address: str) -> _Client:
        entry = self._clients.get(address)
        if entry is None:
            if len(self._clients) >= MAX_CLIENTS:
                address = OTHER_CLIENTS
                entry = self._clients.get(address)
            if entry is None:
                entry = self._clients[address] = _Client()
        return entry

    def _seconds_left(self, now: datetime) -> int:
        assert self._window is not None
        end = (self._window + 1) * self._window_len
        return max(1, math.ceil(end - now.timestamp()))

    def _write(self, workspace: Workspace, due: list[_Aggregate]) -> None:
        if not due:
            return
        events = []
        for agg in due:
            details: dict[str, JsonValue] = {
                "aggregated": True,
                "client": agg.client,
                "count": agg.refused,
                "reasons": dict(agg.reasons),
                "window_start": format_time(agg.window_start),
                "window_seconds": agg.window_seconds,
                "limit": agg.limit,
            }
            events.append(
                {
                    "action": AuditAction.LOGIN,
                    "decision": "deny",
                    "reason": AGGREGATE_REASON,
                    "details": details,
                }
            )
        workspace.audit.append_many(ANONYMOUS_SUBJECT_NAME, events)
