"""The labeling pages: projects, a project's dashboard, annotation, and the review queue.

- ``/label``: the projects the subject may read.
- ``/label/projects/{name}``: progress; for stewards and reviewers also agreement with 95%
  bootstrap intervals, annotator accuracy on gold with Wilson intervals, and who is paused.
  ``.../start`` (a form post) hands the subject their next task and opens it.
- ``/label/tasks/{id}``: the annotation page of a task handed to the subject (classification,
  spans, boxes, preference or a free-text answer), posting back to itself: submit (then the
  next task opens), save a draft, skip or flag with a reason. ``.../image`` is the image of a
  box task. A task above the subject, or not handed to them, is the one 404 page.
- ``/label/projects/{name}/review``: the oldest label waiting for review, with its task's other
  replicas; ``/label/review/{label_id}`` takes the verdict (accept, fix, reject with a reason).

Every page's banner is the join of what it shows: the task's marking, the subject's own
label's, a suggestion's, the image's whole marking, the replicas' on a review page. The
annotation page never shows another annotator's label (blind overlap). Forms carry the session's
CSRF token; the page script (``static/label.js``) adds the keys, text selection and drawing on
top of the plain forms.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, Response

from garrison.core.errors import InvalidInput, NotFound, NotPermitted
from garrison.label import (
    LabelProjects,
    LabelView,
    TaskView,
    accept,
    fix,
    handed_task,
    my_labels,
    next_review,
    next_task,
    project_agreement,
    project_stats,
    reject,
    resume,
    skip,
    submit,
)
from garrison.security.policy import Action
from garrison.security.subjects import Role
from garrison.web._banner import PageMarkings, banner_style
from garrison.web._core import PREFIX, Viewer, ViewerDep, get_ui, redirect
from garrison.web._label_data import task_image, tasks_marking, under_review
from garrison.web._label_forms import (
    ACTIONS,
    EDITS,
    one,
    parse_action,
    preference_texts,
    record_text,
    span_segments,
    value_from_form,
)
from garrison.web._pages import CEILINGS
from garrison.web._tables import Table, TableArgs, TableQuery, page_rows

__all__ = ["register"]

#: The longest project name, task or label id a page looks up.
_MAX_NAME = 128
_MAX_ID = 64


def _insider(viewer: Viewer) -> bool:
    subject = viewer.session.subject
    return subject.has_role(Role.STEWARD) or subject.has_role(Role.REVIEWER)


def _project_url(name: str) -> str:
    from urllib.parse import quote

    return f"{PREFIX}/label/projects/{quote(name, safe='')}"


def _markings(viewer: Viewer, first: str) -> list[str]:
    """Markings offered for typed text: the record's first, then those the subject may read."""
    session = viewer.session
    readable = [c for c in CEILINGS if session.can_read(session.parse_marking(c))]
    return [first, *(c for c in readable if c != first)]


# -- projects and dashboard ----------------------------------------------------------------------


#: The project table's sortable columns (by name by default).
PROJECT_SORTS: dict[str, Any] = {
    "name": lambda p: p.name,
    "task_type": lambda p: p.task_type,
    "created_by": lambda p: p.created_by,
    "created_at": lambda p: p.created_at,
}


def _projects_page(request: Request, viewer: Viewer, args: TableQuery) -> Response:
    ui = get_ui(request)
    page = PageMarkings(viewer.session)
    found = page_rows(
        LabelProjects(viewer.session).list(),
        "label-projects",
        args,
        ui.settings.page_size,
        record_id=lambda p: p.id,
        sorts=PROJECT_SORTS,
        match=lambda p: p.name,
    )
    projects = [
        {**p.to_dict(), "portion": page.portion(p.marking.banner()), "url": _project_url(p.name)}
        for p in found.items
    ]
    table = Table(f"{PREFIX}/label", found, args, list(PROJECT_SORTS), "name")
    context = {"projects": projects, "table": table}
    return ui.render(request, "label_projects.html", context, page)


def _interval(low: float, high: float) -> str:
    return f"[{low:.2f}, {high:.2f}]"


def _dashboard(
    request: Request, viewer: Viewer, name: str, *, notice: str | None = None, status: int = 200
) -> Response:
    session = viewer.session
    page = PageMarkings(session)
    project = LabelProjects(session).get(name[:_MAX_NAME])  # NotFound: the one 404 page
    page.add(project.marking)
    page.add(tasks_marking(session, project.name))
    stats = project_stats(session, project.name, agreement=False)
    insider = _insider(viewer)
    agreement: list[dict[str, Any]] = []
    annotators: list[dict[str, Any]] = []
    if insider:
        figures, labels_marking = project_agreement(session, project.name)
        page.add(labels_marking)
        for figure in figures:
            e = figure.estimate
            agreement.append(
                {
                    "name": figure.name,
                    "units": figure.units,
                    "value": "n/a" if e.value != e.value else f"{e.value:.3f}",
                    "interval": "" if e.low != e.low else _interval(e.low, e.high),
                }
            )
        for a in stats.get("annotators", []):
            gold = a["gold"]
            annotators.append(
                {
                    **a,
                    "accuracy": "—" if gold["accuracy"] is None else f"{gold['accuracy']:.2f}",
                    "interval": _interval(*gold["interval"]) if gold["answered"] else "",
                    "calibration_accuracy": "—"
                    if a["calibration"]["accuracy"] is None
                    else f"{a['calibration']['accuracy']:.2f}",
                }
            )
    mine: list[LabelView] = []
    if viewer.may(Action.LABEL):
        mine = my_labels(session, project.name)
        for label in mine:
            page.add(label.marking)
    production = stats.get("production") or 0
    context = {
        "project": {**project.to_dict(), "url": _project_url(project.name)},
        "stats": stats,
        "progress": round(100 * stats["complete"] / production) if production else 0,
        "insider": insider,
        "agreement": agreement,
        "annotators": annotators,
        "paused": [a for a in annotators if a["state"] == "paused"],
        "mine": {
            "submitted": sum(1 for m in mine if m.status == "submitted"),
            "drafts": sum(1 for m in mine if m.status == "draft"),
            "skipped": sum(1 for m in mine if m.status == "skipped"),
        },
        "may_label": viewer.may(Action.LABEL),
        "may_review": viewer.may(Action.REVIEW),
        "may_resume": viewer.may(Action.DATASET_CREATE),
        "notice": notice,
    }
    return get_ui(request).render(request, "label_project.html", context, page, status=status)


# -- annotation ----------------------------------------------------------------------------------


def _task_context(viewer: Viewer, page: PageMarkings, task: TaskView, value: Any) -> dict[str, Any]:
    """What an annotation (or fix) form shows of a task, with ``value`` filled in."""
    page.add(task.marking)
    if task.suggestion is not None:
        page.add(str(task.suggestion["marking"]))
    context: dict[str, Any] = {
        "task": task,
        "marking": task.marking.banner(),
        "portion": task.marking.portion(),
        "classes": task.schema.get("classes") or [],
        "span_types": task.schema.get("span_types") or [],
        "instructions": task.schema.get("instructions") or "",
        "examples": task.schema.get("examples") or [],
        "suggestion": task.suggestion,
        "value": value,
        "markings": _markings(viewer, task.marking.banner()),
    }
    if task.task_type == "classification":
        chosen = value if isinstance(value, list) else ([value] if value else [])
        context["chosen"] = chosen
    elif task.task_type == "spans":
        spans = value if isinstance(value, list) else []
        context["spans"] = [
            {
                **s,
                "text": task.text[s["start"] : s["end"]],
                "field": f"{s['start']},{s['end']},{s['type']}",
            }
            for s in spans
        ]
        context["segments"] = span_segments(task.text, spans)
        context["text"] = record_text(task.text)
    elif task.task_type == "boxes":
        boxes = value if isinstance(value, list) else []
        context["boxes"] = [
            {**b, "field": f"{b['x']:g},{b['y']:g},{b['w']:g},{b['h']:g},{b['label']}"}
            for b in boxes
        ]
        exif = (task.fields or {}).get("fields") or {}
        context["exif"] = [
            (str(k), str(v)) for k, v in sorted(exif.items()) if not isinstance(v, dict | list)
        ]
    elif task.task_type == "preference":
        context["a"], context["b"] = preference_texts(task)
    return context


def _image(viewer: Viewer, page: PageMarkings, task: TaskView, *, handed: bool) -> bool:
    """Whether the box task's image may be shown; its whole marking goes on the page."""
    if task.task_type != "boxes":
        return False
    try:
        image = task_image(viewer.session, task.id, handed=handed)
    except NotFound:
        return False
    page.add(image.marking)
    return True


def _annotation_page(
    request: Request,
    viewer: Viewer,
    task_id: str,
    *,
    value: Any = None,
    answer_marking: str | None = None,
    error: str | None = None,
    status: int = 200,
    notice: str | None = None,
) -> Response:
    page = PageMarkings(viewer.session)
    task, label = handed_task(viewer.session, task_id[:_MAX_ID])
    page.add(label.marking)
    shown = value if value is not None else (task.draft if label.status == "draft" else label.value)
    context = _task_context(viewer, page, task, shown)
    context.update(
        label=label,
        label_marking=label.marking.banner(),
        label_class=banner_style(label.marking).css_class,
        answer_marking=answer_marking or label.marking.banner(),
        editable=label.status == "draft",
        image=_image(viewer, page, task, handed=True),
        action_url=f"{PREFIX}/label/tasks/{task.id}",
        project_url=_project_url(task.project),
        error=error,
        notice=notice,
    )
    return get_ui(request).render(
        request, f"label_{task.task_type}.html", context, page, status=status
    )


def _after_submit(viewer: Viewer, project: str) -> Response:
    """The next task of the project, or its dashboard when none is left."""
    try:
        following = next_task(viewer.session, project)
    except NotPermitted:
        if not viewer.may(Action.LABEL):
            raise
        return redirect(_project_url(project) + "?done=paused")
    if following is None:
        return redirect(_project_url(project) + "?done=1")
    return redirect(f"{PREFIX}/label/tasks/{following.id}")


async def _post_task(request: Request, viewer: Viewer, task_id: str) -> Response:
    form = await request.form()
    get_ui(request).check_csrf(viewer, one(form, "csrf"))
    action, index = parse_action(one(form, "action", "submit"), ACTIONS)
    task, _label = handed_task(viewer.session, task_id[:_MAX_ID])
    session = viewer.session
    typed = one(form, "marking").strip() or None
    value: Any = None
    try:
        if action in ("skip", "flag"):
            reason = one(form, "reason").strip() or None
            skip(session, task.id, reason, flag=action == "flag", marking=typed if reason else None)
            return _after_submit(viewer, task.project)
        value = value_from_form(task.task_type, task.schema, form, action, index)
        if action == "submit":
            submit(session, task.id, value, marking=typed)
            return _after_submit(viewer, task.project)
        submit(session, task.id, value, marking=typed, draft=True)
    except NotPermitted as exc:
        if not viewer.may(Action.LABEL):
            raise
        return _annotation_page(
            request, viewer, task.id, value=value, error=exc.message, status=403
        )
    except InvalidInput as exc:
        return _annotation_page(
            request,
            viewer,
            task.id,
            value=value,
            answer_marking=typed,
            error=exc.message,
            status=400,
        )
    return _annotation_page(request, viewer, task.id, notice="Draft saved.")


# -- review --------------------------------------------------------------------------------------


def _review_page(
    request: Request,
    viewer: Viewer,
    name: str,
    *,
    error: str | None = None,
    status: int = 200,
    notice: str | None = None,
    fix_value: Any = None,
) -> Response:
    session = viewer.session
    page = PageMarkings(session)
    project = LabelProjects(session).get(name[:_MAX_NAME])
    page.add(project.marking)
    item = next_review(session, project.name)
    context: dict[str, Any] = {
        "project": {**project.to_dict(), "url": _project_url(project.name)},
        "item": None,
        "insider": _insider(viewer),
        "error": error,
        "notice": notice,
    }
    if item is not None:
        page.add(item.label.marking)
        for other in item.others:
            page.add(other.marking)
        shown_value = item.label.value if fix_value is None else fix_value
        context.update(_task_context(viewer, page, item.task, shown_value))
        context.update(
            item=item,
            label=item.label,
            label_marking=item.label.marking.banner(),
            others=[
                {"label": o, "portion": o.marking.portion(), "shown": _shown(o.value)}
                for o in item.others
            ],
            shown=_shown(item.label.value),
            image=_image(viewer, page, item.task, handed=False),
            action_url=f"{PREFIX}/label/review/{item.label.id}",
            answer_marking=item.label.marking.banner(),
            editable=True,
        )
    return get_ui(request).render(request, "label_review.html", context, page, status=status)


def _shown(value: Any) -> str:
    """A label's value as one line of text."""
    if isinstance(value, list):
        parts = []
        for v in value:
            if isinstance(v, dict) and "start" in v:
                parts.append(f"{v['type']} {v['start']}-{v['end']}")
            elif isinstance(v, dict):
                where = f"{v['x']:g},{v['y']:g} {v['w']:g}×{v['h']:g}"
                parts.append(f"{v['label']} at {where}")
            else:
                parts.append(str(v))
        return "; ".join(parts) or "(none)"
    return "—" if value is None else str(value)


async def _post_review(request: Request, viewer: Viewer, label_id: str) -> Response:
    form = await request.form()
    get_ui(request).check_csrf(viewer, one(form, "csrf"))
    action, index = parse_action(one(form, "action"), ("accept", "fix", "reject", *EDITS))
    project = one(form, "project")[:_MAX_NAME]
    session = viewer.session
    wanted = label_id[:_MAX_ID]
    value: Any = None
    try:
        if action in EDITS:
            found = LabelProjects(session).get(project)
            value = value_from_form(found.task_type, found.schema, form, action, index)
            return _review_page(request, viewer, project, fix_value=value)
        if action == "accept":
            accept(session, wanted)
        elif action == "reject":
            reject(session, wanted, one(form, "reason"), marking=one(form, "marking") or None)
        elif action == "fix":
            if not project:
                raise InvalidInput("A fix names its project.")
            of = LabelProjects(session).get(project)
            value = value_from_form(of.task_type, of.schema, form, "submit")
            fix(session, wanted, value, marking=one(form, "marking") or None)
    except InvalidInput as exc:
        if not project:
            raise
        return _review_page(
            request, viewer, project, error=exc.message, status=400, fix_value=value
        )
    if not project:
        return redirect(f"{PREFIX}/label")
    return redirect(_project_url(project) + "/review?done=" + action)


def register(app: FastAPI) -> None:
    """Add the labeling pages to the UI app."""

    @app.get("/label", response_class=HTMLResponse)
    def projects(request: Request, viewer: ViewerDep, args: TableArgs) -> Response:
        return _projects_page(request, viewer, args)

    @app.get("/label/projects/{name}", response_class=HTMLResponse)
    def dashboard(request: Request, viewer: ViewerDep, name: str, done: str = "") -> Response:
        notice = None
        if done == "1":
            notice = "Nothing is left for you to label in this project."
        elif done == "paused":
            notice = "You are paused in this project; a steward may resume you."
        elif done == "resumed":
            notice = "Resumed."
        return _dashboard(request, viewer, name, notice=notice)

    @app.post("/label/projects/{name}/start", response_class=HTMLResponse)
    async def start(request: Request, viewer: ViewerDep, name: str) -> Response:
        form = await request.form()
        get_ui(request).check_csrf(viewer, one(form, "csrf"))
        project = LabelProjects(viewer.session).get(name[:_MAX_NAME])
        return _after_submit(viewer, project.name)

    @app.post("/label/projects/{name}/resume", response_class=HTMLResponse)
    async def resume_annotator(request: Request, viewer: ViewerDep, name: str) -> Response:
        form = await request.form()
        get_ui(request).check_csrf(viewer, one(form, "csrf"))
        project = LabelProjects(viewer.session).get(name[:_MAX_NAME])
        annotator = one(form, "annotator")[:_MAX_NAME]
        try:
            resume(viewer.session, project.name, annotator)  # stewards; audited
        except InvalidInput as exc:
            return _dashboard(request, viewer, project.name, notice=exc.message, status=400)
        return redirect(_project_url(project.name) + "?done=resumed")

    @app.get("/label/tasks/{task_id}", response_class=HTMLResponse)
    def task_page(request: Request, viewer: ViewerDep, task_id: str) -> Response:
        return _annotation_page(request, viewer, task_id)

    @app.post("/label/tasks/{task_id}", response_class=HTMLResponse)
    async def task_post(request: Request, viewer: ViewerDep, task_id: str) -> Response:
        return await _post_task(request, viewer, task_id)

    @app.get("/label/tasks/{task_id}/image")
    def image(viewer: ViewerDep, task_id: str) -> Response:
        wanted = task_id[:_MAX_ID]
        try:
            found = task_image(viewer.session, wanted, handed=True)
        except NotFound:
            if not viewer.may(Action.REVIEW):
                raise
            if not (_insider(viewer) or under_review(viewer.session, wanted)):
                raise
            found = task_image(viewer.session, wanted, handed=False)
        return Response(
            found.data,
            media_type=found.media_type,
            headers={"X-Garrison-Marking": found.marking.banner(), "Cache-Control": "no-store"},
        )

    @app.get("/label/projects/{name}/review", response_class=HTMLResponse)
    def review(request: Request, viewer: ViewerDep, name: str, done: str = "") -> Response:
        notices = {"accept": "Accepted.", "fix": "Fixed.", "reject": "Rejected."}
        return _review_page(request, viewer, name, notice=notices.get(done))

    @app.post("/label/review/{label_id}", response_class=HTMLResponse)
    async def verdict(request: Request, viewer: ViewerDep, label_id: str) -> Response:
        return await _post_review(request, viewer, label_id)
