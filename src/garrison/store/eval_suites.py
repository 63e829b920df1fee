"""Catalog access for evaluation suites: suite versions and their per-item rows.

A suite is visible to a reader through its items: every read starts from the item rows the
reader may read (:meth:`Session.readable` on each item's own marking; whole rows, so each
row's binding is verified too), and a suite none of whose items is readable is never listed,
counted or found -- it answers exactly like a suite that does not exist. What a reader is told
of a suite (its item count, its marking) is computed from the items they may read, so nothing
reveals that others exist.
"""

from __future__ import annotations

import hashlib
from collections import defaultdict
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import func, insert, select

from garrison.core.clock import utc_now
from garrison.security.audit import AuditAction
from garrison.security.markings import Marking, join
from garrison.store.models import EvalSuiteItemRow, EvalSuiteRow
from garrison.store.session import Session

__all__ = [
    "ReadableItemRow",
    "ReadableSuiteRow",
    "add_suite",
    "item_row_id",
    "readable_item_rows",
    "readable_suite_rows",
    "stored_suite",
    "version_numbers",
]

_PART = 500


def item_row_id(suite_id: str, item_id: str) -> str:
    """The catalog id of item ``item_id``'s row in suite version ``suite_id``."""
    return hashlib.sha256(f"{suite_id}\x00{item_id}".encode()).hexdigest()


@dataclass(frozen=True)
class ReadableItemRow:
    """One item row a reader may read (detached from the catalog)."""

    item_id: str
    position: int
    marking: Marking
    cluster: str
    slices: dict[str, str]


@dataclass(frozen=True)
class ReadableSuiteRow:
    """A suite version as one reader sees it: the row, and what their readable items make."""

    row: EvalSuiteRow
    #: How many of its items the reader may read.
    readable_count: int
    #: The join of the items the reader may read.
    marking: Marking


def _item_query(suite_ids: Collection[str] | None) -> Any:
    query = select(EvalSuiteItemRow)
    if suite_ids is not None:
        query = query.where(EvalSuiteItemRow.suite_id.in_(sorted(suite_ids)))
    return query


def readable_suite_rows(
    session: Session,
    *,
    name: str | None = None,
    id_prefix: str | None = None,
) -> list[ReadableSuiteRow]:
    """Suite versions (of ``name``, whose id starts with ``id_prefix``) with at least one item
    the subject may read, newest first, each with the count and join of those items."""
    out: list[ReadableSuiteRow] = []
    with session.workspace.catalog.transaction() as orm:
        query = select(EvalSuiteRow)
        if name is not None:
            query = query.where(EvalSuiteRow.name == name)
        if id_prefix is not None:
            query = query.where(EvalSuiteRow.id.startswith(id_prefix, autoescape=True))
        # Whole rows: a suite row whose binding fails is left out.
        candidates = {r.id: r for r in orm.scalars(query.order_by(EvalSuiteRow.created_at.desc()))}
        if not candidates:
            return []
        counts: dict[str, int] = defaultdict(int)
        markings: dict[str, list[Marking]] = defaultdict(list)
        ids = sorted(candidates)
        for start in range(0, len(ids), _PART):
            part = ids[start : start + _PART]
            items = session.readable(orm, _item_query(part), EvalSuiteItemRow.marking_id)
            for item in orm.scalars(items):
                marking = session.marking_of(orm, item.marking_id)
                if marking is None:
                    continue
                counts[item.suite_id] += 1
                markings[item.suite_id].append(marking)
        for suite_id, row in candidates.items():
            if counts.get(suite_id):
                out.append(ReadableSuiteRow(row, counts[suite_id], join(*markings[suite_id])))
    return out


def readable_item_rows(
    session: Session, suite_id: str, *, offset: int = 0, limit: int | None = None
) -> list[ReadableItemRow]:
    """The items of ``suite_id`` the subject may read, in suite order (``offset`` and
    ``limit`` count readable items only)."""
    with session.workspace.catalog.transaction() as orm:
        query = session.readable(
            orm, _item_query([suite_id]), EvalSuiteItemRow.marking_id
        ).order_by(EvalSuiteItemRow.position)
        if offset:
            query = query.offset(offset)
        if limit is not None:
            query = query.limit(limit)
        out = []
        for row in orm.scalars(query):
            marking = session.marking_of(orm, row.marking_id)
            if marking is not None:
                out.append(
                    ReadableItemRow(
                        row.item_id, row.position, marking, row.cluster, dict(row.slices or {})
                    )
                )
        return out


def stored_suite(session: Session, suite_id: str) -> tuple[str, int] | None:
    """The name and number of an already stored suite version with this id, else None.

    Used only by a creator who holds every item of the content they are storing again: it
    says the content exists, not what it is.
    """
    with session.workspace.catalog.transaction() as orm:
        row = orm.get(EvalSuiteRow, suite_id)
        return (row.name, row.version) if row is not None else None


def _next_version(session: Session, name: str) -> int:
    with session.workspace.catalog.transaction() as orm:
        count = orm.scalar(
            select(func.count()).select_from(EvalSuiteRow).where(EvalSuiteRow.name == name)
        )
    return int(count or 0) + 1


def add_suite(
    session: Session,
    *,
    suite_id: str,
    name: str,
    kind: str,
    holdout: bool,
    marking: Marking,
    manifest: dict[str, Any],
    snapshot: str,
    items: Sequence[tuple[str, int, Marking, str, dict[str, str]]],
) -> None:
    """Store a new suite version and its item rows ``(item_id, position, marking, cluster,
    slices)`` in one transaction, committed after its audit event."""
    version = _next_version(session, name)
    with session._write(
        AuditAction.EVAL_SUITE_CREATE,
        object_id=suite_id,
        object_marking=marking.banner(),
        details={"name": name, "kind": kind, "holdout": holdout, "items": len(items)},
    ) as orm:
        created: datetime = utc_now()
        orm.add(
            EvalSuiteRow(
                id=suite_id,
                name=name,
                version=version,
                kind=kind,
                holdout=holdout,
                marking_id=session.intern_marking(orm, marking),
                manifest=manifest,
                item_count=len(items),
                snapshot=snapshot,
                created_by=session.subject.name,
                created_at=created,
            )
        )
        orm.flush()
        rows = [
            {
                "id": item_row_id(suite_id, item_id),
                "suite_id": suite_id,
                "item_id": item_id,
                "position": position,
                "marking_id": session.intern_marking(orm, item_marking),
                "cluster": cluster,
                "slices": dict(slices),
            }
            for item_id, position, item_marking, cluster, slices in items
        ]
        for start in range(0, len(rows), _PART):
            orm.execute(insert(EvalSuiteItemRow), rows[start : start + _PART])


def version_numbers(session: Session, name: str) -> dict[int, int]:
    """Stored version number -> its place among the versions of ``name`` the subject may
    read (so the numbers a reader sees have no gaps that tell how many are hidden)."""
    stored = sorted(r.row.version for r in readable_suite_rows(session, name=name))
    return {v: place for place, v in enumerate(stored, start=1)}
