"""The one place Garrison reads the time, so tests can pin it."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

__all__ = ["set_clock", "utc_now"]

_clock: Callable[[], datetime] = lambda: datetime.now(UTC)  # noqa: E731


def utc_now() -> datetime:
    """Return the current time as an aware UTC datetime."""
    return _clock()


def set_clock(clock: Callable[[], datetime] | None) -> None:
    """Replace the clock (``None`` restores the real one); for tests and replays."""
    global _clock
    _clock = clock if clock is not None else (lambda: datetime.now(UTC))
