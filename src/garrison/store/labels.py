"""Catalog access for labeling: projects, tasks, labels (replicas), reviews, annotators.

Every query that returns marked rows goes through :meth:`Session.readable` on each marking
the row carries (a task: its record's marking; a label: the join of its record's and what the
annotator typed), so a task above a reader does not exist for them: it is never handed out,
counted, listed or named in an error. Whole-row reads verify each row's binding; the few
column reads (counts, exports) select :func:`binding_columns` and keep only the rows
:func:`verify_columns` passes, except the grouped counts, which read no row content and are
restricted by the same filter.

Changes are audited in the transaction that makes them (:meth:`Session._write`): the catalog
commits only once the audit event is on disk.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import and_, case, exists, func, insert, or_, select, update
from sqlalchemy.orm import Session as OrmSession
from sqlalchemy.orm import aliased

from garrison.core.clock import utc_now
from garrison.core.errors import InvalidInput, NotFound
from garrison.security.audit import AuditAction
from garrison.security.markings import Marking
from garrison.store.bindings import binding_columns, verify_columns
from garrison.store.models import (
    LabelAnnotatorRow,
    LabelProjectRow,
    LabelReviewRow,
    LabelRow,
    LabelTaskRow,
)
from garrison.store.session import Session

__all__ = [
    "AnnotatorState",
    "CatalogTransaction",
    "KindCounts",
    "add_project",
    "annotator_labels",
    "annotator_states",
    "claim_task",
    "export_rows",
    "find_task",
    "insert_label",
    "label_counts",
    "label_rows",
    "mark_review",
    "next_pending_label",
    "open_draft",
    "project_rows",
    "release_claim",
    "scored_labels",
    "set_annotator_state",
    "set_priorities",
    "set_suggestions",
    "task_counts",
    "task_page",
    "update_project",
]

#: The catalog transaction the functions here take (capabilities type with it, not SQLAlchemy).
CatalogTransaction = OrmSession

_PART = 500
#: Task kinds, in the order they are shown to a steward.
TASK_KINDS = ("calibration", "gold", "production")


# -- projects ------------------------------------------------------------------------------------


def add_project(
    session: Session,
    *,
    name: str,
    dataset_version_id: str,
    snapshot: str,
    task_type: str,
    schema: dict[str, Any],
    settings: dict[str, Any],
    marking: Marking,
    tasks: Sequence[Mapping[str, Any]],
) -> str:
    """Store a project and its tasks (``record_id``, ``kind``, ``marking``, ``gold``,
    ``priority``) in one transaction, audited ``label.project-create``; returns its id."""
    now = utc_now()
    details = {"name": name, "dataset": dataset_version_id, "tasks": len(tasks)}
    with session._write(
        AuditAction.LABEL_PROJECT_CREATE,
        object_id=name,
        object_marking=marking.banner(),
        details=details,
    ) as orm:
        if orm.scalar(select(LabelProjectRow.id).where(LabelProjectRow.name == name)):
            raise InvalidInput(f"A labeling project named {name!r} already exists.")
        row = LabelProjectRow(
            name=name,
            dataset_version_id=dataset_version_id,
            snapshot=snapshot,
            task_type=task_type,
            schema=schema,
            schema_version=1,
            settings=settings,
            marking_id=session.intern_marking(orm, marking),
            created_by=session.subject.name,
            created_at=now,
        )
        orm.add(row)
        orm.flush()
        project_id = row.id
        rows = [
            {
                "project_id": project_id,
                "record_id": t["record_id"],
                "kind": t["kind"],
                "marking_id": session.intern_marking(orm, t["marking"]),
                "gold": t.get("gold"),
                "suggestion": None,
                "suggestion_marking_id": None,
                "priority": float(t.get("priority", 0.0)),
                "seq": i,
                "claimed": 0,
                "submitted": 0,
                "open": True,
                "created_at": now,
            }
            for i, t in enumerate(tasks)
        ]
        for start in range(0, len(rows), 5000):
            orm.execute(insert(LabelTaskRow), rows[start : start + 5000])
    return project_id


def project_rows(
    session: Session, orm: OrmSession, *, name: str | None = None, project_id: str | None = None
) -> list[tuple[LabelProjectRow, Marking]]:
    """Readable projects (by name or id when given), by name."""
    query = select(LabelProjectRow)
    if name is not None:
        query = query.where(LabelProjectRow.name == name)
    if project_id is not None:
        query = query.where(LabelProjectRow.id == project_id)
    query = session.readable(orm, query, LabelProjectRow.marking_id).order_by(LabelProjectRow.name)
    out = []
    for row in orm.scalars(query):
        marking = session.marking_of(orm, row.marking_id)
        if marking is not None:
            out.append((row, marking))
    return out


def update_project(
    session: Session,
    project_id: str,
    *,
    schema: dict[str, Any],
    marking: Marking,
) -> int:
    """A new schema revision (marked ``marking``); audited; returns the new schema version."""
    with session._write(
        AuditAction.LABEL_PROJECT_CREATE,
        object_id=project_id,
        object_marking=marking.banner(),
        details={"schema_revision": True},
    ) as orm:
        found = project_rows(session, orm, project_id=project_id)
        if not found:
            raise NotFound(f"No labeling project {project_id}.")
        row = found[0][0]
        row.schema = schema
        row.schema_version = row.schema_version + 1
        row.marking_id = session.intern_marking(orm, marking)
        return row.schema_version


# -- tasks ---------------------------------------------------------------------------------------


def find_task(
    session: Session, orm: OrmSession, task_id: str
) -> tuple[LabelTaskRow, LabelProjectRow, Marking] | None:
    """A task the subject may read, with its (readable) project and its marking."""
    query = session.readable(
        orm, select(LabelTaskRow).where(LabelTaskRow.id == task_id), LabelTaskRow.marking_id
    )
    task = orm.scalar(query)
    if task is None:
        return None
    projects = project_rows(session, orm, project_id=task.project_id)
    marking = session.marking_of(orm, task.marking_id)
    if not projects or marking is None:
        return None
    return task, projects[0][0], marking


def claim_task(
    session: Session,
    orm: OrmSession,
    project_id: str,
    annotator: str,
    *,
    kind: str,
    overlap: int | None,
    after: tuple[float, int] | None = None,
) -> LabelTaskRow | None:
    """The first readable task of ``kind`` the annotator has no replica of (open ones only
    when ``overlap`` bounds it), by priority and after the queue position ``after`` when
    given; claimed for them (a draft replica is the caller's to insert)."""
    mine = exists().where(LabelRow.task_id == LabelTaskRow.id, LabelRow.annotator == annotator)
    query = select(LabelTaskRow).where(
        LabelTaskRow.project_id == project_id, LabelTaskRow.kind == kind, ~mine
    )
    if after is not None:
        query = query.where(
            or_(
                LabelTaskRow.priority > after[0],
                and_(LabelTaskRow.priority == after[0], LabelTaskRow.seq > after[1]),
            )
        )
    if overlap is not None:
        query = query.where(LabelTaskRow.open.is_(True))
    query = session.readable(orm, query, LabelTaskRow.marking_id)
    task = orm.scalar(query.order_by(LabelTaskRow.priority, LabelTaskRow.seq).limit(1))
    if task is None:
        return None
    if overlap is not None:
        orm.execute(
            update(LabelTaskRow)
            .where(LabelTaskRow.id == task.id)
            .values(
                claimed=LabelTaskRow.claimed + 1,
                open=LabelTaskRow.claimed + 1 < overlap,
            )
        )
    else:
        orm.execute(
            update(LabelTaskRow)
            .where(LabelTaskRow.id == task.id)
            .values(claimed=LabelTaskRow.claimed + 1)
        )
    return task


def release_claim(orm: OrmSession, task_id: str, overlap: int) -> None:
    """Give a replica slot back (a skip, a rejected label): the task takes one more."""
    orm.execute(
        update(LabelTaskRow)
        .where(LabelTaskRow.id == task_id, LabelTaskRow.claimed > 0)
        .values(claimed=LabelTaskRow.claimed - 1, open=LabelTaskRow.claimed - 1 < overlap)
    )


def count_submission(orm: OrmSession, task_id: str, delta: int = 1) -> None:
    orm.execute(
        update(LabelTaskRow)
        .where(LabelTaskRow.id == task_id)
        .values(submitted=LabelTaskRow.submitted + delta)
    )


@dataclass(frozen=True)
class KindCounts:
    """Readable tasks of one kind: how many, how many have their replicas, replicas submitted."""

    tasks: int
    complete: int
    submitted: int


def task_counts(
    session: Session, orm: OrmSession, project_id: str, overlap: int
) -> dict[str, KindCounts]:
    """Counts over the tasks the subject may read, by kind (nothing else is counted)."""
    query = select(
        LabelTaskRow.kind,
        func.count(),
        func.sum(case((LabelTaskRow.submitted >= overlap, 1), else_=0)),
        func.sum(LabelTaskRow.submitted),
    ).where(LabelTaskRow.project_id == project_id)
    query = session.readable(orm, query, LabelTaskRow.marking_id).group_by(LabelTaskRow.kind)
    return {
        str(kind): KindCounts(int(n), int(done or 0), int(sub or 0))
        for kind, n, done, sub in orm.execute(query)
    }


def task_page(
    session: Session,
    orm: OrmSession,
    project_id: str,
    *,
    after_seq: int = -1,
    limit: int = 50,
    kinds: Sequence[str] | None = None,
) -> list[tuple[LabelTaskRow, Marking]]:
    """One page of readable tasks in creation order, after ``after_seq`` (keyset paging)."""
    query = select(LabelTaskRow).where(
        LabelTaskRow.project_id == project_id, LabelTaskRow.seq > after_seq
    )
    if kinds is not None:
        query = query.where(LabelTaskRow.kind.in_(list(kinds)))
    query = session.readable(orm, query, LabelTaskRow.marking_id)
    out = []
    for row in orm.scalars(query.order_by(LabelTaskRow.seq).limit(limit)):
        marking = session.marking_of(orm, row.marking_id)
        if marking is not None:
            out.append((row, marking))
    return out


def task_seq(orm: OrmSession, task_id: str) -> int:
    """A task's position in its project (the key its pages are cut on)."""
    return int(orm.scalar(select(LabelTaskRow.seq).where(LabelTaskRow.id == task_id)) or 0)


def count_tasks(session: Session, orm: OrmSession, project_id: str) -> int:
    """How many of the project's tasks ``session`` may read (rows whose binding verifies)."""
    from garrison.store.paging import count_rows

    query = select(LabelTaskRow).where(LabelTaskRow.project_id == project_id)
    query = session.readable(orm, query, LabelTaskRow.marking_id)
    return count_rows(orm, query, LabelTaskRow, session.workspace.catalog.binder)


def project_tasks(
    session: Session, orm: OrmSession, project_id: str
) -> list[tuple[LabelTaskRow, Marking]]:
    """Every readable task of a project, in creation order."""
    return task_page(session, orm, project_id, limit=10**9)


def set_suggestions(
    session: Session,
    project_id: str,
    suggestions: Mapping[str, tuple[dict[str, Any], Marking, float | None]],
    *,
    source: str,
) -> int:
    """Attach pre-labels by record id (value and score, marked) to readable tasks, and set
    their priority when given; audited ``label.import``. Returns how many tasks changed."""
    changed = 0
    with session._write(
        AuditAction.LABEL_IMPORT,
        object_id=project_id,
        details={"source": source, "suggestions": len(suggestions)},
    ) as orm:
        records = list(suggestions)
        for start in range(0, len(records), _PART):
            part = records[start : start + _PART]
            query = select(LabelTaskRow).where(
                LabelTaskRow.project_id == project_id, LabelTaskRow.record_id.in_(part)
            )
            for task in orm.scalars(session.readable(orm, query, LabelTaskRow.marking_id)):
                value, marking, priority = suggestions[task.record_id]
                task.suggestion = value
                task.suggestion_marking_id = session.intern_marking(orm, marking)
                if priority is not None:
                    task.priority = priority
                changed += 1
        set_annotator_cursor(orm, project_id, None, None)
    return changed


def set_priorities(session: Session, project_id: str, priorities: Mapping[str, float]) -> int:
    """Reorder readable tasks by record id (lower first); audited. Returns how many changed."""
    changed = 0
    with session._write(
        AuditAction.LABEL_IMPORT,
        object_id=project_id,
        details={"source": "order", "tasks": len(priorities)},
    ) as orm:
        records = list(priorities)
        for start in range(0, len(records), _PART):
            part = records[start : start + _PART]
            query = select(LabelTaskRow.id, LabelTaskRow.record_id).where(
                LabelTaskRow.project_id == project_id, LabelTaskRow.record_id.in_(part)
            )
            for task_id, record_id in orm.execute(
                session.readable(orm, query, LabelTaskRow.marking_id)
            ):
                orm.execute(
                    update(LabelTaskRow)
                    .where(LabelTaskRow.id == task_id)
                    .values(priority=float(priorities[record_id]))
                )
                changed += 1
        set_annotator_cursor(orm, project_id, None, None)
    return changed


# -- labels --------------------------------------------------------------------------------------


def open_draft(
    session: Session, orm: OrmSession, project_id: str, annotator: str
) -> LabelRow | None:
    """The annotator's oldest readable draft in the project (handed out again before new work)."""
    query = select(LabelRow).where(
        LabelRow.project_id == project_id,
        LabelRow.annotator == annotator,
        LabelRow.status == "draft",
    )
    query = session.readable(orm, query, LabelRow.marking_id)
    return orm.scalar(query.order_by(LabelRow.created_at, LabelRow.id).limit(1))


def insert_label(orm: OrmSession, session: Session, **values: Any) -> LabelRow:
    """A new replica row (bound on flush)."""
    marking: Marking = values.pop("marking")
    row = LabelRow(
        marking_id=session.intern_marking(orm, marking),
        created_at=values.pop("created_at", utc_now()),
        flagged=values.pop("flagged", False),
        **values,
    )
    orm.add(row)
    orm.flush()
    return row


def label_rows(
    session: Session,
    orm: OrmSession,
    *,
    project_id: str | None = None,
    task_ids: Iterable[str] | None = None,
    label_id: str | None = None,
    annotator: str | None = None,
    statuses: Sequence[str] | None = None,
) -> list[tuple[LabelRow, Marking]]:
    """Readable labels matching every filter given, oldest first."""
    base = select(LabelRow)
    if project_id is not None:
        base = base.where(LabelRow.project_id == project_id)
    if label_id is not None:
        base = base.where(LabelRow.id == label_id)
    if annotator is not None:
        base = base.where(LabelRow.annotator == annotator)
    if statuses is not None:
        base = base.where(LabelRow.status.in_(list(statuses)))
    parts: list[list[str] | None] = [None]
    if task_ids is not None:
        ids = sorted(set(task_ids))
        parts = [ids[i : i + _PART] for i in range(0, len(ids), _PART)]
    out = []
    for part in parts:
        query = base if part is None else base.where(LabelRow.task_id.in_(part))
        query = session.readable(orm, query, LabelRow.marking_id)
        for row in orm.scalars(query.order_by(LabelRow.created_at, LabelRow.id)):
            marking = session.marking_of(orm, row.marking_id)
            if marking is not None:
                out.append((row, marking))
    return out


def annotator_labels(
    session: Session, orm: OrmSession, project_id: str, annotator: str, kinds: Sequence[str]
) -> list[tuple[LabelRow, LabelTaskRow]]:
    """The annotator's readable submitted labels on readable tasks of ``kinds`` (gold,
    calibration), with their tasks, oldest first."""
    query = (
        select(LabelRow, LabelTaskRow)
        .join(LabelTaskRow, LabelTaskRow.id == LabelRow.task_id)
        .where(
            LabelRow.project_id == project_id,
            LabelRow.annotator == annotator,
            LabelRow.kind == "annotation",
            LabelRow.status == "submitted",
            LabelTaskRow.kind.in_(list(kinds)),
        )
    )
    query = session.readable(orm, query, LabelRow.marking_id, LabelTaskRow.marking_id)
    return [(label, task) for label, task in orm.execute(query.order_by(LabelRow.submitted_at))]


def label_counts(session: Session, orm: OrmSession, project_id: str) -> dict[tuple[str, str], int]:
    """Readable labels by (annotator, status)."""
    query = select(LabelRow.annotator, LabelRow.status, func.count()).where(
        LabelRow.project_id == project_id, LabelRow.kind == "annotation"
    )
    query = session.readable(orm, query, LabelRow.marking_id).group_by(
        LabelRow.annotator, LabelRow.status
    )
    return {(str(a), str(s)): int(n) for a, s, n in orm.execute(query)}


def scored_labels(
    session: Session, orm: OrmSession, project_id: str, kinds: Sequence[str]
) -> list[tuple[str, str, Any, Any]]:
    """Every readable submitted annotation on a readable task of ``kinds`` (gold,
    calibration), as ``(annotator, task kind, value, gold)``, in one query: a column read
    whose label and task bindings are both verified (a row failing either is left out)."""
    query = (
        select(
            *binding_columns(LabelRow, "l_"),
            *binding_columns(LabelTaskRow, "t_"),
            LabelRow.annotator.label("who"),
            LabelRow.value.label("answer"),
            LabelTaskRow.kind.label("task_kind"),
            LabelTaskRow.gold.label("known"),
        )
        .join(LabelTaskRow, LabelTaskRow.id == LabelRow.task_id)
        .where(
            LabelRow.project_id == project_id,
            LabelRow.kind == "annotation",
            LabelRow.status == "submitted",
            LabelTaskRow.kind.in_(list(kinds)),
        )
    )
    query = session.readable(orm, query, LabelRow.marking_id, LabelTaskRow.marking_id)
    good = _verify_labels_and_tasks(session, list(orm.execute(query)))
    return [(r.who, r.task_kind, r.answer, r.known) for r in good]


def review_counts(session: Session, orm: OrmSession, project_id: str) -> dict[str, int]:
    """Readable submitted labels by review state (``pending``, ``accepted``, ...)."""
    query = select(LabelRow.review_state, func.count()).where(
        LabelRow.project_id == project_id,
        LabelRow.status == "submitted",
        LabelRow.kind == "annotation",  # a reviewer's fix is not itself under review
        LabelRow.review_state.is_not(None),
    )
    query = session.readable(orm, query, LabelRow.marking_id).group_by(LabelRow.review_state)
    return {str(state): int(n) for state, n in orm.execute(query)}


def replicas_of(
    session: Session, orm: OrmSession, project_id: str, annotator: str, kind: str | None = None
) -> int:
    """How many readable replicas (of any status; of ``kind`` when given) the annotator has in
    the project."""
    query = (
        select(func.count())
        .select_from(LabelRow)
        .where(LabelRow.project_id == project_id, LabelRow.annotator == annotator)
    )
    if kind is not None:
        query = query.where(LabelRow.kind == kind)
    return int(orm.scalar(session.readable(orm, query, LabelRow.marking_id)) or 0)


def next_pending_label(
    session: Session, orm: OrmSession, project_id: str, reviewer: str
) -> LabelRow | None:
    """The oldest readable label sampled for review on a task the reviewer has no replica of
    (so a reviewer never judges, or sees beside their own, a label on a task they labeled)."""
    theirs = aliased(LabelRow)
    own = exists().where(
        theirs.task_id == LabelRow.task_id,
        theirs.annotator == reviewer,
        theirs.kind == "annotation",
    )
    query = select(LabelRow).where(
        LabelRow.project_id == project_id,
        LabelRow.review_state == "pending",
        ~own,
    )
    query = session.readable(orm, query, LabelRow.marking_id)
    return orm.scalar(query.order_by(LabelRow.submitted_at, LabelRow.id).limit(1))


def mark_review(
    orm: OrmSession,
    session: Session,
    *,
    label: LabelRow,
    verdict: str,
    reason: str | None,
    fix_label_id: str | None,
    marking: Marking,
) -> LabelReviewRow:
    """Record a verdict and the label's new review state (its value is never touched)."""
    state = {"accept": "accepted", "fix": "fixed", "reject": "rejected"}[verdict]
    orm.execute(update(LabelRow).where(LabelRow.id == label.id).values(review_state=state))
    review = LabelReviewRow(
        label_id=label.id,
        project_id=label.project_id,
        reviewer=session.subject.name,
        verdict=verdict,
        reason=reason,
        fix_label_id=fix_label_id,
        marking_id=session.intern_marking(orm, marking),
        created_at=utc_now(),
    )
    orm.add(review)
    orm.flush()
    return review


def review_rows(
    session: Session, orm: OrmSession, project_id: str
) -> list[tuple[LabelReviewRow, Marking]]:
    """Readable reviews of a project, oldest first."""
    query = select(LabelReviewRow).where(LabelReviewRow.project_id == project_id)
    query = session.readable(orm, query, LabelReviewRow.marking_id)
    out = []
    for row in orm.scalars(query.order_by(LabelReviewRow.created_at)):
        marking = session.marking_of(orm, row.marking_id)
        if marking is not None:
            out.append((row, marking))
    return out


def _verify_labels_and_tasks(session: Session, rows: list[Any]) -> list[Any]:
    """The rows of a label-and-task column read whose label part and task part both verify.

    Every label's binding is recomputed. A task's columns are the same in every row of its
    labels (one task row, joined once per label, within one statement): its binding is
    recomputed once, on the first row carrying that task id and stored binding, and that
    verdict stands for the task's other rows -- each task is still verified in full.
    """
    binder = session.workspace.catalog.binder
    firsts: dict[tuple[Any, Any], Any] = {}
    for row in rows:
        firsts.setdefault((row.t_id, row.t_binding), row)
    tasks_ok = {
        (r.t_id, r.t_binding) for r in verify_columns(binder, firsts.values(), (LabelTaskRow, "t_"))
    }
    labels_ok = verify_columns(binder, rows, (LabelRow, "l_"))
    return [r for r in labels_ok if (r.t_id, r.t_binding) in tasks_ok]


def export_rows(session: Session, orm: OrmSession, project_id: str) -> list[dict[str, Any]]:
    """Every readable submitted label of a project on a readable task, as plain values
    (``record_id``, ``task_kind``, ``annotator``, ``kind``, ``value``, ``marking_id``,
    ``schema_version``, ``review_state``, ``parent_id``, ``submitted_at``), in task order.

    A column read for speed: both rows' bindings are recomputed and a row that fails either is
    left out (and reported).
    """
    query = (
        select(
            *binding_columns(LabelRow, "l_"),
            *binding_columns(LabelTaskRow, "t_"),
            LabelRow.review_state.label("review_state"),
            LabelRow.submitted_at.label("submitted_at"),
            LabelTaskRow.seq.label("seq"),
        )
        .join(LabelTaskRow, LabelTaskRow.id == LabelRow.task_id)
        .where(LabelRow.project_id == project_id, LabelRow.status == "submitted")
    )
    query = session.readable(orm, query, LabelRow.marking_id, LabelTaskRow.marking_id)
    rows = list(orm.execute(query.order_by(LabelTaskRow.seq, LabelRow.submitted_at, LabelRow.id)))
    good = _verify_labels_and_tasks(session, rows)
    return [
        {
            "id": r.l_id,
            "record_id": r.t_record_id,
            "task_id": r.t_id,
            "task_kind": r.t_kind,
            "gold": r.t_gold,
            "annotator": r.l_annotator,
            "kind": r.l_kind,
            "value": r.l_value,
            "marking_id": r.l_marking_id,
            "schema_version": r.l_schema_version,
            "review_state": r.review_state,
            "parent_id": r.l_parent_id,
            "submitted_at": r.submitted_at,
        }
        for r in good
    ]


# -- annotators ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class AnnotatorState:
    """An annotator's standing in a project."""

    annotator: str
    state: str
    reason: str | None
    updated_at: datetime


def annotator_states(orm: OrmSession, project_id: str) -> dict[str, AnnotatorState]:
    """Standing by annotator (unmarked: it says how a person is doing, not what they read)."""
    query = select(LabelAnnotatorRow).where(LabelAnnotatorRow.project_id == project_id)
    return {
        r.annotator: AnnotatorState(r.annotator, r.state, r.reason, r.updated_at)
        for r in orm.scalars(query)
    }


def annotator_cursor(orm: OrmSession, project_id: str, annotator: str) -> tuple[float, int] | None:
    """Where the annotator's last production task stood in the queue (None: the start)."""
    row = orm.execute(
        select(LabelAnnotatorRow.cursor_priority, LabelAnnotatorRow.cursor_seq).where(
            LabelAnnotatorRow.project_id == project_id, LabelAnnotatorRow.annotator == annotator
        )
    ).first()
    if row is None or row[0] is None or row[1] is None:
        return None
    return float(row[0]), int(row[1])


def set_annotator_cursor(
    orm: OrmSession, project_id: str, annotator: str | None, cursor: tuple[float, int] | None
) -> None:
    """Move one annotator's queue position (or, with ``annotator`` None, reset everyone's:
    the order changed)."""
    query = update(LabelAnnotatorRow).where(LabelAnnotatorRow.project_id == project_id)
    if annotator is not None:
        query = query.where(LabelAnnotatorRow.annotator == annotator)
    orm.execute(
        query.values(
            cursor_priority=cursor[0] if cursor else None, cursor_seq=cursor[1] if cursor else None
        )
    )


def set_annotator_state(
    orm: OrmSession, project_id: str, annotator: str, state: str, reason: str | None
) -> None:
    """Set (or create) an annotator's standing, in ``orm``'s transaction."""
    row = orm.scalar(
        select(LabelAnnotatorRow).where(
            LabelAnnotatorRow.project_id == project_id, LabelAnnotatorRow.annotator == annotator
        )
    )
    if row is None:
        row = LabelAnnotatorRow(project_id=project_id, annotator=annotator)
        orm.add(row)
    row.state = state
    row.reason = reason
    row.updated_at = utc_now()
    orm.flush()
