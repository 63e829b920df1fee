"""What the labeling pages read beyond the labeling library's calls: a task handed to the
signed-in annotator by id, the image of a box task, and the project's agreement.

Every read goes through the store's access-filtered calls as the signed-in subject, so a task,
label or image above them is missing (the one 404 page). Blind overlap: :func:`handed_task`
returns the subject's own replica only, never anyone else's.
"""

from __future__ import annotations

import io
import json
from collections import defaultdict
from collections.abc import Hashable
from dataclasses import dataclass
from typing import Any

from garrison.core.errors import NotFound
from garrison.core.records import DocumentStatus
from garrison.label import LabelView, TaskView
from garrison.label._projects import project_from_row
from garrison.label._queue import label_view, task_view
from garrison.label._tasks import snapshot_record
from garrison.label.agreement import (
    Estimate,
    krippendorff_alpha,
    match_boxes,
    span_token_units,
    with_interval,
)
from garrison.security.audit import AuditAction
from garrison.security.markings import Marking
from garrison.store import labels as store
from garrison.store.documents import _whole_marking
from garrison.store.models import DocumentRow
from garrison.store.session import Session

__all__ = [
    "Agreement",
    "TaskImage",
    "handed_task",
    "project_agreement",
    "task_image",
    "tasks_marking",
    "under_review",
]

#: Bootstrap resamples behind each interval on the dashboard (a few hundred keep it quick).
RESAMPLES = 300
#: Past this many tasks the interval is bootstrapped on a seeded sample of them (wider, so
#: conservative) while the value is computed on all: a dashboard stays quick on a big project.
MAX_BOOTSTRAP_UNITS = 2000
#: Image types a browser shows as they are; anything else is re-encoded as PNG.
_SHOWN_AS_IS = {"image/png", "image/jpeg", "image/gif", "image/webp"}


def handed_task(session: Session, task_id: str) -> tuple[TaskView, LabelView]:
    """A task handed to the subject (their own replica on it: a draft, or what they submitted),
    as they see it, and that replica. NotFound -- audited, like a missing task -- for a task
    above them, one not handed to them, or one they skipped."""
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


def under_review(session: Session, task_id: str) -> bool:
    """Whether the task holds a label waiting for review that the subject may read and judge
    (a task they did not label themselves): what their review page may show of it."""
    with session.workspace.catalog.transaction() as orm:
        if store.find_task(session, orm, task_id) is None:
            return False
        rows = store.label_rows(session, orm, task_ids=[task_id])
    if any(row.annotator == session.subject.name for row, _ in rows):
        return False
    return any(row.review_state == "pending" for row, _ in rows)


@dataclass(frozen=True)
class TaskImage:
    """The image of a box task, re-encoded for the browser, and what it may hold."""

    data: bytes
    media_type: str
    marking: Marking
    width: int
    height: int


def _readable_task(session: Session, task_id: str) -> tuple[Any, Any, Marking]:
    with session.workspace.catalog.transaction() as orm:
        found = store.find_task(session, orm, task_id)
        if found is None:
            raise NotFound(f"No task {task_id}.")
        task, project_row, marking = found
        project = project_from_row(*store.project_rows(session, orm, project_id=project_row.id)[0])
    return task, project, marking


def _image_marking(session: Session, doc_id: str) -> Marking | None:
    """What the document's original bytes may hold (None for a document not parsed)."""
    with session.workspace.catalog.transaction() as orm:
        row = orm.get(DocumentRow, doc_id)
        if row is None or row.status != DocumentStatus.PARSED.value or row.marking_id is None:
            return None
        return _whole_marking(session, orm, row)


def task_image(session: Session, task_id: str, *, handed: bool) -> TaskImage:
    """The image behind a box task, for a subject who may see the task (``handed``: the
    annotator it was handed to; otherwise the caller checked the subject reviews it) and may
    read everything the image's file may hold (its whole marking: an image whose text was never
    read is system high). NotFound otherwise, audited. The image is decoded, turned upright
    (EXIF orientation, the frame OCR boxes refer to) and re-encoded without its metadata."""
    if handed:
        handed_task(session, task_id)
    task, project, _marking = _readable_task(session, task_id)
    if project.task_type != "boxes":
        raise NotFound(f"No image for task {task_id}.")
    record = snapshot_record(session, project.snapshot, task.record_id)
    whole = _image_marking(session, record.doc_id)
    if whole is None or not session.can_read(whole):
        session.audit(
            AuditAction.LABEL_TASK,
            object_id=task_id[:128],
            decision="deny",
            reason="the task's image holds more than the subject may read",
        )
        raise NotFound(f"No image for task {task_id}.")
    from PIL import Image, ImageOps

    raw = session.workspace.blobs.get(record.doc_id)
    with Image.open(io.BytesIO(raw)) as opened:
        upright = ImageOps.exif_transpose(opened)
        if upright.mode not in ("RGB", "RGBA", "L"):
            upright = upright.convert("RGBA")
        out = io.BytesIO()
        upright.save(out, format="PNG")
        width, height = upright.size
    session.audit(
        AuditAction.LABEL_TASK,
        object_id=task_id,
        object_marking=whole.banner(),
        details={"project": project.id, "image": True, "bytes": len(out.getvalue())},
    )
    return TaskImage(out.getvalue(), "image/png", whole, width, height)


# -- agreement -----------------------------------------------------------------------------------


def _estimate(fn: Any, units: list[Any]) -> Estimate:
    """``fn`` on every unit, with a 95% bootstrap interval (over a sample of them when many)."""
    if len(units) <= MAX_BOOTSTRAP_UNITS:
        return with_interval(fn, units, resamples=RESAMPLES)
    import random

    sample = random.Random(0).sample(units, MAX_BOOTSTRAP_UNITS)  # noqa: S311 -- reproducible, no secret
    interval = with_interval(fn, sample, resamples=RESAMPLES)
    return Estimate(float(fn(units)), interval.low, interval.high, len(units))


@dataclass(frozen=True)
class Agreement:
    """One agreement figure of a project, with its 95% bootstrap interval."""

    name: str
    estimate: Estimate
    units: str

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "units": self.units, **self.estimate.as_dict()}


def _key(task_type: str, value: Any) -> str:
    if task_type == "answer":
        return " ".join(str(value).lower().split())
    return json.dumps(value, sort_keys=True, separators=(",", ":"))


def project_agreement(session: Session, name: str) -> tuple[list[Agreement], Marking | None]:
    """Agreement between the annotators of a project over the submitted replicas the subject
    may read (reviewers and stewards), and the join of those replicas' markings (None when there
    are none): Krippendorff's alpha on the values for every task type, per token for spans, and
    box F1 between the first two replicas at IoU >= 0.5 for boxes. Only tasks with at least two
    replicas count; the interval resamples tasks."""
    from garrison.label._projects import load_project
    from garrison.security.markings import join

    project = load_project(session, name, AuditAction.LABEL_PROJECT_READ)
    with session.workspace.catalog.transaction() as orm:
        rows = store.label_rows(session, orm, project_id=project.id, statuses=["submitted"])
        tasks = {t.id: t for t, _ in store.project_tasks(session, orm, project.id)}
    per_task: dict[str, dict[str, Any]] = defaultdict(dict)
    markings: list[Marking] = []
    for row, marking in rows:
        if row.kind != "annotation" or row.review_state == "rejected" or row.task_id not in tasks:
            continue
        per_task[row.task_id][row.annotator] = row.value
        markings.append(marking)
    units = {t: coders for t, coders in per_task.items() if len(coders) >= 2}
    out: list[Agreement] = []
    if units:
        nominal: list[dict[Hashable, Any]] = [
            {c: _key(project.task_type, v) for c, v in u.items()} for u in units.values()
        ]

        def alpha(sample: list[dict[Hashable, Any]]) -> float:
            return krippendorff_alpha(sample)

        out.append(
            Agreement(
                "Krippendorff's alpha (nominal)",
                _estimate(alpha, nominal),
                f"{len(units)} tasks",
            )
        )
        if project.task_type == "spans":
            out.append(_span_alpha(session, project, units))
        if project.task_type == "boxes":
            out.append(_box_f1(units))
    session.audit(
        AuditAction.LABEL_PROJECT_READ, object_id=project.id, details={"agreement": len(units)}
    )
    return out, (join(*markings) if markings else None)


def _span_alpha(session: Session, project: Any, units: dict[str, dict[str, Any]]) -> Agreement:
    with session.workspace.catalog.transaction() as orm:
        tasks = {t.id: t for t, _ in store.project_tasks(session, orm, project.id)}
    documents = []
    for task_id, coders in units.items():
        text = snapshot_record(session, project.snapshot, tasks[task_id].record_id).text
        spans: dict[Hashable, list[list[Any] | None]] = {
            c: [[(s["start"], s["end"], s["type"]) for s in v]] for c, v in coders.items()
        }
        documents.append(span_token_units([text], spans))

    def alpha(docs: list[list[dict[Any, str]]]) -> float:
        return krippendorff_alpha([u for d in docs for u in d])

    return Agreement(
        "Krippendorff's alpha per token",
        _estimate(alpha, documents),
        f"{len(units)} tasks",
    )


def _box_f1(units: dict[str, dict[str, Any]]) -> Agreement:
    pairs = []
    for coders in units.values():
        first, second = list(coders.values())[:2]
        pairs.append(
            (
                [(b["x"], b["y"], b["w"], b["h"], b["label"]) for b in first],
                [(b["x"], b["y"], b["w"], b["h"], b["label"]) for b in second],
            )
        )

    def f1(sample: list[tuple[list[Any], list[Any]]]) -> float:
        # One list of boxes per image: boxes match only within their own image.
        return match_boxes([p for p, _ in sample], [g for _, g in sample]).f1

    return Agreement(
        "Box F1 between replicas (IoU >= 0.5)",
        _estimate(f1, pairs),
        f"{len(units)} tasks",
    )


def tasks_marking(session: Session, name: str) -> Marking | None:
    """The join of the markings of the project's tasks the subject may read (what its counts
    are counted over); None for a project with none readable."""
    from garrison.label._projects import load_project
    from garrison.security.markings import join

    project = load_project(session, name, AuditAction.LABEL_PROJECT_READ)
    with session.workspace.catalog.transaction() as orm:
        found = {m.banner(): m for _, m in store.project_tasks(session, orm, project.id)}
    return join(*found.values()) if found else None
