"""The marking of a response: the join of every marking in what it contains."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from fastapi.responses import JSONResponse

from garrison.security.markings import Marking, join
from garrison.store.session import Session

__all__ = ["MARKING_HEADER", "marked", "marked_list", "markings_in"]

MARKING_HEADER = "X-Garrison-Marking"


def markings_in(data: Any) -> list[str]:
    """Every marking banner under a ``marking`` key anywhere in ``data`` (null ones skipped)."""
    found: list[str] = []
    if isinstance(data, dict):
        for key, value in data.items():
            if key == "marking" and isinstance(value, str):
                found.append(value)
            else:
                found.extend(markings_in(value))
    elif isinstance(data, list):
        for value in data:
            found.extend(markings_in(value))
    return found


def _join(session: Session, banners: Iterable[str]) -> Marking:
    return join(*(session.parse_marking(b) for b in set(banners)))


def marked(session: Session, data: dict[str, Any], *, extra: Iterable[str] = ()) -> JSONResponse:
    """``data`` with its top-level ``marking`` set to the join of everything in it, and the header.

    A document whose own marking is null (quarantined or spilled, shown to stewards) contributes
    nothing to the join.
    """
    banner = _join(session, [*markings_in(data), *extra]).banner()
    body = {**data, "marking": banner}
    return JSONResponse(body, headers={MARKING_HEADER: banner})


def marked_list(
    session: Session, items: list[dict[str, Any]], *, extra: Iterable[str] = ()
) -> JSONResponse:
    """``{"items": [...], "marking": <join>}`` with the marking header (UNCLASSIFIED if empty)."""
    return marked(session, {"items": items}, extra=extra)
