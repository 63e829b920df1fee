"""Catalog tables (SQLAlchemy 2 declarative). Schema changes go through Alembic migrations."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Boolean, DateTime, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

__all__ = ["Base", "InternedMarking", "Meta", "RegistryEntry", "SubjectRow"]


class Base(DeclarativeBase):
    """Declarative base of every catalog table."""


class Meta(Base):
    """Key/value facts about the workspace (id, system high, schema format)."""

    __tablename__ = "garrison_meta"

    key: Mapped[str] = mapped_column(String(64), primary_key=True)
    value: Mapped[str] = mapped_column(Text)


class InternedMarking(Base):
    """Each distinct marking once; records refer to it by id and search filters on ids."""

    __tablename__ = "markings"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    #: Canonical JSON of the structured form: the identity of the marking.
    key: Mapped[str] = mapped_column(Text, unique=True)
    banner: Mapped[str] = mapped_column(Text)
    expression: Mapped[str] = mapped_column(Text)


class SubjectRow(Base):
    """A user or service account: clearance, accesses, grants and roles."""

    __tablename__ = "subjects"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(128), unique=True)
    kind: Mapped[str] = mapped_column(String(16))
    clearance: Mapped[str] = mapped_column(String(4))
    sci: Mapped[list[str]] = mapped_column(JSON)
    sap: Mapped[list[str]] = mapped_column(JSON)
    citizenship: Mapped[str] = mapped_column(String(8))
    groups: Mapped[list[str]] = mapped_column(JSON)
    grants: Mapped[list[str]] = mapped_column(JSON)
    roles: Mapped[list[str]] = mapped_column(JSON)
    #: Distinguished name of the subject's client certificate, for mutual TLS.
    dn: Mapped[str | None] = mapped_column(Text, unique=True, nullable=True)
    disabled: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class RegistryEntry(Base):
    """A site addition to the marking registry (SCI system, SAP id, country group, CUI category)."""

    __tablename__ = "registry_entries"
    __table_args__ = (UniqueConstraint("kind", "name"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    kind: Mapped[str] = mapped_column(String(16))
    name: Mapped[str] = mapped_column(String(64))
    #: Members of a country group; ``None`` for an opaque tetragraph and for other kinds.
    members: Mapped[list[str] | None] = mapped_column(JSON, nullable=True)
    description: Mapped[str | None] = mapped_column(Text, nullable=True)
    added_by: Mapped[str] = mapped_column(String(128))
    added_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


def row_dict(row: Any) -> dict[str, Any]:
    """Column values of a mapped row as a plain dict."""
    return {c.key: getattr(row, c.key) for c in row.__table__.columns}
