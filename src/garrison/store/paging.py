"""Pages of a listing: a page size, an opaque cursor, and the total the reader may see.

Every listing pages the same way (the API always, the CLI with ``--limit``, the web tables):

- ``limit`` is the page size: :data:`DEFAULT_LIMIT` when not given, at most :data:`MAX_LIMIT`
  (more is an :class:`~garrison.core.errors.InvalidInput`, never silently clamped);
- the order is a whitelisted sort key of the listing (its default, or one a table offers) with
  the record's id as the last tie-breaker, so it is total and stable;
- a cursor is keyset, not an offset: it names the record the next page starts *after* (or the
  previous page ends *before*), and the query continues from that record's sort values, looked
  up again through the same readable query. A cursor therefore never carries a value the
  reader may not see (a chunk's document id, say), records added or removed elsewhere in the
  listing do not shift its pages, and a cursor whose record the reader cannot see (tampered,
  another listing's, or removed since) is refused like garbage: one :class:`InvalidInput`;
- ``total`` counts the rows the reader may read, after the listing's filters -- never a row
  above the reader's clearance, and (for catalog tables) only rows whose binding verifies.

A cursor is base64url of a small JSON object: ``{"l": listing, "a"|"b": record id, "s": sort,
"d": descending}``. It is opaque to callers: only this module reads it.

:func:`page_query` pages a catalog query (SQL keyset, one query for the page, one for the
count); :func:`page_items` pages a list already filtered to what the reader may read (the small
registries: datasets, models, suites, runs, projects, users, audit events).
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from sqlalchemy import ColumnElement, Select, and_, false, func, or_, select, true
from sqlalchemy.orm import Session as OrmSession

from garrison.core.errors import InvalidInput
from garrison.store.bindings import Binder, binding_columns, verify_columns

__all__ = [
    "BAD_CURSOR",
    "DEFAULT_LIMIT",
    "MAX_LIMIT",
    "Cursor",
    "Page",
    "PageSpec",
    "check_limit",
    "page_items",
    "page_query",
]

#: Page size when none is asked for.
DEFAULT_LIMIT = 50
#: The largest page size a listing gives.
MAX_LIMIT = 500
#: Longest cursor accepted (a cursor the API gave is far shorter).
MAX_CURSOR = 400

_T = TypeVar("_T")
BAD_CURSOR = "The cursor is not one this listing gave."


def check_limit(limit: int | None) -> int:
    """The page size to use: :data:`DEFAULT_LIMIT` for None; InvalidInput outside 1..MAX."""
    if limit is None:
        return DEFAULT_LIMIT
    if isinstance(limit, bool) or not 1 <= limit <= MAX_LIMIT:
        raise InvalidInput(f"A page holds 1 to {MAX_LIMIT} records; {limit} is out of range.")
    return limit


@dataclass(frozen=True)
class Cursor:
    """Where a page starts: after (``before=False``) or before the record ``record_id``."""

    listing: str
    record_id: str
    before: bool = False
    sort: str | None = None
    desc: bool = False

    def encode(self) -> str:
        data: dict[str, Any] = {"l": self.listing, "b" if self.before else "a": self.record_id}
        if self.sort is not None:
            data["s"] = self.sort
        if self.desc:
            data["d"] = 1
        raw = json.dumps(data, separators=(",", ":")).encode()
        return base64.urlsafe_b64encode(raw).decode().rstrip("=")

    @classmethod
    def decode(cls, text: str, listing: str) -> Cursor:
        """The cursor ``text`` stands for; InvalidInput for anything this listing did not give."""
        if len(text) > MAX_CURSOR:
            raise InvalidInput(BAD_CURSOR)
        try:
            data = json.loads(base64.urlsafe_b64decode(text + "=" * (-len(text) % 4)))
        except (binascii.Error, ValueError, UnicodeDecodeError):
            raise InvalidInput(BAD_CURSOR) from None
        if not isinstance(data, dict) or data.get("l") != listing:
            raise InvalidInput(BAD_CURSOR)
        if set(data) - {"l", "a", "b", "s", "d"} or ("a" in data) == ("b" in data):
            raise InvalidInput(BAD_CURSOR)
        record = data.get("a", data.get("b"))
        sort = data.get("s")
        if not isinstance(record, str | int) or isinstance(record, bool) or str(record) == "":
            raise InvalidInput(BAD_CURSOR)
        if sort is not None and not isinstance(sort, str):
            raise InvalidInput(BAD_CURSOR)
        if data.get("d", 0) not in (0, 1):
            raise InvalidInput(BAD_CURSOR)
        return cls(listing, str(record), "b" in data, sort, bool(data.get("d", 0)))


@dataclass(frozen=True)
class PageSpec:
    """What a caller asks of a listing: the page size, where to continue, and the order.

    ``sort`` names one of the listing's sortable keys (None: its default order); with a cursor,
    the cursor's order is the page's, and a different ``sort`` asked beside it is refused.
    """

    limit: int | None = None
    cursor: str | None = None
    sort: str | None = None
    desc: bool = False


@dataclass(frozen=True)
class Page(Generic[_T]):
    """One page: its items in order, the readable total, and cursors to the pages around it."""

    items: list[_T]
    total: int
    next_cursor: str | None = None
    prev_cursor: str | None = None
    limit: int = DEFAULT_LIMIT
    sort: str | None = None
    desc: bool = False

    def map(self, convert: Callable[[_T], Any]) -> Page[Any]:
        """The same page with each item converted."""
        return Page(
            [convert(i) for i in self.items],
            self.total,
            self.next_cursor,
            self.prev_cursor,
            self.limit,
            self.sort,
            self.desc,
        )

    def to_dict(self) -> dict[str, Any]:
        """The listing's JSON shape: ``{"items", "total", "next_cursor"}`` (+ ``prev_cursor``)."""
        return {
            "items": list(self.items),
            "total": self.total,
            "next_cursor": self.next_cursor,
            "prev_cursor": self.prev_cursor,
        }


def _resolve(
    spec: PageSpec, listing: str, sorts: Sequence[str], default: str
) -> tuple[Cursor | None, str, bool, int]:
    limit = check_limit(spec.limit)
    if spec.sort is not None and spec.sort not in sorts:
        raise InvalidInput(f"This listing sorts by {', '.join(sorts)}; not by {spec.sort!r}.")
    if not spec.cursor:
        return None, spec.sort or default, spec.desc, limit
    cursor = Cursor.decode(spec.cursor, listing)
    sort = cursor.sort or default
    asked = spec.sort is not None and (spec.sort, spec.desc) != (sort, cursor.desc)
    if sort not in sorts or asked:
        raise InvalidInput(BAD_CURSOR)
    return cursor, sort, cursor.desc, limit


def _cursors(
    listing: str,
    ids: list[str],
    *,
    cursor: Cursor | None,
    more: bool,
    sort: str,
    default: str,
    desc: bool,
) -> tuple[str | None, str | None]:
    """(next, previous) cursors of a page whose record ids are ``ids`` (in page order)."""
    named = None if sort == default and not desc else sort
    backward = cursor is not None and cursor.before
    has_next = (more and not backward) or backward
    has_prev = (more and backward) or (cursor is not None and not backward)
    if not ids:
        return None, None
    following = Cursor(listing, ids[-1], False, named, desc).encode() if has_next else None
    preceding = Cursor(listing, ids[0], True, named, desc).encode() if has_prev else None
    return following, preceding


# -- catalog queries ---------------------------------------------------------------------------


def _after(keys: Sequence[Any], values: Sequence[Any], desc: bool) -> ColumnElement[bool]:
    """SQL: the row comes after ``values`` in the order of ``keys`` (ascending with NULLs last,
    or its exact reverse with ``desc``)."""
    clauses = []
    equal: list[ColumnElement[bool]] = []
    for key, value in zip(keys, values, strict=True):
        if value is None:
            later: ColumnElement[bool] = key.is_not(None) if desc else false()
            same: ColumnElement[bool] = key.is_(None)
        else:
            later = key < value if desc else or_(key > value, key.is_(None))
            same = key == value
        clauses.append(and_(*equal, later) if equal else later)
        equal.append(same)
    return or_(*clauses) if clauses else true()


def _order(keys: Sequence[Any], desc: bool) -> list[ColumnElement[Any]]:
    out: list[ColumnElement[Any]] = []
    for key in keys:
        if desc:
            out += [key.is_(None).desc(), key.desc()]
        else:
            out += [key.is_(None).asc(), key.asc()]
    return out


def page_query(
    orm: OrmSession,
    query: Select[Any],
    *,
    listing: str,
    model: type[Any],
    id_column: Any,
    sorts: Mapping[str, Sequence[Any]],
    default: str,
    spec: PageSpec,
    binder: Binder | None = None,
) -> Page[Any]:
    """One page of ``query`` (whole rows of ``model``, already restricted to what the reader
    may read and to the listing's filters) in the order ``sorts[sort]`` then ``id_column``.

    ``total`` counts the rows of ``query``; with ``binder``, only those whose binding verifies
    (the rows a whole-row read would return). The items are the ORM rows.
    """
    cursor, sort, desc, limit = _resolve(spec, listing, list(sorts), default)
    keys = [*sorts[sort], id_column]
    backward = cursor is not None and cursor.before
    page_query_ = query
    if cursor is not None:
        anchor = orm.execute(
            query.with_only_columns(*keys).where(id_column == cursor.record_id).limit(1)
        ).first()
        if anchor is None:
            raise InvalidInput(BAD_CURSOR)
        page_query_ = page_query_.where(_after(keys, list(anchor), desc != backward))
    ordered = page_query_.order_by(None).order_by(*_order(keys, desc != backward))
    rows = list(orm.scalars(ordered.limit(limit + 1)))
    more = len(rows) > limit
    rows = rows[:limit]
    if backward:
        rows.reverse()
    total = count_rows(orm, query, model, binder)
    ids = [str(getattr(r, id_column.key)) for r in rows]
    following, preceding = _cursors(
        listing, ids, cursor=cursor, more=more, sort=sort, default=default, desc=desc
    )
    return Page(rows, total, following, preceding, limit, sort, desc)


def count_rows(
    orm: OrmSession, query: Select[Any], model: type[Any], binder: Binder | None = None
) -> int:
    """How many rows ``query`` returns (with ``binder``: only those whose binding verifies)."""
    if binder is None:
        counted = select(func.count()).select_from(query.order_by(None).subquery())
        return int(orm.scalar(counted) or 0)
    rows = orm.execute(query.order_by(None).with_only_columns(*binding_columns(model)))
    return len(verify_columns(binder, rows, (model, "")))


# -- readable lists ----------------------------------------------------------------------------


def _sort_value(value: Any) -> tuple[bool, Any]:
    return (value is None, value if value is not None else 0)


def page_items(
    items: Sequence[_T],
    *,
    listing: str,
    record_id: Callable[[_T], str],
    sorts: Mapping[str, Callable[[_T], Any] | None],
    default: str,
    spec: PageSpec,
) -> Page[_T]:
    """One page of ``items`` -- every record the reader may read, nothing else -- in the order
    ``sorts[sort]`` then the record id (a sort of None keeps the list's order), with the same
    cursors and rules as :func:`page_query`."""
    cursor, sort, desc, limit = _resolve(spec, listing, list(sorts), default)
    key = sorts[sort]
    if key is None:
        # The list's own order (the library's: newest first, by name...).
        ordered = list(reversed(items)) if desc else list(items)
    else:
        # Descending is the exact reverse of ascending (NULLs last), as in SQL.
        ordered = sorted(items, key=lambda i: (_sort_value(key(i)), record_id(i)), reverse=desc)
    ids = [record_id(i) for i in ordered]
    backward = cursor is not None and cursor.before
    if cursor is None:
        start, end = 0, limit
    else:
        try:
            at = ids.index(cursor.record_id)
        except ValueError:
            raise InvalidInput(BAD_CURSOR) from None
        start, end = (max(0, at - limit), at) if backward else (at + 1, at + 1 + limit)
    chunk = list(ordered[start:end])
    more = start > 0 if backward else end < len(ordered)
    following, preceding = _cursors(
        listing,
        ids[start:end],
        cursor=cursor,
        more=more,
        sort=sort,
        default=default,
        desc=desc,
    )
    return Page(chunk, len(ordered), following, preceding, limit, sort, desc)
