"""The Evaluations pages: runs, a run's report, one item's transcript, and two runs compared.

- ``/eval``: the runs the subject may read, newest first, in pages, and the compare form (two
  run references and an optional metric);
- ``/eval/runs/{ref}``: the run's report (every figure with its interval and n, the figures
  drawn inline) and its items, each under its own marking;
- ``/eval/runs/{ref}/items/{item}``: one item's transcript (item, context, response), marked
  item-join-response;
- ``/eval/compare?a=&b=&metric=``: the paired differences of two runs with the gate's verdicts.

Everything is read through :class:`garrison.evaluate.Runs` as the signed-in subject: a run whose
marking the subject does not dominate is not listed and answers like a missing one (the one 404
page), and so does a transcript the subject may not read; an item the subject may not read is
not on the page at all (no row, no link). The banner is the join of everything the page shows:
every listed run's marking, the report's (which dominates its items'), the transcript's. The
report's sections come from :func:`garrison.evaluate.report.report_body`, which escapes every
text; its figures are SVG images in ``data:`` URIs, which the page's Content-Security-Policy
allows and which can run nothing.
"""

from __future__ import annotations

import json
from typing import Annotated, Any

from fastapi import FastAPI, Query, Request
from fastapi.responses import HTMLResponse, Response
from markupsafe import Markup

from garrison.core.errors import InvalidInput
from garrison.evaluate import Runs, RunSummary, SystemSpec
from garrison.evaluate.report import report_body
from garrison.web._banner import PageMarkings
from garrison.web._core import PREFIX, Viewer, ViewerDep, get_ui
from garrison.web._tables import Table, TableArgs, TableQuery, page_rows

__all__ = ["register", "run_row", "transcript_parts"]

#: The longest run reference, item id or metric name a page looks up.
MAX_REF = 128
#: Items shown per page of a run's item list.
ITEMS_PER_PAGE = 50


def _system_label(system: dict[str, Any]) -> str:
    """The system as ``parse_system`` reads it (``assistant:k=8``), else its kind."""
    try:
        return SystemSpec.from_dict(system).label()
    except (KeyError, TypeError, ValueError, InvalidInput):
        return str(system.get("ref") or system.get("kind") or "system")


def run_row(summary: RunSummary, page: PageMarkings) -> dict[str, Any]:
    """A run as a row of the runs list (its marking recorded on the page)."""
    counts = summary.counts
    return {
        "ref": summary.ref,
        "portion": page.portion(summary.marking.banner()),
        "kind": summary.kind,
        "suite": summary.suite or "—",
        "system": _system_label(summary.system),
        "status": summary.status,
        "scored": counts.get("scored", 0),
        "not_eligible": counts.get("not-eligible", 0),
        "errors": counts.get("error", 0),
        "created_by": summary.created_by,
        "created_at": summary.created_at.isoformat(),
    }


def _label(key: str) -> str:
    text = key.replace("_", " ").replace("-", " ").strip()
    return text[:1].upper() + text[1:]


def transcript_parts(transcript: dict[str, Any]) -> list[dict[str, str]]:
    """A transcript's parts (item, context, response...) as labelled JSON blocks; the run,
    item id and marking are shown by the page itself."""
    parts = []
    for key, value in transcript.items():
        if key in ("run", "item_id", "marking"):
            continue
        if isinstance(value, str):
            text = value
        else:
            text = json.dumps(value, indent=2, sort_keys=True, ensure_ascii=False, default=str)
        parts.append({"label": _label(key), "text": text})
    return parts


#: The run table's sortable columns (newest first by default).
RUN_SORTS: dict[str, Any] = {
    "newest": None,
    "status": lambda r: r.status,
    "suite": lambda r: r.suite or "",
    "created_by": lambda r: r.created_by,
}


def _runs_page(request: Request, viewer: Viewer, args: TableQuery) -> Response:
    ui = get_ui(request)
    marks = PageMarkings(viewer.session)
    runs = Runs(viewer.session).list()  # newest first, only runs the subject dominates; audited
    found = page_rows(
        runs,
        "eval-runs",
        args,
        ui.settings.page_size,
        record_id=lambda r: r.id,
        sorts=RUN_SORTS,
        match=lambda r: f"{r.ref} {r.suite or ''}",
    )
    shown = found.items
    # the compare form offers every readable run, so every run's marking is on the page
    for summary in runs:
        marks.add(summary.marking)
    context = {
        "runs": [run_row(r, marks) for r in shown],
        "refs": [r.ref for r in runs],
        "total": found.total,
        "table": Table(f"{PREFIX}/eval", found, args, list(RUN_SORTS), "newest"),
    }
    return ui.render(request, "eval_runs.html", context, marks)


def _item_rows(
    viewer: Viewer, ref: str, marks: PageMarkings, page_no: int
) -> tuple[list[dict[str, Any]], int]:
    results = list(Runs(viewer.session).items(ref))  # only items the subject may read
    shown = results[(page_no - 1) * ITEMS_PER_PAGE : page_no * ITEMS_PER_PAGE]
    rows = []
    for result in shown:
        rows.append(
            {
                "id": result.item_id,
                "portion": marks.portion(result.marking.banner()),
                "status": result.status,
                "scores": ", ".join(f"{k} {v:.3f}" for k, v in sorted(result.scores.items())),
                "latency_ms": f"{result.latency_ms:.0f}",
                "error": result.error or "",
            }
        )
    return rows, len(results)


def _run_page(request: Request, viewer: Viewer, ref: str, page_no: int) -> Response:
    marks = PageMarkings(viewer.session)
    runs = Runs(viewer.session)
    summary = runs.get(ref[:MAX_REF])  # NotFound (the one 404 page) when not readable
    report = runs.report(summary.ref)
    marks.add(report.marking)
    items, total = _item_rows(viewer, summary.ref, marks, page_no)
    context = {
        "run": run_row(summary, marks),
        "report_title": report.title,
        "report": Markup(report_body(report, images=True)),  # noqa: S704 - escaped by the renderer
        "items": items,
        "items_total": total,
        "page_no": page_no,
        "has_next": page_no * ITEMS_PER_PAGE < total,
    }
    return get_ui(request).render(request, "eval_run.html", context, marks)


def _transcript_page(request: Request, viewer: Viewer, ref: str, item: str) -> Response:
    marks = PageMarkings(viewer.session)
    runs = Runs(viewer.session)
    summary = runs.get(ref[:MAX_REF])
    transcript = runs.transcript(summary.ref, item[:MAX_REF])  # NotFound when not readable
    # The page shows the transcript under its own marking (item joined with response); the
    # run appears only by its reference, none of its results.
    context = {
        "run": {"ref": summary.ref},
        "item_id": transcript.get("item_id", item),
        "portion": marks.portion(str(transcript["marking"])),
        "marking": transcript["marking"],
        "parts": transcript_parts(transcript),
    }
    return get_ui(request).render(request, "eval_transcript.html", context, marks)


def _compare_page(request: Request, viewer: Viewer, a: str, b: str, metric: str) -> Response:
    marks = PageMarkings(viewer.session)
    form = {"a": a, "b": b, "metric": metric}
    context: dict[str, Any] = {"form": form, "report": None, "error": None}
    status = 200
    if a and b:
        runs = Runs(viewer.session)
        try:
            report = runs.compare(a[:MAX_REF], b[:MAX_REF], metrics=[metric] if metric else None)
        except InvalidInput as exc:
            context["error"] = exc.message
            status = 400
        else:
            marks.add(report.marking)
            # the differences only; each run's own report is one link away
            body = report_body(report, images=True, runs=False)
            context["report"] = Markup(body)  # noqa: S704 - escaped by the renderer
            context["a_ref"] = a
            context["b_ref"] = b
    return get_ui(request).render(request, "eval_compare.html", context, marks, status=status)


def register(app: FastAPI) -> None:
    """Add the Evaluations pages to the UI app."""

    @app.get("/eval", response_class=HTMLResponse)
    def eval_runs_page(request: Request, viewer: ViewerDep, args: TableArgs) -> Response:
        return _runs_page(request, viewer, args)

    @app.get("/eval/compare", response_class=HTMLResponse)
    def eval_compare_page(
        request: Request,
        viewer: ViewerDep,
        a: Annotated[str, Query(max_length=MAX_REF)] = "",
        b: Annotated[str, Query(max_length=MAX_REF)] = "",
        metric: Annotated[str, Query(max_length=MAX_REF)] = "",
    ) -> Response:
        return _compare_page(request, viewer, a.strip(), b.strip(), metric.strip())

    @app.get("/eval/runs/{ref}", response_class=HTMLResponse)
    def eval_run_page(
        request: Request,
        viewer: ViewerDep,
        ref: str,
        page: Annotated[int, Query(ge=1, le=10_000)] = 1,
    ) -> Response:
        return _run_page(request, viewer, ref, page)

    @app.get("/eval/runs/{ref}/items/{item}", response_class=HTMLResponse)
    def eval_transcript_page(request: Request, viewer: ViewerDep, ref: str, item: str) -> Response:
        return _transcript_page(request, viewer, ref, item)
