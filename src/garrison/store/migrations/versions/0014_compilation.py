"""Classification by compilation: the site's rules, each marked and bound like a marked row.

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-02 07:00:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "compilation_rules",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("when_terms", sa.JSON(), nullable=False),
        sa.Column("and_terms", sa.JSON(), nullable=False),
        sa.Column("marking_id", sa.Integer(), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("added_by", sa.String(length=128), nullable=False),
        sa.Column("added_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("binding", sa.String(length=64), nullable=True),
        sa.ForeignKeyConstraint(["marking_id"], ["markings.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("name"),
    )
    with op.batch_alter_table("compilation_rules", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_compilation_rules_marking_id"), ["marking_id"])


def downgrade() -> None:
    with op.batch_alter_table("compilation_rules", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_compilation_rules_marking_id"))
    op.drop_table("compilation_rules")
