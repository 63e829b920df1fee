"""The reviewer queue: accept, fix or reject sampled labels, with every replica kept.

Submitted production labels are sampled into the queue at the project's ``review_rate``. A
reviewer sees a pending label with every other replica of its task they may read (review is
where blindness ends) -- never a task they labeled themselves. ``accept`` keeps the label,
``fix`` adds the reviewer's own label (kind ``fix``, its ``parent_id`` the label fixed) and
``reject`` (with a reason) returns the replica slot to the queue; the reviewed label's value
is never changed. Every verdict is audited (``label.review``).

Whether a task is gold stays hidden from anyone who might label it: annotators hold the review
action too, and a reviewer who has labeled in the project is labeling there. The review item
names a task's kind (gold, calibration, production) only to stewards and to reviewers with no
replica of their own in the project (:func:`sees_gold`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from garrison.core.clock import utc_now
from garrison.core.errors import InvalidInput, NotFound
from garrison.label._projects import LabelProject, load_project, project_from_row
from garrison.label._queue import _typed_marking, label_view, task_view
from garrison.label._tasks import LabelView, TaskView, check_value, snapshot_record
from garrison.security.audit import AuditAction
from garrison.security.markings import join
from garrison.security.policy import Action
from garrison.store import labels as store
from garrison.store.models import LabelRow
from garrison.store.session import Session

__all__ = ["ReviewItem", "accept", "fix", "next_review", "reject", "task_labels"]

VERDICTS = ("accept", "fix", "reject")


@dataclass(frozen=True)
class ReviewItem:
    """A label to review, its task, and the task's other readable replicas."""

    label: LabelView
    task: TaskView
    others: list[LabelView]

    def to_dict(self) -> dict[str, Any]:
        marking = join(self.label.marking, self.task.marking, *(o.marking for o in self.others))
        return {
            "label": self.label.to_dict(),
            "task": self.task.to_dict(),
            "others": [o.to_dict() for o in self.others],
            "marking": marking.banner(),
        }


def sees_gold(session: Session, orm: Any, project: LabelProject) -> bool:
    """Whether the subject may be told which of the project's tasks are gold: stewards (and
    the system), and reviewers who have annotated nothing in the project (a fix is
    not an annotation); never annotators."""
    from garrison.security.subjects import Role

    roles = session.subject.roles
    if session.subject.is_system or Role.STEWARD in roles:
        return True
    if Role.REVIEWER not in roles:
        return False
    return store.replicas_of(session, orm, project.id, session.subject.name, "annotation") == 0


def next_review(session: Session, project_name: str) -> ReviewItem | None:
    """The oldest pending label the reviewer may read, on a task they did not label."""
    session.require(Action.REVIEW, AuditAction.LABEL_REVIEW, object_id=project_name[:128])
    project = load_project(session, project_name, AuditAction.LABEL_REVIEW)
    with session.workspace.catalog.transaction() as orm:
        label = store.next_pending_label(session, orm, project.id, session.subject.name)
        if label is None:
            return None
        found = store.find_task(session, orm, label.task_id)
        marking = session.marking_of(orm, label.marking_id)
        if found is None or marking is None:
            return None
        task, _, task_marking = found
        insider = sees_gold(session, orm, project)
        view = task_view(session, orm, project, task, task_marking, insider=insider)
        others = [
            label_view(r, m)
            for r, m in store.label_rows(session, orm, task_ids=[task.id], statuses=["submitted"])
            if r.id != label.id
        ]
        item = ReviewItem(label_view(label, marking), view, others)
    session.audit(
        AuditAction.LABEL_REVIEW,
        object_id=label.id,
        object_marking=marking.banner(),
        details={"project": project.id, "read": True},
    )
    return item


def task_labels(session: Session, task_id: str) -> list[LabelView]:
    """Every readable submitted replica of a task (reviewers and stewards)."""
    session.require(Action.REVIEW, AuditAction.LABEL_REVIEW, object_id=task_id[:128])
    with session.workspace.catalog.transaction() as orm:
        if store.find_task(session, orm, task_id) is None:
            raise NotFound(f"No task {task_id}.")
        rows = store.label_rows(session, orm, task_ids=[task_id], statuses=["submitted"])
        return [label_view(r, m) for r, m in rows]


def _verdict(
    session: Session,
    label_id: str,
    verdict: str,
    *,
    value: Any = None,
    reason: str | None = None,
    marking: str | None = None,
) -> LabelView:
    session.require(Action.REVIEW, AuditAction.LABEL_REVIEW, object_id=label_id[:128])
    if verdict == "reject" and not (reason or "").strip():
        raise InvalidInput("A rejection needs a reason.")
    with session.workspace.catalog.transaction() as orm:
        rows = store.label_rows(session, orm, label_id=label_id, statuses=["submitted"])
        found = store.find_task(session, orm, rows[0][0].task_id) if rows else None
        if not rows or found is None:
            session.audit(
                AuditAction.LABEL_REVIEW,
                object_id=label_id[:128],
                decision="deny",
                reason="no such label or not readable",
            )
            raise NotFound(f"No label {label_id}.")
        label, label_marking = rows[0]
        task, project_row, task_marking = found
        project: LabelProject = project_from_row(
            *store.project_rows(session, orm, project_id=project_row.id)[0]
        )
        if label.annotator == session.subject.name:
            raise InvalidInput("A reviewer does not review their own label.")
        if label.review_state not in (None, "pending"):
            raise InvalidInput(f"Label {label_id} is already reviewed ({label.review_state}).")
        base = join(label_marking, task_marking)
        own = _typed_marking(session, base, marking)
        fix_id: str | None = None
        result: LabelRow = label
        result_marking = label_marking
        if verdict == "fix":
            record = snapshot_record(session, project.snapshot, task.record_id)
            canonical = check_value(project.task_type, project.schema, value, record.text)
            fixed = store.insert_label(
                orm,
                session,
                task_id=task.id,
                project_id=project.id,
                annotator=session.subject.name,
                kind="fix",
                status="submitted",
                value=canonical,
                parent_id=label.id,
                schema_version=project.schema_version,
                marking=own,
                submitted_at=utc_now(),
                review_state="accepted",
            )
            fix_id, result, result_marking = fixed.id, fixed, own
        elif verdict == "reject":
            store.release_claim(orm, task.id, project.settings.overlap)
            store.count_submission(orm, task.id, -1)
        store.mark_review(
            orm,
            session,
            label=label,
            verdict=verdict,
            reason=(reason or "").strip() or None,
            fix_label_id=fix_id,
            marking=own,
        )
        orm.flush()
        session.audit(
            AuditAction.LABEL_REVIEW,
            object_id=label.id,
            object_marking=own.banner(),
            details={"project": project.id, "verdict": verdict, "fix": fix_id},
        )
        orm.refresh(result)
        return label_view(result, result_marking)


def accept(session: Session, label_id: str) -> LabelView:
    """Accept a submitted label (reviewers)."""
    return _verdict(session, label_id, "accept")


def fix(session: Session, label_id: str, value: Any, *, marking: str | None = None) -> LabelView:
    """Correct a label with the reviewer's own (a new replica; the original is kept)."""
    return _verdict(session, label_id, "fix", value=value, marking=marking)


def reject(
    session: Session, label_id: str, reason: str, *, marking: str | None = None
) -> LabelView:
    """Reject a label with a reason: its task takes another replica."""
    return _verdict(session, label_id, "reject", reason=reason, marking=marking)
