"""Binding checks of many catalog rows, remembered for rows already seen to verify.

A search re-checks every matching chunk against the catalog, binding verified, and most of the
rows are the same from one search to the next. A binding is a pure function of the workspace's
key and the row's columns, so a row whose columns are exactly -- value and type, element by
element -- those of a row that verified under the same key verifies too: such rows are kept
without recomputing the HMAC. Every other row goes through
:func:`garrison.store.bindings.verify_columns` (and a bad one is reported there, as always); only
rows that verified are remembered.
"""

from __future__ import annotations

import weakref
from collections.abc import Iterable, Sequence
from typing import Any

from sqlalchemy import Row, select

from garrison.store.bindings import Binder, binding_columns, verify_columns
from garrison.store.catalog_reads import CatalogView
from garrison.store.models import ChunkRow

__all__ = ["current_chunks", "verified_rows"]

#: Rows remembered per binder before the memory starts over.
LIMIT = 400_000
_SEEN: weakref.WeakKeyDictionary[Binder, set[tuple[Any, ...]]] = weakref.WeakKeyDictionary()


def _exact(value: Any) -> Any:
    """``value`` with its type (and each element's, for a list): ``1``, ``1.0`` and ``True``
    compare equal in Python but bind differently."""
    if isinstance(value, list):
        return (list, tuple(_exact(v) for v in value))
    return (type(value), value)


def verified_rows(binder: Binder, rows: Iterable[Row[Any]], model: type[Any]) -> list[Row[Any]]:
    """The rows of a column query on ``model`` (with its :func:`binding_columns`, no prefix)
    whose binding verifies, in order."""
    names = [label.name for label in binding_columns(model)]
    seen = _SEEN.setdefault(binder, set())
    kept: list[Row[Any]] = []
    fresh: list[tuple[int, Row[Any], tuple[Any, ...] | None]] = []
    for row in rows:
        values = row._mapping
        try:
            key: tuple[Any, ...] | None = tuple(_exact(values[n]) for n in names)
            known = key in seen
        except TypeError:  # an unhashable value (not a column of a bound table): check it
            key, known = None, False
        if known:
            kept.append(row)
        else:
            fresh.append((len(kept), row, key))
            kept.append(row)
    if not fresh:
        return kept
    good = {id(r) for r in verify_columns(binder, (r for _, r, _ in fresh), (model, ""))}
    if len(seen) + len(fresh) > LIMIT:
        seen.clear()
    for _, row, key in fresh:
        if id(row) in good and key is not None:
            seen.add(key)
    bad = {id(r) for _, r, _ in fresh if id(r) not in good}
    return [r for r in kept if id(r) not in bad]


def current_chunks(view: CatalogView, chunk_ids: Sequence[str]) -> dict[str, tuple[int, str, str]]:
    """The catalog's (marking id, document id, text) of each chunk there now whose binding
    verifies (a chunk gone, or edited in the catalog, is left out; rows seen to verify before
    are remembered, above)."""
    binder = view.session.workspace.catalog.binder
    orm = view.orm
    now: dict[str, tuple[int, str, str]] = {}
    unique = list(dict.fromkeys(chunk_ids))
    for start in range(0, len(unique), 500):
        part = unique[start : start + 500]
        query = select(*binding_columns(ChunkRow)).where(ChunkRow.id.in_(part))
        for row in verified_rows(binder, orm.execute(query), ChunkRow):
            now[row.id] = (row.marking_id, row.doc_id, row.text)
    return now
