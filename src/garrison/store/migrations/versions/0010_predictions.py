"""Predictions: what ``classify`` stages made of elements and chunks, marked and bound.

Adds the ``predictions`` table (bound like every marked row; empty, so nothing to bind) and the
``predict_key`` run key of ``pipeline_docs``.

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-02 00:30:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "predictions",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("item_id", sa.String(length=32), nullable=False),
        sa.Column("item_kind", sa.String(length=8), nullable=False),
        sa.Column("doc_id", sa.String(length=64), nullable=False),
        sa.Column("name", sa.String(length=128), nullable=False),
        sa.Column("model_id", sa.String(length=64), nullable=False),
        sa.Column("label", sa.String(length=256), nullable=False),
        sa.Column("probability", sa.Float(), nullable=False),
        sa.Column("probabilities", sa.JSON(), nullable=False),
        sa.Column("marking_id", sa.Integer(), nullable=False),
        sa.Column("run_id", sa.String(length=32), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("binding", sa.String(length=64), nullable=True),
        sa.ForeignKeyConstraint(["marking_id"], ["markings.id"]),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("predictions", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_predictions_item_id"), ["item_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_predictions_doc_id"), ["doc_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_predictions_name"), ["name"], unique=False)
        batch_op.create_index(batch_op.f("ix_predictions_marking_id"), ["marking_id"], unique=False)
    # A plain ALTER TABLE: adding a nullable column needs no table copy.
    op.add_column("pipeline_docs", sa.Column("predict_key", sa.String(length=64), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("pipeline_docs", schema=None) as batch_op:
        batch_op.drop_column("predict_key")
    with op.batch_alter_table("predictions", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_predictions_marking_id"))
        batch_op.drop_index(batch_op.f("ix_predictions_name"))
        batch_op.drop_index(batch_op.f("ix_predictions_doc_id"))
        batch_op.drop_index(batch_op.f("ix_predictions_item_id"))
    op.drop_table("predictions")
