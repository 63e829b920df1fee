"""Evaluation runs: runs, their items' results (transcripts sealed), and the response cache.

Every table is marked and bound like the other marked rows (empty, so nothing to bind).

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-02 04:00:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "eval_runs",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("suite_id", sa.String(length=64), nullable=True),
        sa.Column("suite_ref", sa.String(length=160), nullable=True),
        sa.Column("system", sa.JSON(), nullable=False),
        sa.Column("scorers", sa.JSON(), nullable=False),
        sa.Column("parameters", sa.JSON(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("marking_id", sa.Integer(), nullable=False),
        sa.Column("item_count", sa.Integer(), nullable=False),
        sa.Column("created_by", sa.String(length=128), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("binding", sa.String(length=64), nullable=True),
        sa.ForeignKeyConstraint(["marking_id"], ["markings.id"]),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("eval_runs", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_eval_runs_suite_id"), ["suite_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_eval_runs_marking_id"), ["marking_id"], unique=False)
    op.create_table(
        "eval_run_items",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("run_id", sa.String(length=32), nullable=False),
        sa.Column("item_id", sa.String(length=64), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("marking_id", sa.Integer(), nullable=False),
        sa.Column("scores", sa.JSON(), nullable=False),
        sa.Column("binary", sa.JSON(), nullable=False),
        sa.Column("cluster", sa.String(length=128), nullable=False),
        sa.Column("slices", sa.JSON(), nullable=False),
        sa.Column("latency_ms", sa.Float(), nullable=False),
        sa.Column("tokens", sa.Integer(), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("transcript", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("binding", sa.String(length=64), nullable=True),
        sa.ForeignKeyConstraint(["marking_id"], ["markings.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("run_id", "item_id"),
    )
    with op.batch_alter_table("eval_run_items", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_eval_run_items_run_id"), ["run_id"], unique=False)
        batch_op.create_index(
            batch_op.f("ix_eval_run_items_marking_id"), ["marking_id"], unique=False
        )
    op.create_table(
        "eval_cache",
        sa.Column("key", sa.String(length=64), nullable=False),
        sa.Column("marking_id", sa.Integer(), nullable=False),
        sa.Column("response", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("binding", sa.String(length=64), nullable=True),
        sa.ForeignKeyConstraint(["marking_id"], ["markings.id"]),
        sa.PrimaryKeyConstraint("key"),
    )
    with op.batch_alter_table("eval_cache", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_eval_cache_marking_id"), ["marking_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("eval_cache", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_eval_cache_marking_id"))
    op.drop_table("eval_cache")
    with op.batch_alter_table("eval_run_items", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_eval_run_items_marking_id"))
        batch_op.drop_index(batch_op.f("ix_eval_run_items_run_id"))
    op.drop_table("eval_run_items")
    with op.batch_alter_table("eval_runs", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_eval_runs_marking_id"))
        batch_op.drop_index(batch_op.f("ix_eval_runs_suite_id"))
    op.drop_table("eval_runs")
