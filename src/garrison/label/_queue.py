"""The annotator's queue: next task, drafts, submit, skip and flag.

``next_task`` hands an annotator a task they may read and have no replica of -- a saved draft
first, then (during calibration) the calibration batch, then gold at the project's rate and
production tasks with replicas left, by priority. Handing out claims a replica (a draft), so
overlap holds with several annotators at once; a skip gives the replica back. An annotator sees
only their own labels (blind overlap). A task above them does not exist for them: every call
on it answers like one on a missing task.

A label's marking is the join of its record's and of what the annotator typed (a free-text
answer, a skip reason), which they may mark higher -- never lower: the join cannot go below
the record.
"""

from __future__ import annotations

import hashlib
from typing import Any

from garrison.core.clock import utc_now
from garrison.core.errors import InvalidInput, NotFound
from garrison.label._projects import LabelProject, load_project, project_from_row
from garrison.label._quality import CALIBRATION, after_submit, ensure_standing, refuse_paused
from garrison.label._tasks import LabelView, TaskView, check_value, snapshot_record
from garrison.security.audit import AuditAction
from garrison.security.markings import Marking, join
from garrison.security.policy import Action
from garrison.store import labels as store
from garrison.store.labels import CatalogTransaction as OrmSession
from garrison.store.models import LabelRow, LabelTaskRow
from garrison.store.session import Session

__all__ = ["handed_task", "my_labels", "next_task", "skip", "submit", "task_view"]


def _sampled(key: str, rate: float) -> bool:
    """A deterministic draw at ``rate`` from ``key`` (gold in the stream, review sampling)."""
    if rate <= 0:
        return False
    digest = hashlib.sha256(key.encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64 < rate


def task_view(
    session: Session,
    orm: OrmSession,
    project: LabelProject,
    task: LabelTaskRow,
    marking: Marking,
    *,
    draft: Any = None,
    insider: bool = False,
) -> TaskView:
    """What the reader is shown of a task they may read: the record's text and fields from
    the snapshot, and the suggestion when they may read its marking too."""
    record = snapshot_record(session, project.snapshot, task.record_id)
    suggestion = None
    if task.suggestion is not None and task.suggestion_marking_id is not None:
        readable = session.readable_marking_ids(orm)
        if task.suggestion_marking_id in readable:
            found = session.marking_of(orm, task.suggestion_marking_id)
            if found is not None:
                suggestion = {**task.suggestion, "marking": found.banner()}
    return TaskView(
        task.id,
        project.name,
        project.task_type,
        task.record_id,
        record.text,
        record.fields,
        marking,
        project.schema,
        project.schema_version,
        suggestion=suggestion,
        draft=draft,
        kind=task.kind if insider else None,
    )


def label_view(row: LabelRow, marking: Marking) -> LabelView:
    return LabelView(
        row.id,
        row.task_id,
        row.annotator,
        row.kind,
        row.status,
        row.value,
        marking,
        row.schema_version,
        row.created_at.isoformat(),
        row.submitted_at.isoformat() if row.submitted_at else None,
        row.reason,
        bool(row.flagged),
        row.review_state,
        row.parent_id,
    )


def _claim(
    session: Session, orm: OrmSession, project: LabelProject, annotator: str, state: str
) -> LabelTaskRow | None:
    settings = project.settings
    if state == CALIBRATION:
        task = store.claim_task(
            session, orm, project.id, annotator, kind="calibration", overlap=None
        )
        if task is not None:
            return task
    done = store.replicas_of(session, orm, project.id, annotator)
    order = [("production", settings.overlap), ("gold", None)]
    if _sampled(f"{project.id}\x00{annotator}\x00{done}", settings.gold_rate):
        order.reverse()
    cursor = store.annotator_cursor(orm, project.id, annotator)
    for kind, overlap in order:
        if kind == "production":
            # After the last task handed to them first (what lies behind is mostly theirs),
            # then from the start (replicas released behind it).
            task = None
            if cursor is not None:
                task = store.claim_task(
                    session, orm, project.id, annotator, kind=kind, overlap=overlap, after=cursor
                )
            if task is None:
                task = store.claim_task(
                    session, orm, project.id, annotator, kind=kind, overlap=overlap
                )
            if task is not None:
                store.set_annotator_cursor(
                    orm, project.id, annotator, (float(task.priority), int(task.seq))
                )
        else:
            task = store.claim_task(session, orm, project.id, annotator, kind=kind, overlap=None)
        if task is not None:
            return task
    return None


def next_task(session: Session, project_name: str) -> TaskView | None:
    """The next task for the session's subject in a project (annotators), claimed for them;
    None when nothing they may read is left. A saved draft comes back first."""
    session.require(Action.LABEL, AuditAction.LABEL_TASK, object_id=project_name[:128])
    project = load_project(session, project_name, AuditAction.LABEL_TASK)
    annotator = session.subject.name
    with session.workspace.catalog.transaction() as orm:
        state = ensure_standing(orm, project, annotator)
        refuse_paused(state, project, annotator)
        draft = store.open_draft(session, orm, project.id, annotator)
        if draft is not None:
            found = store.find_task(session, orm, draft.task_id)
            if found is not None:
                held, _, held_marking = found
                view = task_view(session, orm, project, held, held_marking, draft=draft.value)
                session.audit(
                    AuditAction.LABEL_TASK,
                    object_id=held.id,
                    object_marking=held_marking.banner(),
                    details={"project": project.id, "draft": True},
                )
                return view
        task = _claim(session, orm, project, annotator, state)
        if task is None:
            session.audit(AuditAction.LABEL_TASK, object_id=project.id, details={"empty": True})
            return None
        marking = session.marking_of(orm, task.marking_id)
        if marking is None:
            raise NotFound(f"No task {task.id}.")
        store.insert_label(
            orm,
            session,
            task_id=task.id,
            project_id=project.id,
            annotator=annotator,
            kind="annotation",
            status="draft",
            value=None,
            schema_version=project.schema_version,
            marking=marking,
        )
        view = task_view(session, orm, project, task, marking)
        session.audit(
            AuditAction.LABEL_TASK,
            object_id=task.id,
            object_marking=marking.banner(),
            details={"project": project.id},
        )
        return view


def _own_task(
    session: Session, orm: OrmSession, task_id: str, audit_action: AuditAction
) -> tuple[LabelTaskRow, LabelProject, Marking, LabelRow | None]:
    found = store.find_task(session, orm, task_id)
    if found is None:
        session.audit(
            audit_action,
            object_id=task_id[:128],
            decision="deny",
            reason="no such task or not readable",
        )
        raise NotFound(f"No task {task_id}.")
    task, project_row, marking = found
    projects = store.project_rows(session, orm, project_id=project_row.id)
    project = project_from_row(*projects[0])
    mine = [
        row
        for row, _ in store.label_rows(
            session, orm, task_ids=[task_id], annotator=session.subject.name
        )
        if row.kind == "annotation"
    ]
    return task, project, marking, (mine[0] if mine else None)


def _typed_marking(session: Session, base: Marking, marking: str | None) -> Marking:
    """The join of ``base`` and what the subject says they typed (never lower than ``base``)."""
    if marking is None:
        return base
    claimed = session.parse_marking(marking)
    if not session.can_read(claimed):
        raise InvalidInput(f"The marking {claimed.banner()} is above what you may read.")
    return join(base, claimed)


def submit(
    session: Session,
    task_id: str,
    value: Any,
    *,
    marking: str | None = None,
    draft: bool = False,
) -> LabelView:
    """Submit (or, with ``draft``, save) the subject's label on a task handed to them.

    ``marking`` is what the annotator marks anything they typed with (a free-text answer);
    the label is marked with its join with the record's. A submitted label is never changed.
    """
    session.require(Action.LABEL, AuditAction.LABEL_SUBMIT, object_id=task_id[:128])
    with session.workspace.catalog.transaction() as orm:
        task, project, task_marking, label = _own_task(
            session, orm, task_id, AuditAction.LABEL_SUBMIT
        )
        state = ensure_standing(orm, project, session.subject.name)
        refuse_paused(state, project, session.subject.name)
        if label is None or label.status == "skipped":
            raise InvalidInput(f"Task {task_id} is not handed to you: take one with `label next`.")
        if label.status == "submitted":
            raise InvalidInput(f"Your label on task {task_id} is submitted; labels never change.")
        record = snapshot_record(session, project.snapshot, task.record_id)
        canonical = check_value(project.task_type, project.schema, value, record.text)
        current = session.marking_of(orm, label.marking_id) or task_marking
        own = _typed_marking(session, join(task_marking, current), marking)
        label.value = canonical
        label.marking_id = session.intern_marking(orm, own)
        label.schema_version = project.schema_version
        changed: str | None = None
        if not draft:
            label.status = "submitted"
            label.submitted_at = utc_now()
            if task.kind == "production" and _sampled(label.id, project.settings.review_rate):
                label.review_state = "pending"
            orm.flush()
            store.count_submission(orm, task.id)
            changed = after_submit(session, orm, project, task, label)
        orm.flush()
        session.audit(
            AuditAction.LABEL_SUBMIT,
            object_id=label.id,
            object_marking=own.banner(),
            details={
                "project": project.id,
                "task": task.id,
                "schema_version": project.schema_version,
                "draft": draft,
                "standing": changed,
            },
        )
        return label_view(label, own)


def skip(
    session: Session,
    task_id: str,
    reason: str | None = None,
    *,
    flag: bool = False,
    marking: str | None = None,
) -> LabelView:
    """Skip a task handed to the subject (its replica goes back to the queue), or flag it as a
    problem (``flag``, with a reason); the reason is typed text, marked like an answer."""
    action = AuditAction.LABEL_FLAG if flag else AuditAction.LABEL_SKIP
    session.require(Action.LABEL, action, object_id=task_id[:128])
    if flag and not (reason or "").strip():
        raise InvalidInput("A flag needs a reason.")
    with session.workspace.catalog.transaction() as orm:
        task, project, task_marking, label = _own_task(session, orm, task_id, action)
        if label is None or label.status != "draft":
            raise InvalidInput(f"Task {task_id} is not handed to you: take one with `label next`.")
        own = _typed_marking(session, task_marking, marking if reason else None)
        label.status = "skipped"
        label.reason = (reason or "").strip() or None
        label.flagged = flag
        label.value = None
        label.marking_id = session.intern_marking(orm, own)
        orm.flush()
        store.release_claim(
            orm, task.id, project.settings.overlap if task.kind == "production" else 10**9
        )
        session.audit(
            action,
            object_id=label.id,
            object_marking=own.banner(),
            details={"project": project.id, "task": task.id, "flag": flag},
        )
        return label_view(label, own)


def my_labels(session: Session, project_name: str) -> list[LabelView]:
    """The subject's own replicas in a project (never anyone else's), oldest first."""
    session.require(Action.LABEL, AuditAction.LABEL_PROJECT_READ, object_id=project_name[:128])
    project = load_project(session, project_name, AuditAction.LABEL_PROJECT_READ)
    with session.workspace.catalog.transaction() as orm:
        rows = store.label_rows(session, orm, project_id=project.id, annotator=session.subject.name)
        views = [label_view(r, m) for r, m in rows]
    session.audit(
        AuditAction.LABEL_PROJECT_READ, object_id=project.id, details={"labels": len(views)}
    )
    return views


def handed_task(session: Session, task_id: str) -> tuple[TaskView, LabelView]:
    """A task handed to the subject (their own replica on it: a draft, or what they submitted),
    as they see it, and that replica. NotFound -- audited, like a missing task -- for a task
    above them, one not handed to them, or one they skipped. Blind overlap: only the subject's
    own replica is returned, never anyone else's."""
    with session.workspace.catalog.transaction() as orm:
        found = store.find_task(session, orm, task_id)
        mine = None
        if found is not None:
            rows = store.label_rows(
                session, orm, task_ids=[task_id], annotator=session.subject.name
            )
            own = [(r, m) for r, m in rows if r.kind == "annotation" and r.status != "skipped"]
            mine = own[-1] if own else None
        if found is None or mine is None:
            session.audit(
                AuditAction.LABEL_TASK,
                object_id=task_id[:128],
                decision="deny",
                reason="no such task or not handed to the subject",
            )
            raise NotFound(f"No task {task_id}.")
        task, project_row, marking = found
        project = project_from_row(*store.project_rows(session, orm, project_id=project_row.id)[0])
        row, label_marking = mine
        draft = row.value if row.status == "draft" else None
        view = task_view(session, orm, project, task, marking, draft=draft)
        label = label_view(row, label_marking)
    session.audit(
        AuditAction.LABEL_TASK,
        object_id=task_id,
        object_marking=marking.banner(),
        details={"project": project.id, "opened": True},
    )
    return view, label
