"""Markings bound to their data, and opaque finding ids.

Adds the ``binding`` column (HMAC-SHA-256 with the workspace binding key) to every table that
refers to a marking, and to the markings table itself, and computes it for the rows already
there, so a workspace made before keeps working. Finding ids become opaque random strings
instead of a counter; existing findings get new random ids.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-01 22:00:00.000000
"""

from __future__ import annotations

import secrets
from typing import Any

import sqlalchemy as sa
from alembic import context, op

from garrison.store.bindings import BINDING_COLUMN, Binder, spec_for

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None

_BATCH = 1000
#: The tables bound as of this revision (record kinds added later bind in their own migration).
_TABLES = (
    "markings",
    "documents",
    "elements",
    "element_states",
    "chunks",
    "findings",
    "dataset_versions",
)


def _binder() -> Binder:
    key = context.config.attributes.get("binding_key")
    if key is None:
        raise RuntimeError(
            "Migration 0008 binds existing rows and needs the workspace binding key; "
            "run it with `garrison migrate`."
        )
    return Binder(key)


def upgrade() -> None:
    binder = _binder()
    conn = op.get_bind()
    _opaque_finding_ids(conn)
    # Plain ALTER TABLE (no batch copy): SQLite cannot drop a table other tables refer to
    # while foreign keys are enforced, and adding or dropping a plain column needs no copy.
    for table in _TABLES:
        op.add_column(table, sa.Column(BINDING_COLUMN, sa.String(length=64), nullable=True))
    for table in _TABLES:
        _bind_existing(conn, binder, table)


def _opaque_finding_ids(conn: Any) -> None:
    if conn.dialect.name == "postgresql":
        op.execute("ALTER TABLE findings ALTER COLUMN id DROP DEFAULT")
        op.alter_column(
            "findings",
            "id",
            existing_type=sa.Integer(),
            type_=sa.String(length=32),
            postgresql_using="id::varchar",
        )
        op.execute("DROP SEQUENCE IF EXISTS findings_id_seq")
    else:
        with op.batch_alter_table("findings", schema=None) as batch_op:
            batch_op.alter_column(
                "id",
                existing_type=sa.Integer(),
                type_=sa.String(length=32),
                autoincrement=False,
            )
    findings = sa.table("findings", sa.column("id", sa.String))
    old = [row[0] for row in conn.execute(sa.select(findings.c.id))]
    for start in range(0, len(old), _BATCH):
        conn.execute(
            findings.update()
            .where(findings.c.id == sa.bindparam("old"))
            .values(id=sa.bindparam("new")),
            [{"old": o, "new": secrets.token_hex(16)} for o in old[start : start + _BATCH]],
        )


def _bind_existing(conn: Any, binder: Binder, name: str) -> None:
    spec = spec_for(name)
    assert spec is not None
    table = sa.Table(name, sa.MetaData(), autoload_with=conn)
    id_col = table.c[spec.id_column]
    rows = [dict(r._mapping) for r in conn.execute(sa.select(table))]
    updates = [{"rid": row[spec.id_column], "b": binder.bind_values(spec, row.get)} for row in rows]
    for start in range(0, len(updates), _BATCH):
        conn.execute(
            table.update()
            .where(id_col == sa.bindparam("rid"))
            .values({BINDING_COLUMN: sa.bindparam("b")}),
            updates[start : start + _BATCH],
        )


def downgrade() -> None:
    conn = op.get_bind()
    for table in reversed(_TABLES):
        op.drop_column(table, BINDING_COLUMN)
    # Back to a counter: number the findings in the order they were made.
    findings = sa.table(
        "findings", sa.column("id", sa.String), sa.column("created_at", sa.DateTime)
    )
    old = [
        r[0]
        for r in conn.execute(
            sa.select(findings.c.id).order_by(findings.c.created_at, findings.c.id)
        )
    ]
    if old:
        conn.execute(
            findings.update()
            .where(findings.c.id == sa.bindparam("old"))
            .values(id=sa.bindparam("new")),
            [{"old": o, "new": str(n)} for n, o in enumerate(old, start=1)],
        )
    if conn.dialect.name == "postgresql":
        op.alter_column(
            "findings",
            "id",
            existing_type=sa.String(length=32),
            type_=sa.Integer(),
            postgresql_using="id::integer",
        )
        op.execute("CREATE SEQUENCE IF NOT EXISTS findings_id_seq OWNED BY findings.id")
        op.execute(
            "SELECT setval('findings_id_seq', COALESCE((SELECT MAX(id) FROM findings), 0) + 1, "
            "false)"
        )
        op.execute("ALTER TABLE findings ALTER COLUMN id SET DEFAULT nextval('findings_id_seq')")
    else:
        with op.batch_alter_table("findings", schema=None) as batch_op:
            batch_op.alter_column(
                "id",
                existing_type=sa.String(length=32),
                type_=sa.Integer(),
                autoincrement=True,
            )
