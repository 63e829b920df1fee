"""``--limit`` and ``--cursor`` on every listing, and how a page is printed.

Without either option a listing prints every record it finds (CLI.md), as a table or, with
``--json``, one JSON array. With ``--limit N`` (at most :data:`MAX_LIMIT`) or ``--cursor C`` it
prints one page: ``--json`` gives ``{"items": [...], "total": N, "next_cursor": ...,
"prev_cursor": ...}``, and the table is followed, on stderr, by a line such as ``50 of 709
shown; next page: --cursor XYZ``. ``total`` counts the records the acting subject may read.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Annotated, Any

import typer

from garrison.cli._output import emit_json, emit_table, err_console
from garrison.store.paging import DEFAULT_LIMIT, MAX_LIMIT, Page, PageSpec, page_items

__all__ = ["CursorOpt", "PageLimitOpt", "emit_listing", "page_footer", "page_list", "page_spec"]

PageLimitOpt = Annotated[
    int | None,
    typer.Option(
        "--limit",
        min=1,
        max=MAX_LIMIT,
        metavar="N",
        help=f"Show one page of N records (1 to {MAX_LIMIT}) and the cursor of the next.",
    ),
]
CursorOpt = Annotated[
    str | None,
    typer.Option(
        "--cursor",
        metavar="CURSOR",
        help="Show the page a previous page's footer (or next_cursor) pointed to.",
    ),
]


def page_spec(limit: int | None, cursor: str | None) -> PageSpec | None:
    """The page asked for, or None when the listing should print everything."""
    if limit is None and not cursor:
        return None
    return PageSpec(limit=limit if limit is not None else DEFAULT_LIMIT, cursor=cursor)


def page_list(
    items: Sequence[dict[str, Any]], listing: str, spec: PageSpec, *, key: str = "id"
) -> Page[dict[str, Any]]:
    """A page of a readable list, in the list's own order."""
    return page_items(
        items,
        listing=listing,
        record_id=lambda i: str(i[key]),
        sorts={"order": None},
        default="order",
        spec=spec,
    )


def page_footer(page: Page[Any]) -> str:
    """``2 of 9 shown; next page: --cursor XYZ`` (or ``last page``)."""
    shown = f"{len(page.items)} of {page.total} shown"
    if page.next_cursor:
        return f"{shown}; next page: --cursor {page.next_cursor}"
    return f"{shown}; last page."


def emit_listing(
    rows: Sequence[dict[str, Any]] | Page[dict[str, Any]],
    columns: Sequence[str],
    row: Callable[[dict[str, Any]], Sequence[Any]],
    *,
    as_json: bool,
) -> None:
    """Print a whole listing (a list) or one page of it (a :class:`Page`)."""
    page = rows if isinstance(rows, Page) else None
    items = rows.items if isinstance(rows, Page) else list(rows)
    if as_json:
        emit_json(page.to_dict() if page is not None else items)
        return
    emit_table(columns, [row(i) for i in items])
    if page is not None:
        err_console.print(page_footer(page), markup=False)
