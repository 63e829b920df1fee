"""Incremental pipeline runs: per-document run keys, cached dedup features (MinHash signature,
text hash, word count), and an index
on document locations' URIs (to find what new bytes at a known location supersede).

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-27 01:40:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "pipeline_docs",
        sa.Column("doc_id", sa.String(length=64), nullable=False),
        sa.Column("pipeline", sa.String(length=64), nullable=False),
        sa.Column("head_key", sa.String(length=64), nullable=True),
        sa.Column("tail_key", sa.String(length=64), nullable=True),
        sa.Column("indexed", sa.Boolean(), nullable=False),
        sa.Column("job_id", sa.String(length=32), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("doc_id"),
    )
    with op.batch_alter_table("element_states", schema=None) as batch_op:
        batch_op.add_column(sa.Column("minhash_key", sa.String(length=32), nullable=True))
        batch_op.add_column(sa.Column("minhash", sa.LargeBinary(), nullable=True))
        batch_op.add_column(sa.Column("text_hash", sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column("word_count", sa.Integer(), nullable=True))
    with op.batch_alter_table("document_locations", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_document_locations_uri"), ["uri"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("document_locations", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_document_locations_uri"))
    with op.batch_alter_table("element_states", schema=None) as batch_op:
        batch_op.drop_column("word_count")
        batch_op.drop_column("text_hash")
        batch_op.drop_column("minhash")
        batch_op.drop_column("minhash_key")
    op.drop_table("pipeline_docs")
