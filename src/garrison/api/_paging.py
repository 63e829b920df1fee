"""The one paged shape of every API listing, and the query parameters that ask for a page.

Every list endpoint answers ``{"items": [...], "total": N, "next_cursor": "..." | null,
"prev_cursor": ... , "marking": ...}``: ``limit`` items at most (default
:data:`~garrison.store.paging.DEFAULT_LIMIT`; more than
:data:`~garrison.store.paging.MAX_LIMIT` is a 422), ``total`` counted over the rows the caller
may read, and ``next_cursor`` to pass back as ``cursor`` for the next page (null on the last).
A cursor the listing did not give is a 400.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import Annotated, Any

from fastapi import Query
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from garrison.api._marking import marked
from garrison.store.paging import (
    DEFAULT_LIMIT,
    MAX_CURSOR,
    MAX_LIMIT,
    Page,
    PageSpec,
    page_items,
)
from garrison.store.session import Session

__all__ = [
    "DEFAULT_LIMIT",
    "MAX_LIMIT",
    "CursorQuery",
    "LimitQuery",
    "PagedList",
    "marked_page",
    "page_of",
]

LimitQuery = Annotated[
    int,
    Query(
        ge=1,
        le=MAX_LIMIT,
        description=f"How many per page (default {DEFAULT_LIMIT}, at most {MAX_LIMIT}).",
    ),
]
CursorQuery = Annotated[
    str | None,
    Query(max_length=MAX_CURSOR, description="The previous page's next_cursor (opaque)."),
]

_NEXT = "Pass as ``cursor`` for the next page; null on the last page."


class PagedList(BaseModel):
    """One page of a listing: ``total`` counts what the caller may read (all pages)."""

    items: list[dict[str, Any]]
    marking: str
    total: int = Field(description="How many records the caller may read, over all pages.")
    next_cursor: str | None = Field(None, description=_NEXT)
    prev_cursor: str | None = Field(
        None, description="Pass as ``cursor`` for the page before; null on the first page."
    )


def marked_page(
    session: Session,
    page: Page[dict[str, Any]],
    *,
    extra: Iterable[str] = (),
    fields: dict[str, Any] | None = None,
) -> JSONResponse:
    """The page in the listing shape, marked with the join of its items (and ``extra``)."""
    return marked(session, {**page.to_dict(), **(fields or {})}, extra=extra)


def page_of(
    items: Sequence[dict[str, Any]],
    listing: str,
    limit: int,
    cursor: str | None,
    *,
    key: str = "id",
    desc: bool = False,
    sorts: dict[str, Callable[[dict[str, Any]], Any] | None] | None = None,
) -> Page[dict[str, Any]]:
    """A page of a readable list (the library's order unless ``sorts`` say otherwise)."""
    return page_items(
        items,
        listing=listing,
        record_id=lambda i: str(i[key]),
        sorts=sorts or {"order": None},
        default=next(iter(sorts or {"order": None})),
        spec=PageSpec(limit=limit, cursor=cursor, desc=desc),
    )
