"""Labeling: projects, tasks, labels (replicas), reviews and annotators' standing.

Tasks, labels and reviews are marked and bound like every marked row (new tables, nothing to
bind); tasks hold references to dataset records, never their text.

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-02 03:45:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "label_projects",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("name", sa.String(length=128), nullable=False),
        sa.Column("dataset_version_id", sa.String(length=64), nullable=False),
        sa.Column("snapshot", sa.String(length=64), nullable=False),
        sa.Column("task_type", sa.String(length=16), nullable=False),
        sa.Column("schema", sa.JSON(), nullable=False),
        sa.Column("schema_version", sa.Integer(), nullable=False),
        sa.Column("settings", sa.JSON(), nullable=False),
        sa.Column("marking_id", sa.Integer(), nullable=False),
        sa.Column("created_by", sa.String(length=128), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("binding", sa.String(length=64), nullable=True),
        sa.ForeignKeyConstraint(["marking_id"], ["markings.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("name"),
    )
    with op.batch_alter_table("label_projects", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_label_projects_dataset_version_id"), ["dataset_version_id"]
        )
        batch_op.create_index(batch_op.f("ix_label_projects_marking_id"), ["marking_id"])
    op.create_table(
        "label_tasks",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("project_id", sa.String(length=32), nullable=False),
        sa.Column("record_id", sa.String(length=64), nullable=False),
        sa.Column("kind", sa.String(length=12), nullable=False),
        sa.Column("marking_id", sa.Integer(), nullable=False),
        sa.Column("gold", sa.JSON(), nullable=True),
        sa.Column("suggestion", sa.JSON(), nullable=True),
        sa.Column("suggestion_marking_id", sa.Integer(), nullable=True),
        sa.Column("priority", sa.Float(), nullable=False),
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.Column("claimed", sa.Integer(), nullable=False),
        sa.Column("submitted", sa.Integer(), nullable=False),
        sa.Column("open", sa.Boolean(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("binding", sa.String(length=64), nullable=True),
        sa.ForeignKeyConstraint(["marking_id"], ["markings.id"]),
        sa.ForeignKeyConstraint(["suggestion_marking_id"], ["markings.id"]),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("label_tasks", schema=None) as batch_op:
        batch_op.create_index(
            "ix_label_tasks_queue", ["project_id", "kind", "open", "priority", "seq"]
        )
        batch_op.create_index("ix_label_tasks_record", ["project_id", "record_id"])
        batch_op.create_index("ix_label_tasks_page", ["project_id", "seq"])
        batch_op.create_index(
            "ix_label_tasks_counts", ["project_id", "marking_id", "kind", "submitted"]
        )
        batch_op.create_index(batch_op.f("ix_label_tasks_marking_id"), ["marking_id"])
    op.create_table(
        "labels",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("task_id", sa.String(length=32), nullable=False),
        sa.Column("project_id", sa.String(length=32), nullable=False),
        sa.Column("annotator", sa.String(length=128), nullable=False),
        sa.Column("kind", sa.String(length=12), nullable=False),
        sa.Column("status", sa.String(length=12), nullable=False),
        sa.Column("value", sa.JSON(), nullable=True),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("flagged", sa.Boolean(), nullable=False),
        sa.Column("parent_id", sa.String(length=32), nullable=True),
        sa.Column("schema_version", sa.Integer(), nullable=False),
        sa.Column("marking_id", sa.Integer(), nullable=False),
        sa.Column("review_state", sa.String(length=12), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("submitted_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("binding", sa.String(length=64), nullable=True),
        sa.ForeignKeyConstraint(["marking_id"], ["markings.id"]),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("labels", schema=None) as batch_op:
        batch_op.create_index("ix_labels_task_annotator", ["task_id", "annotator"])
        batch_op.create_index("ix_labels_project_annotator", ["project_id", "annotator", "status"])
        batch_op.create_index(
            "ix_labels_project_review", ["project_id", "review_state", "submitted_at"]
        )
        batch_op.create_index(
            "ix_labels_counts", ["project_id", "kind", "annotator", "status", "marking_id"]
        )
        batch_op.create_index(batch_op.f("ix_labels_marking_id"), ["marking_id"])
    op.create_table(
        "label_reviews",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("label_id", sa.String(length=32), nullable=False),
        sa.Column("project_id", sa.String(length=32), nullable=False),
        sa.Column("reviewer", sa.String(length=128), nullable=False),
        sa.Column("verdict", sa.String(length=8), nullable=False),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("fix_label_id", sa.String(length=32), nullable=True),
        sa.Column("marking_id", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("binding", sa.String(length=64), nullable=True),
        sa.ForeignKeyConstraint(["marking_id"], ["markings.id"]),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("label_reviews", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_label_reviews_label_id"), ["label_id"])
        batch_op.create_index(batch_op.f("ix_label_reviews_project_id"), ["project_id"])
        batch_op.create_index(batch_op.f("ix_label_reviews_marking_id"), ["marking_id"])
    op.create_table(
        "label_annotators",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("project_id", sa.String(length=32), nullable=False),
        sa.Column("annotator", sa.String(length=128), nullable=False),
        sa.Column("state", sa.String(length=12), nullable=False),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("cursor_priority", sa.Float(), nullable=True),
        sa.Column("cursor_seq", sa.Integer(), nullable=True),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("project_id", "annotator"),
    )


def downgrade() -> None:
    op.drop_table("label_annotators")
    for table, indexes in (
        (
            "label_reviews",
            [
                "ix_label_reviews_marking_id",
                "ix_label_reviews_project_id",
                "ix_label_reviews_label_id",
            ],
        ),
        (
            "labels",
            [
                "ix_labels_marking_id",
                "ix_labels_counts",
                "ix_labels_project_review",
                "ix_labels_project_annotator",
                "ix_labels_task_annotator",
            ],
        ),
        (
            "label_tasks",
            [
                "ix_label_tasks_marking_id",
                "ix_label_tasks_counts",
                "ix_label_tasks_page",
                "ix_label_tasks_record",
                "ix_label_tasks_queue",
            ],
        ),
        (
            "label_projects",
            ["ix_label_projects_marking_id", "ix_label_projects_dataset_version_id"],
        ),
    ):
        with op.batch_alter_table(table, schema=None) as batch_op:
            for index in indexes:
                batch_op.drop_index(index)
        op.drop_table(table)
