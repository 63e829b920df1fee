"""Request counts and timings: the server's only record of traffic besides the audit log.

The server writes no access log: a path holds document and chunk ids, a query string holds what
someone searched for, and both are marked data that must not reach a console or a log file.
:class:`HttpMetrics` (fed by :class:`MetricsMiddleware`) keeps what operating the server
needs -- how many requests, how they ended (by status class) and how long they took -- and
writes a summary line on the
``garrison.http`` logger at most once per interval, and when the server stops. It never sees
the path, the query, a header or a body: the ASGI scope is not read at all beyond its type.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Awaitable, Callable, MutableMapping
from dataclasses import dataclass, field
from typing import Any

__all__ = ["HttpMetrics", "MetricsMiddleware", "MetricsSnapshot"]

_log = logging.getLogger("garrison.http")

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

_CLASSES = ("2xx", "3xx", "4xx", "5xx")


@dataclass
class MetricsSnapshot:
    """Totals since the last summary: requests by status class and their durations."""

    requests: int = 0
    by_status: dict[str, int] = field(default_factory=lambda: dict.fromkeys(_CLASSES, 0))
    total_ms: float = 0.0
    max_ms: float = 0.0

    def line(self) -> str:
        """One summary line: counts and timings, nothing about what was asked for."""
        mean = self.total_ms / self.requests if self.requests else 0.0
        statuses = ", ".join(f"{k} {v}" for k, v in self.by_status.items() if v)
        return (
            f"http.requests count={self.requests} ({statuses or 'none'}) "
            f"mean_ms={mean:.1f} max_ms={self.max_ms:.1f}"
        )


class HttpMetrics:
    """Counts and timings of the requests one server answered; see the module docstring."""

    def __init__(self, *, interval_s: float = 60.0) -> None:
        self.interval_s = interval_s
        self._lock = threading.Lock()
        self._current = MetricsSnapshot()
        self._since = time.monotonic()
        #: Every request since the server started (not reset by a summary).
        self.total = 0

    def record(self, status: int, elapsed_ms: float) -> None:
        """Count one request; write the summary when the interval has passed."""
        key = f"{min(max(status // 100, 2), 5)}xx"
        with self._lock:
            snap = self._current
            snap.requests += 1
            snap.by_status[key] += 1
            snap.total_ms += elapsed_ms
            snap.max_ms = max(snap.max_ms, elapsed_ms)
            self.total += 1
            due = time.monotonic() - self._since >= self.interval_s
        if due:
            self.flush()

    def flush(self) -> MetricsSnapshot:
        """Write (and reset) the summary since the last one; returns what it wrote."""
        with self._lock:
            snap, self._current = self._current, MetricsSnapshot()
            self._since = time.monotonic()
        if snap.requests:
            _log.info(snap.line())
        return snap


class MetricsMiddleware:
    """ASGI middleware feeding :class:`HttpMetrics`: a status and a duration per request."""

    def __init__(self, app: ASGIApp, metrics: HttpMetrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.monotonic()
        status = 500

        async def send_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message.get("status", 500))
            await send(message)

        try:
            await self.app(scope, receive, send_status)
        finally:
            self.metrics.record(status, (time.monotonic() - started) * 1000)
