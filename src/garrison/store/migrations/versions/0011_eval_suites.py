"""Evaluation suites: immutable suite versions and one marked, bound row per item.

Adds the ``eval_suites`` and ``eval_suite_items`` tables (bound like every marked row; empty,
so nothing to bind). The items' payloads live sealed in the encrypted blob store.

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-02 03:45:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "eval_suites",
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("name", sa.String(length=128), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("holdout", sa.Boolean(), nullable=False),
        sa.Column("marking_id", sa.Integer(), nullable=False),
        sa.Column("manifest", sa.JSON(), nullable=False),
        sa.Column("item_count", sa.Integer(), nullable=False),
        sa.Column("snapshot", sa.String(length=64), nullable=False),
        sa.Column("created_by", sa.String(length=128), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("binding", sa.String(length=64), nullable=True),
        sa.ForeignKeyConstraint(["marking_id"], ["markings.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("name", "version"),
    )
    with op.batch_alter_table("eval_suites", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_eval_suites_marking_id"), ["marking_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_eval_suites_name"), ["name"], unique=False)
    op.create_table(
        "eval_suite_items",
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("suite_id", sa.String(length=64), nullable=False),
        sa.Column("item_id", sa.String(length=64), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("marking_id", sa.Integer(), nullable=False),
        sa.Column("cluster", sa.String(length=64), nullable=False),
        sa.Column("slices", sa.JSON(), nullable=False),
        sa.Column("binding", sa.String(length=64), nullable=True),
        sa.ForeignKeyConstraint(["marking_id"], ["markings.id"]),
        sa.ForeignKeyConstraint(["suite_id"], ["eval_suites.id"]),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("eval_suite_items", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_eval_suite_items_marking_id"), ["marking_id"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_eval_suite_items_suite_id"), ["suite_id"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("eval_suite_items", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_eval_suite_items_suite_id"))
        batch_op.drop_index(batch_op.f("ix_eval_suite_items_marking_id"))
    op.drop_table("eval_suite_items")
    with op.batch_alter_table("eval_suites", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_eval_suites_name"))
        batch_op.drop_index(batch_op.f("ix_eval_suites_marking_id"))
    op.drop_table("eval_suites")
