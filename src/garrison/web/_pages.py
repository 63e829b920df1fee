"""The content pages: search, documents, lineage, findings and jobs.

Each route reads only through the library's access-filtered calls as the signed-in subject and
records every marking it puts on the page, so the banner is the join of what is shown. Things
whose marking governs metadata (a document's file name and title carry the document's marking)
are shown only when that marking is readable, and then add it to the page.
"""

from __future__ import annotations

import re
from typing import Annotated, Any

from fastapi import FastAPI, Form, Query, Request
from fastapi.responses import HTMLResponse, Response
from markupsafe import Markup, escape

from garrison.core.errors import InvalidInput
from garrison.search import MAX_K, search
from garrison.search._search import MAX_QUERY
from garrison.security.markings import dominates
from garrison.security.policy import Action
from garrison.store.derived import Lineage, dedup_report
from garrison.store.documents import Documents, Jobs, original_bytes, original_decision
from garrison.store.listings import (
    DOCUMENT_SORTS,
    FINDING_SORTS,
    JOB_SORTS,
    documents_page,
    findings_page,
    jobs_page,
)
from garrison.store.predictions import ReadablePrediction, predictions_of_documents
from garrison.web._banner import PageMarkings
from garrison.web._core import PREFIX, Viewer, ViewerDep, get_ui, redirect
from garrison.web._tables import Table, TableArgs

__all__ = ["highlight", "locator_text", "register"]

#: Search filters offered on the search page (the library's, less ``doc`` and date bounds).
SEARCH_FILTERS = ("source", "media_type", "language", "max_marking")
#: Ceilings suggested on the search form (only those the subject may read are offered).
CEILINGS = ("UNCLASSIFIED", "CUI", "CONFIDENTIAL", "SECRET", "TOP SECRET")
_STAR = re.compile(r"\*\*(.+?)\*\*")
#: Finding kinds, in the order the queue offers them.
FINDING_KINDS = (
    "under-marked",
    "over-marked",
    "unmarked-portion",
    "invalid-marking",
    "banner-mismatch",
    "spill",
    "default-marking-conflict",
    "duplicate-marked-differently",
    "active-content",
    "no-text-layer",
    "stage-failed",
)


def highlight(snippet: str) -> Markup:
    """A search snippet as HTML: escaped, with the ``**term**`` highlights as ``<mark>``."""
    escaped = str(escape(snippet))
    return Markup(_STAR.sub(lambda m: f"<mark>{m.group(1)}</mark>", escaped))  # noqa: S704


def locator_text(locator: dict[str, Any] | None, page: int | None = None) -> str:
    """Where an element sits in its file: ``page 2, box 10,20,200,40`` or ``sheet S, row 4``."""
    parts: list[str] = []
    loc = dict(locator or {})
    if page is not None and "page" not in loc:
        loc["page"] = page
    for key in ("page", "sheet", "row", "slide", "section", "line", "frame", "part", "index"):
        if key in loc and loc[key] is not None:
            parts.append(f"{key} {loc.pop(key)}")
    for key in ("bbox", "box"):
        if key in loc:
            value = loc.pop(key)
            if isinstance(value, list | tuple):
                value = ",".join(f"{v:g}" if isinstance(v, float) else str(v) for v in value)
            parts.append(f"box {value}")
    parts += [f"{k} {v}" for k, v in sorted(loc.items()) if not isinstance(v, dict | list)]
    return ", ".join(parts)


def _visible_docs(viewer: Viewer) -> dict[str, dict[str, Any]]:
    """Documents the subject may know of, by id (access-filtered by the library)."""
    return {d["id"]: d for d in Documents(viewer.session).list()}


def _doc_label(doc: dict[str, Any]) -> str:
    if doc.get("status") == "spilled":
        return "(withheld: spill)"
    return str(doc.get("title") or doc.get("filename") or doc["id"][:12])


def _finding_markings(viewer: Viewer) -> dict[str, str]:
    """The own markings of "marked differently" findings the subject may see (stewards)."""
    if not viewer.is_steward:
        return {}
    report = dedup_report(viewer.session)
    return {str(f["id"]): f["marking"] for f in report["marked_differently"] if f["marking"]}


# -- search -------------------------------------------------------------------------------------


def _search_page(
    request: Request,
    viewer: Viewer,
    q: str,
    filters: dict[str, str],
    page_no: int,
    label: str = "",
) -> Response:
    ui = get_ui(request)
    page = PageMarkings(viewer.session)
    size = ui.settings.page_size
    context: dict[str, Any] = {
        "q": q,
        "filters": filters,
        "label": label,
        "filter_names": SEARCH_FILTERS,
        "page_no": page_no,
        "hits": [],
        "facets": {},
        "total": 0,
        "notes": [],
        "has_next": False,
        "error": None,
        "searched": False,
        "ceilings": [
            c for c in CEILINGS if viewer.session.can_read(viewer.session.parse_marking(c))
        ],
    }
    status = 200
    if q.strip():
        k = min(page_no * size, MAX_K)
        try:
            result = search(
                viewer.session, q, k=k, filters=filters, labels=[label] if label else ()
            )
        except InvalidInput as exc:
            context["error"] = exc.message
            status = 400
        else:
            docs = _visible_docs(viewer)
            if "max_marking" in filters:
                # Under a ceiling, a document's name is shown only when its marking is within
                # it too, so the page stays at the level asked for.
                ceiling = viewer.session.parse_marking(filters["max_marking"])
                docs = {
                    i: d
                    for i, d in docs.items()
                    if dominates(ceiling, viewer.session.parse_marking(d["marking"]))
                }
            hits = []
            for hit in result.hits[(page_no - 1) * size : page_no * size]:
                # No document reference at all for a reader who may not read the document.
                doc = docs.get(hit.doc_id) if hit.doc_id is not None else None
                hits.append(
                    {
                        "chunk_id": hit.chunk_id,
                        "doc_id": hit.doc_id if doc else None,
                        "snippet": highlight(hit.snippet),
                        "portion": page.portion(hit.marking),
                        "locator": locator_text(hit.locator),
                        "section": " › ".join(hit.section_path),
                        # The file name carries the document's marking: shown only when the
                        # document is readable, and then that marking is on the page.
                        "doc_label": _doc_label(doc) if doc else None,
                        "doc_portion": page.portion(doc["marking"]) if doc else None,
                    }
                )
            if result.hits:
                # The result's marking: hits shown under a label filter reveal the predictions
                # that matched them, and compilation rules raise the page as a whole.
                page.add(result.marking)
            facets = {}
            for name, counts in result.facets.items():
                if name == "marking":
                    for banner in counts:
                        page.add(banner)
                if counts:
                    facets[name] = counts
            context.update(
                hits=hits,
                facets=facets,
                total=result.total,
                notes=list(result.notes),
                has_next=len(result.hits) == k and k < MAX_K,
                searched=True,
            )
    return ui.render(request, "search.html", context, page, status=status)


def _register_search(app: FastAPI) -> None:
    @app.get("/search", response_class=HTMLResponse)
    def search_page(
        request: Request,
        viewer: ViewerDep,
        q: Annotated[str, Query(max_length=MAX_QUERY)] = "",
        source: Annotated[str, Query(max_length=200)] = "",
        media_type: Annotated[str, Query(max_length=200)] = "",
        language: Annotated[str, Query(max_length=50)] = "",
        max_marking: Annotated[str, Query(max_length=200)] = "",
        label: Annotated[str, Query(max_length=400)] = "",
        page: Annotated[int, Query(ge=1, le=100)] = 1,
    ) -> Response:
        values = {
            "source": source,
            "media_type": media_type,
            "language": language,
            "max_marking": max_marking,
        }
        filters = {k: v.strip() for k, v in values.items() if v.strip()}
        return _search_page(request, viewer, q, filters, page, label.strip())


# -- documents ----------------------------------------------------------------------------------


def _prediction(page: PageMarkings, p: ReadablePrediction) -> dict[str, Any]:
    """A prediction as the viewer shows it; its marking goes on the page."""
    return {
        "name": p.name,
        "label": p.label,
        "probability": f"{p.probability:.2f}",
        "model": p.model_id[:12],
        "item": p.item_id,
        "portion": page.portion(p.marking.banner()),
    }


def _register_documents(app: FastAPI) -> None:
    @app.get("/documents", response_class=HTMLResponse)
    def documents(request: Request, viewer: ViewerDep, args: TableArgs) -> Response:
        ui = get_ui(request)
        page = PageMarkings(viewer.session)
        spec = args.spec(ui.settings.page_size, DOCUMENT_SORTS)
        found = documents_page(viewer.session, spec, status="parsed", q=args.q or None)
        rows = found.map(
            lambda d: {
                "id": d["id"],
                "label": _doc_label(d),
                "media_type": d["media_type"],
                "source": d["source"],
                "status": d["status"],
                "ingested_at": d["ingested_at"],
                "portion": page.portion(d["marking"]),
            }
        )
        table = Table(f"{PREFIX}/documents", rows, args, DOCUMENT_SORTS, "ingested_at")
        return ui.render(request, "documents.html", {"docs": rows.items, "table": table}, page)

    @app.get("/documents/{doc_id}", response_class=HTMLResponse)
    def document(request: Request, viewer: ViewerDep, doc_id: str) -> Response:
        page = PageMarkings(viewer.session)
        doc = Documents(viewer.session).show(doc_id[:128], elements=True)
        own = _finding_markings(viewer)
        # Only the predictions the reader may read (each may be above the element it is on).
        predicted: dict[str, list[dict[str, Any]]] = {}
        chunk_predictions: list[dict[str, Any]] = []
        if doc["status"] == "parsed":
            for p in predictions_of_documents(viewer.session, [doc["id"]]):
                if p.item_kind == "chunk":
                    chunk_predictions.append(_prediction(page, p))
                else:
                    predicted.setdefault(p.item_id, []).append(_prediction(page, p))
        elements = [
            {
                "id": e["id"],
                "seq": e["seq"],
                "type": e["type"],
                "text": e["text"],
                "portion": page.portion(e["marking"]),
                "marking_source": e.get("marking_source"),
                "locator": locator_text(e.get("locator"), e.get("page")),
                # Only the headings the reader may read (the library withholds the others).
                "section": " › ".join(e.get("section_path") or ()),
                "predictions": predicted.get(e["id"], []),
            }
            for e in doc.get("elements", [])
        ]
        findings = [{**f, "portion": page.portion(own.get(str(f["id"])))} for f in doc["findings"]]
        context = {
            "doc": doc,
            "label": _doc_label(doc),
            "doc_portion": page.portion(doc["marking"]),
            "banner_portion": page.portion(doc.get("banner")),
            "original_portion": page.portion(doc.get("original_marking")),
            "elements": elements,
            "chunk_predictions": chunk_predictions,
            "findings": findings,
            "may_download": doc["status"] == "parsed"
            and bool(original_decision(viewer.session, doc["id"])),
            "may_resolve": viewer.may(Action.RESOLVE_FINDINGS),
        }
        return get_ui(request).render(request, "document.html", context, page)

    @app.get("/documents/{doc_id}/original")
    def original(viewer: ViewerDep, doc_id: str) -> Response:
        # Original bytes leave the system: an export (see original_bytes). Quarantined and
        # spilled files are never served.
        doc, data = original_bytes(viewer.session, doc_id[:128])
        name = re.sub(r"[^A-Za-z0-9._-]", "_", str(doc["filename"] or doc["id"]))[:120]
        return Response(
            data,
            media_type="application/octet-stream",
            headers={
                "Content-Disposition": f'attachment; filename="{name}"',
                "X-Garrison-Marking": doc["export_marking"],
            },
        )

    @app.get("/lineage/{record_id}", response_class=HTMLResponse)
    def lineage(request: Request, viewer: ViewerDep, record_id: str) -> Response:
        page = PageMarkings(viewer.session)
        tree = Lineage(viewer.session).of(record_id[:128])

        def walk(node: dict[str, Any]) -> dict[str, Any]:
            return {
                **node,
                "portion": page.portion(node.get("marking")),
                "parents": [walk(p) for p in node.get("parents", [])],
            }

        return get_ui(request).render(request, "lineage.html", {"tree": walk(tree)}, page)


# -- findings -----------------------------------------------------------------------------------


def _finding_rows(
    viewer: Viewer, page: PageMarkings, found: list[dict[str, Any]]
) -> list[dict[str, Any]]:
    docs = _visible_docs(viewer)
    own = _finding_markings(viewer)
    rows = []
    for f in found:
        doc = docs.get(f["doc_id"])
        rows.append(
            {
                **f,
                # A finding is about its document: the document's marking is on the page.
                "doc_label": _doc_label(doc) if doc else f["doc_id"][:12],
                "doc_portion": page.portion(doc["marking"]) if doc else None,
                "doc_status": doc["status"] if doc else None,
                "portion": page.portion(own.get(str(f["id"]))),
            }
        )
    return rows


def _register_findings(app: FastAPI) -> None:
    @app.get("/findings", response_class=HTMLResponse)
    def findings(
        request: Request,
        viewer: ViewerDep,
        args: TableArgs,
        kind: Annotated[str, Query(max_length=64)] = "",
        state: Annotated[str, Query(pattern="^(open|all)?$")] = "open",
    ) -> Response:
        ui = get_ui(request)
        page = PageMarkings(viewer.session)
        spec = args.spec(ui.settings.page_size, FINDING_SORTS)
        found = findings_page(viewer.session, spec, kind=kind or None, unresolved=state != "all")
        rows = _finding_rows(viewer, page, found.items)
        params = {"kind": kind, "state": state if state != "open" else ""}
        table = Table(f"{PREFIX}/findings", found, args, FINDING_SORTS, "created_at", params=params)
        context = {
            "table": table,
            "findings": rows,
            "kind": kind,
            "state": state or "open",
            "kinds": FINDING_KINDS,
            "may_resolve": viewer.may(Action.RESOLVE_FINDINGS),
        }
        return get_ui(request).render(request, "findings.html", context, page)

    @app.post("/findings/{finding_id}/resolve", response_class=HTMLResponse)
    def resolve(
        request: Request,
        viewer: ViewerDep,
        finding_id: str,
        note: Annotated[str, Form(max_length=2000)] = "",
        csrf: Annotated[str, Form(max_length=200)] = "",
        back: Annotated[str, Form(max_length=200)] = "",
    ) -> Response:
        ui = get_ui(request)
        ui.check_csrf(viewer, csrf)
        Documents(viewer.session).resolve(finding_id, note)  # audited; NotFound if unreadable
        if request.headers.get("hx-request"):
            # htmx swaps just this finding's row; everything in it was already on the page.
            page = PageMarkings(viewer.session)
            found = Documents(viewer.session).findings(kind=None, unresolved=False)
            rows = _finding_rows(viewer, page, found)
            row = next(r for r in rows if str(r["id"]) == finding_id)
            return ui.render(request, "_finding_row.html", {"f": row, "may_resolve": True}, page)
        target = back if back.startswith(f"{PREFIX}/") else f"{PREFIX}/findings"
        return redirect(target)


# -- jobs ---------------------------------------------------------------------------------------


def _register_jobs(app: FastAPI) -> None:
    @app.get("/jobs", response_class=HTMLResponse)
    def jobs(request: Request, viewer: ViewerDep, args: TableArgs) -> Response:
        store = Jobs(viewer.session)
        spec = args.spec(get_ui(request).settings.page_size, JOB_SORTS, default_desc=True)
        found = jobs_page(viewer.session, spec)  # counts over what the viewer may read
        job_list = found.items
        table = Table(f"{PREFIX}/jobs", found, args, JOB_SORTS, "started_at", default_desc=True)
        # Where a spill came from is for admins and stewards who dominate system high.
        statuses = ("quarantined", "spilled") if store.sees_spill_locations() else ("quarantined",)
        quarantined = [
            {**d, "label": _doc_label(d)}
            for status in statuses
            for d in Documents(viewer.session).list(status=status)
        ]
        context = {
            "table": table,
            "jobs": job_list,
            "quarantined": quarantined,
            "running": any(j["status"] == "running" for j in job_list),
        }
        # Jobs and quarantined files carry no marking: nothing here raises the banner.
        return get_ui(request).render(request, "jobs.html", context, PageMarkings(viewer.session))

    @app.get("/jobs/{job_id}", response_class=HTMLResponse)
    def job(request: Request, viewer: ViewerDep, job_id: str) -> Response:
        page = PageMarkings(viewer.session)
        # Only the items the viewer may see come back (see Jobs): a file's name carries its
        # document's marking, and a spill's location is for those who may see it.
        data = Jobs(viewer.session).show(job_id[:64])
        docs = _visible_docs(viewer)
        items = []
        for item in data.pop("items"):
            doc = docs.get(item["doc_id"]) if item["doc_id"] else None
            if item["doc_id"] and doc is None:
                continue
            items.append(
                {
                    **item,
                    "label": _doc_label(doc) if doc else item["uri"].rsplit("/", 1)[-1],
                    "link": doc is not None,
                    "portion": page.portion(doc["marking"]) if doc else None,
                }
            )
        context = {"job": data, "items": items}
        return get_ui(request).render(request, "job.html", context, page)


def register(app: FastAPI) -> None:
    """Add the content pages to the UI app."""
    _register_search(app)
    _register_documents(app)
    _register_findings(app)
    _register_jobs(app)
