"""Pipeline: element states, chunks, and findings that carry their own marking.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-26 23:03:21.053721
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "chunks",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("doc_id", sa.String(length=64), nullable=False),
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.Column("run_id", sa.String(length=32), nullable=False),
        sa.Column("marking_id", sa.Integer(), nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("token_count", sa.Integer(), nullable=True),
        sa.Column("element_ids", sa.JSON(), nullable=False),
        sa.Column("section_path", sa.JSON(), nullable=False),
        sa.Column("embedding_model", sa.String(length=128), nullable=True),
        sa.Column("lineage", sa.JSON(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["marking_id"],
            ["markings.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("chunks", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_chunks_doc_id"), ["doc_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_chunks_marking_id"), ["marking_id"], unique=False)

    op.create_table(
        "element_states",
        sa.Column("element_id", sa.String(length=32), nullable=False),
        sa.Column("doc_id", sa.String(length=64), nullable=False),
        sa.Column("run_id", sa.String(length=32), nullable=False),
        sa.Column("marking_id", sa.Integer(), nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("language", sa.String(length=8), nullable=True),
        sa.Column("language_confidence", sa.Float(), nullable=True),
        sa.Column("quality", sa.JSON(), nullable=False),
        sa.Column("flags", sa.JSON(), nullable=False),
        sa.Column("pii", sa.JSON(), nullable=False),
        sa.Column("dropped", sa.String(length=64), nullable=True),
        sa.Column("dup_of", sa.String(length=32), nullable=True),
        sa.Column("dup_kind", sa.String(length=8), nullable=True),
        sa.Column("failed", sa.Text(), nullable=True),
        sa.Column("lineage", sa.JSON(), nullable=False),
        sa.ForeignKeyConstraint(
            ["element_id"],
            ["elements.id"],
        ),
        sa.ForeignKeyConstraint(
            ["marking_id"],
            ["markings.id"],
        ),
        sa.PrimaryKeyConstraint("element_id"),
    )
    with op.batch_alter_table("element_states", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_element_states_doc_id"), ["doc_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_element_states_dup_of"), ["dup_of"], unique=False)
        batch_op.create_index(
            batch_op.f("ix_element_states_marking_id"), ["marking_id"], unique=False
        )

    with op.batch_alter_table("findings", schema=None) as batch_op:
        batch_op.add_column(sa.Column("marking_id", sa.Integer(), nullable=True))
        batch_op.create_foreign_key("fk_findings_marking_id", "markings", ["marking_id"], ["id"])


def downgrade() -> None:
    with op.batch_alter_table("findings", schema=None) as batch_op:
        batch_op.drop_constraint("fk_findings_marking_id", type_="foreignkey")
        batch_op.drop_column("marking_id")

    with op.batch_alter_table("element_states", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_element_states_marking_id"))
        batch_op.drop_index(batch_op.f("ix_element_states_dup_of"))
        batch_op.drop_index(batch_op.f("ix_element_states_doc_id"))

    op.drop_table("element_states")
    with op.batch_alter_table("chunks", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_chunks_marking_id"))
        batch_op.drop_index(batch_op.f("ix_chunks_doc_id"))

    op.drop_table("chunks")
