"""Subjects' section 7.4 briefings (NATO, atomic energy, ACCM, non-IC dissemination) and the
registry group ``NATO-MEMBERS``.

Existing subjects hold none of the new briefings. ``NATO-MEMBERS`` is filled with the members
of NATO as of 2024 (a literal copy, so this revision never changes); a site edits it with
``garrison registry add|remove group NATO-MEMBERS --members ...``.

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-02 07:00:00.000000
"""

from __future__ import annotations

from datetime import UTC, datetime

import sqlalchemy as sa
from alembic import op

revision = "0015"
down_revision = "0014"
branch_labels = None
depends_on = None

_MEMBERS = [
    "ALB", "BEL", "BGR", "CAN", "CZE", "DEU", "DNK", "ESP", "EST", "FIN", "FRA", "GBR", "GRC",
    "HRV", "HUN", "ISL", "ITA", "LTU", "LUX", "LVA", "MKD", "MNE", "NLD", "NOR", "POL", "PRT",
    "ROU", "SVK", "SVN", "SWE", "TUR", "USA",
]  # fmt: skip


def upgrade() -> None:
    with op.batch_alter_table("subjects") as batch:
        batch.add_column(sa.Column("nato", sa.String(length=4), nullable=True))
        for name in ("nato_special", "aea", "accm", "nonic"):
            batch.add_column(
                sa.Column(name, sa.JSON(), nullable=False, server_default=sa.text("'[]'"))
            )
    registry = sa.table(
        "registry_entries",
        sa.column("kind", sa.String),
        sa.column("name", sa.String),
        sa.column("members", sa.JSON),
        sa.column("description", sa.Text),
        sa.column("added_by", sa.String),
        sa.column("added_at", sa.DateTime(timezone=True)),
    )
    present = op.get_bind().execute(
        sa.select(registry.c.name).where(
            registry.c.kind == "group", registry.c.name == "NATO-MEMBERS"
        )
    )
    if present.first() is None:
        op.bulk_insert(
            registry,
            [
                {
                    "kind": "group",
                    "name": "NATO-MEMBERS",
                    "members": _MEMBERS,
                    "description": "Countries whose citizens may hold NATO briefings",
                    "added_by": "system",
                    "added_at": datetime.now(UTC),
                }
            ],
        )


def downgrade() -> None:
    op.execute("DELETE FROM registry_entries WHERE kind = 'group' AND name = 'NATO-MEMBERS'")
    with op.batch_alter_table("subjects") as batch:
        for name in ("nonic", "accm", "aea", "nato_special", "nato"):
            batch.drop_column(name)
