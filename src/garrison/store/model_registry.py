"""Catalog access for the model registry: model versions and their markings.

Every query that returns model rows is restricted by :meth:`Session.readable`, so a version
the subject may not read is never returned (it looks exactly like a missing one). The one read
that is not -- :func:`next_version` -- returns only a count, to number a new version of a name.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import func, select

from garrison.core.clock import utc_now
from garrison.core.errors import NotFound
from garrison.security.audit import AuditAction
from garrison.security.markings import Marking
from garrison.store.models import ModelVersionRow
from garrison.store.session import Session

__all__ = [
    "add_model_version",
    "delete_model_version",
    "model_marking",
    "model_rows",
    "next_version",
]


def model_rows(
    session: Session,
    *,
    name: str | None = None,
    id_prefix: str | None = None,
    include_deleted: bool = False,
) -> list[ModelVersionRow]:
    """Readable versions (of ``name``, whose id starts with ``id_prefix``), newest first."""
    with session.workspace.catalog.transaction() as orm:
        query = select(ModelVersionRow)
        if not include_deleted:
            query = query.where(ModelVersionRow.deleted_at.is_(None))
        if name is not None:
            query = query.where(ModelVersionRow.name == name)
        if id_prefix is not None:
            query = query.where(ModelVersionRow.id.startswith(id_prefix, autoescape=True))
        query = session.readable(orm, query, ModelVersionRow.marking_id)
        return list(
            orm.scalars(
                query.order_by(
                    ModelVersionRow.created_at.desc(),
                    ModelVersionRow.name,
                    ModelVersionRow.version.desc(),
                )
            )
        )


def model_marking(session: Session, row: ModelVersionRow) -> Marking:
    """The marking of a version row the subject already holds."""
    with session.workspace.catalog.transaction() as orm:
        marking = session.marking_of(orm, row.marking_id)
    if marking is None:
        raise NotFound(f"No model version {row.id}.")
    return marking


def next_version(session: Session, name: str) -> int:
    """The version number a new version of ``name`` gets (1 + how many the name has had)."""
    with session.workspace.catalog.transaction() as orm:
        count = orm.scalar(
            select(func.count()).select_from(ModelVersionRow).where(ModelVersionRow.name == name)
        )
    return int(count or 0) + 1


def add_model_version(
    session: Session,
    *,
    version_id: str,
    name: str,
    kind: str,
    marking: Marking,
    manifest: dict[str, Any],
    card: dict[str, Any],
    lineage: list[dict[str, Any]],
) -> bool:
    """Store a new version (or bring back a deleted one with the same content); audited.

    Returns False, writing nothing, when a version with this id is already registered.
    """
    with session.workspace.catalog.transaction() as orm:
        existing = orm.get(ModelVersionRow, version_id)
        if existing is not None and existing.deleted_at is None:
            return False
    version = next_version(session, name)
    with session._write(
        AuditAction.MODEL_REGISTER,
        object_id=version_id,
        object_marking=marking.banner(),
        details={"name": name, "kind": kind},
    ) as orm:
        row = orm.get(ModelVersionRow, version_id)
        if row is None:
            created: datetime = utc_now()
            orm.add(
                ModelVersionRow(
                    id=version_id,
                    name=name,
                    version=version,
                    kind=kind,
                    marking_id=session.intern_marking(orm, marking),
                    manifest=manifest,
                    card=card,
                    lineage=lineage,
                    created_by=session.subject.name,
                    created_at=created,
                )
            )
        else:
            row.deleted_at = None
            row.deleted_by = None
    return True


def delete_model_version(session: Session, version_id: str, reason: str) -> None:
    """Mark a version removed (its id is never reused for other content); audited."""
    with session._write(
        AuditAction.MODEL_REMOVE, object_id=version_id, details={"reason": reason}
    ) as orm:
        stored = orm.get(ModelVersionRow, version_id)
        if stored is None:
            raise NotFound(f"No model version {version_id}.")
        stored.deleted_at = utc_now()
        stored.deleted_by = session.subject.name
