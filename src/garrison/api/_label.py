"""Labeling over the API: ``/v1/label/...`` -- projects, the annotator's queue, review, exports.

Thin: each route parses, calls :mod:`garrison.label` and marks the response with the join of
everything in it (``X-Garrison-Marking``). A task or label the caller may not read answers 404,
exactly like one that does not exist.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Request, Security
from fastapi.responses import JSONResponse
from fastapi.security import HTTPAuthorizationCredentials
from pydantic import BaseModel, ConfigDict, Field

from garrison.api._auth import bearer_scheme, session_for
from garrison.api._marking import marked
from garrison.api._paging import (
    DEFAULT_LIMIT,
    CursorQuery,
    LimitQuery,
    PagedList,
    marked_page,
    page_of,
)
from garrison.store.paging import PageSpec
from garrison.store.session import Session

__all__ = ["router"]


def _session(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Security(bearer_scheme)],
) -> Session:
    return session_for(request.app.state.workspace.get(), request, credentials)


SessionDep = Annotated[Session, Depends(_session)]
router = APIRouter(prefix="/v1/label", tags=["label"])

_MARKING = Field(None, max_length=400, description="Marking of what the caller typed.")


class ProjectIn(BaseModel):
    """A new labeling project over a dataset version, or over an evaluation run's failed items
    (``from_eval`` with ``failed``: true; ``task_type`` and ``schema`` then default to the
    suite's classes)."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=128)
    dataset: str | None = Field(
        None, min_length=1, max_length=200, description="NAME, NAME@VERSION or id."
    )
    from_eval: str | None = Field(None, min_length=1, max_length=64, description="RUN-...")
    failed: bool = Field(False, description="With from_eval: the run's failed items.")
    metric: str | None = Field(None, max_length=64, description="With from_eval: the metric.")
    task_type: Literal["classification", "spans", "boxes", "preference", "answer"] | None = None
    label_schema: dict[str, Any] | None = Field(
        None, alias="schema", description="classes, multi, span_types, instructions, examples."
    )
    overlap: int = Field(1, ge=1, le=50)
    gold: str | None = Field(None, max_length=128, description="Record field of known answers.")
    gold_rate: float = Field(0.0, ge=0, le=1)
    calibration: int = Field(0, ge=0)
    calibration_threshold: float = Field(0.8, ge=0, le=1)
    review_rate: float = Field(0.0, ge=0, le=1)
    pause_threshold: float = Field(0.0, ge=0, le=1)
    min_gold: int = Field(5, ge=1)
    marking: str | None = Field(None, max_length=400, description="The project's own marking.")


class PredictionsIn(BaseModel):
    """Pre-labels: ``{"record_id", "value", "score"}`` items, or a registered classifier."""

    model_config = ConfigDict(extra="forbid")

    items: list[dict[str, Any]] | None = Field(None, max_length=200_000)
    classifier: str | None = Field(None, max_length=200)
    marking: str | None = _MARKING


class SubmitIn(BaseModel):
    """A label (or, with ``draft``, a saved draft) on a task handed to the caller."""

    model_config = ConfigDict(extra="forbid")

    value: Any
    marking: str | None = _MARKING
    draft: bool = False


class SkipIn(BaseModel):
    """Skip or flag a task handed to the caller."""

    model_config = ConfigDict(extra="forbid")

    reason: str | None = Field(None, max_length=4000)
    flag: bool = False
    marking: str | None = _MARKING


class FixIn(BaseModel):
    """A reviewer's corrected label."""

    model_config = ConfigDict(extra="forbid")

    value: Any
    marking: str | None = _MARKING


class RejectIn(BaseModel):
    """A rejection and its reason."""

    model_config = ConfigDict(extra="forbid")

    reason: str = Field(min_length=1, max_length=4000)
    marking: str | None = _MARKING


class ExportIn(BaseModel):
    """Export a project's labels as a new dataset version."""

    model_config = ConfigDict(extra="forbid")

    name: str | None = Field(None, max_length=128, description="Default: the project's name.")
    method: str = Field(
        "majority", max_length=16, description="Aggregation: majority or dawid-skene."
    )


@router.get("/projects", response_model=PagedList, summary="Labeling projects")
def list_projects(
    session: SessionDep, limit: LimitQuery = DEFAULT_LIMIT, cursor: CursorQuery = None
) -> JSONResponse:
    from garrison.label import LabelProjects

    projects = [p.to_dict() for p in LabelProjects(session).list()]
    return marked_page(session, page_of(projects, "label-projects", limit, cursor))


@router.post("/projects", summary="Create a labeling project (stewards)")
def create_project(session: SessionDep, body: ProjectIn) -> JSONResponse:
    from garrison.core.errors import InvalidInput
    from garrison.label import LabelProjects

    options: dict[str, Any] = {
        "overlap": body.overlap,
        "gold": body.gold,
        "gold_rate": body.gold_rate,
        "calibration": body.calibration,
        "calibration_threshold": body.calibration_threshold,
        "review_rate": body.review_rate,
        "pause_threshold": body.pause_threshold,
        "min_gold": body.min_gold,
        "marking": body.marking,
    }
    if (body.dataset is None) == (body.from_eval is None):
        raise InvalidInput("Give one of dataset or from_eval (with failed: true).")
    if body.from_eval is not None:
        if not body.failed:
            raise InvalidInput("from_eval labels a run's failed items: set failed to true.")
        from garrison.evaluate import label_failed

        project, found = label_failed(
            session,
            body.name,
            body.from_eval,
            metric=body.metric,
            task_type=body.task_type,
            schema=body.label_schema,
            **options,
        )
        data = project.to_dict()
        keep = ("run", "suite", "metric", "scored", "failed")
        data["from_eval"] = {k: v for k, v in found.to_dict().items() if k in keep}
        return marked(session, data)
    if body.failed or body.metric is not None:
        raise InvalidInput("failed and metric go with from_eval.")
    if body.dataset is None or body.task_type is None or body.label_schema is None:
        raise InvalidInput("A project over a dataset needs task_type and schema.")
    project = LabelProjects(session).create(
        body.name, body.dataset, body.task_type, body.label_schema, **options
    )
    return marked(session, project.to_dict())


@router.get("/projects/{name}", summary="One labeling project")
def show_project(session: SessionDep, name: str) -> JSONResponse:
    from garrison.label import LabelProjects

    return marked(session, LabelProjects(session).get(name).to_dict())


@router.get("/projects/{name}/stats", summary="Progress and annotator quality")
def project_stats(session: SessionDep, name: str) -> JSONResponse:
    from garrison.label import project_stats as stats

    data = stats(session, name)
    # Counts over what the caller may read are marked like the project itself; agreement and
    # aggregation like the replicas they are computed from.
    extra = [data["marking"]] + ([data["labels_marking"]] if data.get("labels_marking") else [])
    return marked(
        session,
        {"stats": {k: v for k, v in data.items() if k not in ("marking", "labels_marking")}},
        extra=extra,
    )


@router.get("/projects/{name}/tasks", response_model=PagedList, summary="A page of tasks (no text)")
def project_tasks(
    session: SessionDep,
    name: str,
    cursor: CursorQuery = None,
    limit: LimitQuery = DEFAULT_LIMIT,
) -> JSONResponse:
    from garrison.label import LabelProjects

    page = LabelProjects(session).task_page(name, PageSpec(limit=limit, cursor=cursor))
    return marked_page(session, page)


@router.get("/projects/{name}/labels", response_model=PagedList, summary="The caller's own labels")
def my_labels(
    session: SessionDep, name: str, limit: LimitQuery = DEFAULT_LIMIT, cursor: CursorQuery = None
) -> JSONResponse:
    from garrison.label import my_labels as mine

    labels = [label.to_dict() for label in mine(session, name)]
    return marked_page(session, page_of(labels, "labels", limit, cursor))


@router.post("/projects/{name}/predictions", summary="Import pre-labels (stewards)")
def import_predictions(session: SessionDep, name: str, body: PredictionsIn) -> JSONResponse:
    from garrison.core.errors import InvalidInput
    from garrison.label import LabelProjects

    projects = LabelProjects(session)
    if (body.items is None) == (body.classifier is None):
        raise InvalidInput("Give one of items or classifier.")
    if body.items is not None:
        count = projects.import_predictions(name, body.items, source="api", marking=body.marking)
    else:
        count = projects.import_classifier(name, str(body.classifier))
    return marked(session, {"project": name, "suggestions": count})


@router.post("/projects/{name}/export", summary="Export labels as a dataset version (stewards)")
def export_project(session: SessionDep, name: str, body: ExportIn) -> JSONResponse:
    from garrison.label import export_dataset

    version = export_dataset(session, name, name=body.name, method=body.method)
    return marked(session, version.to_dict())


@router.post("/projects/{name}/next", summary="The caller's next task")
def next_task(session: SessionDep, name: str) -> JSONResponse:
    from garrison.label import next_task as take

    task = take(session, name)
    return marked(session, {"task": task.to_dict() if task else None})


@router.post("/tasks/{task_id}/submit", summary="Submit or save a label")
def submit(session: SessionDep, task_id: str, body: SubmitIn) -> JSONResponse:
    from garrison.label import submit as submit_label

    label = submit_label(session, task_id, body.value, marking=body.marking, draft=body.draft)
    return marked(session, label.to_dict())


@router.post("/tasks/{task_id}/skip", summary="Skip or flag a task")
def skip(session: SessionDep, task_id: str, body: SkipIn) -> JSONResponse:
    from garrison.label import skip as skip_task

    label = skip_task(session, task_id, body.reason, flag=body.flag, marking=body.marking)
    return marked(session, label.to_dict())


@router.post("/projects/{name}/review/next", summary="The next label to review")
def review_next(session: SessionDep, name: str) -> JSONResponse:
    from garrison.label import next_review

    item = next_review(session, name)
    return marked(session, {"review": item.to_dict() if item else None})


@router.post("/labels/{label_id}/accept", summary="Accept a label")
def review_accept(session: SessionDep, label_id: str) -> JSONResponse:
    from garrison.label import accept

    return marked(session, accept(session, label_id).to_dict())


@router.post("/labels/{label_id}/fix", summary="Fix a label with the reviewer's own")
def review_fix(session: SessionDep, label_id: str, body: FixIn) -> JSONResponse:
    from garrison.label import fix

    return marked(session, fix(session, label_id, body.value, marking=body.marking).to_dict())


@router.post("/labels/{label_id}/reject", summary="Reject a label with a reason")
def review_reject(session: SessionDep, label_id: str, body: RejectIn) -> JSONResponse:
    from garrison.label import reject

    return marked(session, reject(session, label_id, body.reason, marking=body.marking).to_dict())
