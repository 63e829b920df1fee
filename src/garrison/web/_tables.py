"""Tables that page, sort and filter on the server: the one way the UI lists records.

A list page takes :data:`TableArgs` (``sort``, ``dir``, ``cursor``, ``q`` from the query
string), asks the library for one page -- keyset pages over a whitelist of sortable columns
per table, the filter applied to readable rows only -- and hands the template a
:class:`Table`, whose links (next, previous, each sortable column) carry the state along.
The ``_table.html`` macros draw the filter box, the column headers and the pager; no script
is involved, so the strict CSP stays as it is.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Annotated, Any, TypeVar
from urllib.parse import urlencode

from fastapi import Depends, Query

from garrison.core.errors import InvalidInput
from garrison.store.paging import MAX_CURSOR, Page, PageSpec, page_items

__all__ = ["Table", "TableArgs", "TableQuery", "page_rows"]

_T = TypeVar("_T")


@dataclass(frozen=True)
class TableQuery:
    """What the query string asked of a table."""

    sort: str = ""
    desc: bool | None = None
    cursor: str = ""
    q: str = ""

    def spec(self, limit: int, sorts: Sequence[str], *, default_desc: bool = False) -> PageSpec:
        """The page to read; InvalidInput for a column the table does not sort by."""
        if self.sort and self.sort not in sorts:
            raise InvalidInput(f"This table sorts by {', '.join(sorts)}; not by {self.sort!r}.")
        desc = self.desc if self.desc is not None else default_desc
        return PageSpec(limit=limit, cursor=self.cursor or None, sort=self.sort or None, desc=desc)


def _table_query(
    sort: Annotated[str, Query(max_length=40, pattern=r"^[a-z_]*$")] = "",
    dir: Annotated[str, Query(pattern=r"^(asc|desc)?$")] = "",
    cursor: Annotated[str, Query(max_length=MAX_CURSOR)] = "",
    q: Annotated[str, Query(max_length=200)] = "",
) -> TableQuery:
    desc = {"asc": False, "desc": True}.get(dir)
    return TableQuery(sort=sort, desc=desc, cursor=cursor, q=q.strip())


TableArgs = Annotated[TableQuery, Depends(_table_query)]


@dataclass
class Table:
    """One page of a table and the links around it (for the ``_table.html`` macros)."""

    path: str
    page: Page[Any]
    query: TableQuery
    sorts: Sequence[str]
    default_sort: str
    default_desc: bool = False
    params: Mapping[str, str] = field(default_factory=dict)

    @property
    def sort(self) -> str:
        return self.page.sort or self.default_sort

    @property
    def desc(self) -> bool:
        return self.page.desc

    def url(self, **changes: str) -> str:
        """This table's URL with its filter and sort, and ``changes`` (empty values dropped)."""
        chosen = self.sort != self.default_sort or self.desc != self.default_desc
        state = {
            **self.params,
            "q": self.query.q,
            "sort": self.sort if chosen else "",
            "dir": ("desc" if self.desc else "asc") if chosen else "",
        }
        state.update(changes)
        kept = {k: v for k, v in state.items() if v}
        return f"{self.path}?{urlencode(kept)}" if kept else self.path

    @property
    def next_url(self) -> str | None:
        return self.url(cursor=self.page.next_cursor) if self.page.next_cursor else None

    @property
    def prev_url(self) -> str | None:
        return self.url(cursor=self.page.prev_cursor) if self.page.prev_cursor else None

    def sort_url(self, key: str) -> str:
        """The first page sorted by ``key``; the column already sorted flips direction."""
        desc = not self.desc if key == self.sort else False
        return self.url(sort=key, dir="desc" if desc else "asc", cursor="")

    def aria_sort(self, key: str) -> str:
        if key != self.sort:
            return "none"
        return "descending" if self.desc else "ascending"


def page_rows(
    items: Sequence[_T],
    listing: str,
    query: TableQuery,
    limit: int,
    *,
    record_id: Callable[[_T], str],
    sorts: Mapping[str, Callable[[_T], Any] | None],
    match: Callable[[_T], str],
    default_desc: bool = False,
) -> Page[_T]:
    """A table page of a readable list (the small registries): those whose ``match`` text
    contains the filter (ignoring case), sorted in memory by a whitelisted key (the first of
    ``sorts`` is the default; None keeps the list's own order)."""
    if query.q:
        needle = query.q.casefold()
        items = [i for i in items if needle in match(i).casefold()]
    return page_items(
        items,
        listing=listing,
        record_id=record_id,
        sorts=sorts,
        default=next(iter(sorts)),
        spec=query.spec(limit, list(sorts), default_desc=default_desc),
    )
