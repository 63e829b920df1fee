"""What the labeling pages read beyond the labeling library's calls: the image of a box task,
whether a task is under review, and the markings the counts are taken over.

Every read goes through the store's access-filtered calls as the signed-in subject, so a task,
label or image above them is missing (the one 404 page). A task handed to the
annotator by id, and the project's agreement, come from the labeling library.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from typing import Any

from garrison.core.errors import NotFound
from garrison.core.records import DocumentStatus
from garrison.label import handed_task
from garrison.label._projects import project_from_row
from garrison.label._tasks import snapshot_record
from garrison.security.audit import AuditAction
from garrison.security.markings import Marking
from garrison.store import labels as store
from garrison.store.documents import _whole_marking
from garrison.store.models import DocumentRow
from garrison.store.session import Session

__all__ = [
    "TaskImage",
    "task_image",
    "tasks_marking",
    "under_review",
]

#: Image types a browser shows as they are; anything else is re-encoded as PNG.
_SHOWN_AS_IS = {"image/png", "image/jpeg", "image/gif", "image/webp"}


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


def tasks_marking(session: Session, name: str) -> Marking | None:
    """The join of the markings of the project's tasks the subject may read (what its counts
    are counted over); None for a project with none readable."""
    from garrison.label._projects import load_project
    from garrison.security.markings import join

    project = load_project(session, name, AuditAction.LABEL_PROJECT_READ)
    with session.workspace.catalog.transaction() as orm:
        found = {m.banner(): m for _, m in store.project_tasks(session, orm, project.id)}
    return join(*found.values()) if found else None
